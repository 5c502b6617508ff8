# The marketplace binary on a slim Debian, for docker-compose.yml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin marketplace

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/marketplace /usr/local/bin/marketplace
USER nobody
ENTRYPOINT ["marketplace"]
