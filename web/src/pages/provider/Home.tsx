// The provider's pages start here (request, nodes, maintenance, alliances).

export function ProviderHome() {
  return (
    <section>
      <h1>Provider</h1>
      <p>Your farms, nodes and maintenance windows will be managed here.</p>
    </section>
  );
}
