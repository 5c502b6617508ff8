# The marketplace binary on a slim Debian, for docker-compose.yml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin marketplace

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/marketplace /usr/local/bin/marketplace
# Where `serve` keeps a development issuer's key (a volume in docker-compose.yml).
RUN mkdir -p /var/lib/marketplace/keys && chown nobody /var/lib/marketplace/keys
USER nobody
ENTRYPOINT ["marketplace"]
