// What the system could not apply: projections' dead letters (retried per
// projection, once the cause is fixed) and Stripe events the worker set
// aside or is retrying (each retried on its own).

import { useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { api, ok, type Schemas } from '../../api/client';

/** A projection of the registry, the one kind that has dead letters to retry. */
type Projection = Schemas['RetryBody']['projection'];
import { Empty, Loaded, ProblemView, useAction, useAsync } from '../../components/state';
import { when } from '../../components/format';

export function DeadLetters() {
  const [resolved, setResolved] = useState(false);
  const letters = useAsync(() => ok(api.GET('/v1/operator/dead-letters', { params: { query: { limit: 200, include_resolved: resolved } } })), [resolved]);
  const stripe = useAsync(() => ok(api.GET('/v1/stripe-events')), []);
  const [outcome, setOutcome] = useState<string>();
  const retry = useAction(async (projection: Projection) => {
    const r = await ok(api.POST('/v1/operator/dead-letters/retry', { body: { projection } }));
    setOutcome(`${r.projection}: ${r.resolved} applied now, ${r.still_failing} still failing.`);
  }, letters.reload);
  const retryStripe = useAction(async (eventId: string) => {
    const r = await ok(api.POST('/v1/stripe-events/{event_id}/retry', { params: { path: { event_id: eventId } } }));
    setOutcome(`Stripe event ${r.event_id} queued again (attempt ${r.attempts + 1}).`);
  }, stripe.reload);
  return (
    <section>
      <h1>Dead letters</h1>
      {outcome && (
        <p role="status" data-testid="retry-outcome">
          {outcome}
        </p>
      )}
      <label>
        <input type="checkbox" role="switch" checked={resolved} onChange={(e) => setResolved((e.currentTarget as HTMLInputElement).checked)} />
        Include resolved ones
      </label>
      {retry.error ? <ProblemView error={retry.error} onReload={letters.reload} /> : null}
      <Loaded async={letters}>
        {(p) => {
          if (p.items.length === 0) return <Empty>No projection has failed to apply an event.</Empty>;
          const projections = [...new Set(p.items.filter((d) => !d.resolved_at).map((d) => d.projection))];
          return (
            <>
              {projections.length > 0 && (
                <p>
                  {projections.map((name) => (
                    <button key={name} disabled={retry.busy} aria-busy={retry.busy} onClick={() => void retry.run(name as Projection)}>
                      Retry {name}
                    </button>
                  ))}
                </p>
              )}
              <div class="table-wrap" tabIndex={0}>
                <table class="striped" aria-label="Dead letters">
                  <thead>
                    <tr>
                      <th scope="col">Projection</th>
                      <th scope="col">Event</th>
                      <th scope="col">Aggregate</th>
                      <th scope="col">Error</th>
                      <th scope="col">Failed</th>
                      <th scope="col">Resolved</th>
                    </tr>
                  </thead>
                  <tbody>
                    {p.items.map((d) => (
                      <tr key={d.id}>
                        <td>{d.projection}</td>
                        <td>
                          {d.event_type} <small>#{d.event_position}</small>
                        </td>
                        <td>
                          <Link href={`/operator/audit?type=${encodeURIComponent(d.aggregate_type)}&id=${encodeURIComponent(d.aggregate_id)}&version=${d.sequence}`}>
                            {d.aggregate_type}/{d.aggregate_id} v{d.sequence}
                          </Link>
                        </td>
                        <td>
                          <code>{d.error}</code>
                        </td>
                        <td>{when(d.failed_at)}</td>
                        <td>{when(d.resolved_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          );
        }}
      </Loaded>
      <h2>Set-aside Stripe events</h2>
      {retryStripe.error ? <ProblemView error={retryStripe.error} onReload={stripe.reload} /> : null}
      <Loaded async={stripe}>
        {(s) =>
          s.items.length === 0 ? (
            <Empty>Every Stripe event was applied.</Empty>
          ) : (
            <div class="table-wrap" tabIndex={0}>
              <table class="striped" aria-label="Stripe events not applied">
                <thead>
                  <tr>
                    <th scope="col">Event</th>
                    <th scope="col">Type</th>
                    <th scope="col">Attempts</th>
                    <th scope="col">Last error</th>
                    <th scope="col">Received</th>
                    <th scope="col"><span class="visually-hidden">Actions</span></th>
                  </tr>
                </thead>
                <tbody>
                  {s.items.map((e) => (
                    <tr key={e.event_id}>
                      <td>
                        <code>{e.event_id}</code>
                      </td>
                      <td>{e.event_type}</td>
                      <td>{e.attempts}</td>
                      <td>{e.last_error ?? '—'}</td>
                      <td>{when(e.received_at)}</td>
                      <td>
                        <button class="secondary" disabled={retryStripe.busy} onClick={() => void retryStripe.run(e.event_id)}>
                          Retry <span class="visually-hidden">{e.event_id}</span>
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </section>
  );
}
