// The operator's pages start here (queue, pricing, dead letters, audit, overview).

export function OperatorHome() {
  return (
    <section>
      <h1>Operator</h1>
      <p>The provider-request queue, pricing, dead letters and the audit explorer will be here.</p>
    </section>
  );
}
