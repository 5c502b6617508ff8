// One deployment, kept current by its server-sent events (no polling):
// each change is added to the timeline at once and the detail (workloads,
// IPs, node, maintenance) is read again at that change's version.

import { useEffect, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { api, ok, idempotencyKey, type Schemas } from '../../api/client';
import { follow } from '../../api/sse';
import { Empty, Loading, ProblemView } from '../../components/state';
import { tft, when } from '../../components/format';

type Detail = Schemas['DeploymentDetail'];
type Change = Schemas['DeploymentChange'];

export function DeploymentDetail({ params }: { params: { id: string } }) {
  const id = params.id;
  const [detail, setDetail] = useState<Detail>();
  const [error, setError] = useState<unknown>();
  const [changes, setChanges] = useState<Change[]>([]);
  const [live, setLive] = useState<'connecting' | 'open' | 'closed' | 'error'>('connecting');
  const [tick, setTick] = useState(0);

  const read = (minVersion?: number) =>
    ok(
      api.GET('/v1/deployments/{id}', {
        params: { path: { id }, query: minVersion ? { min_version: minVersion } : {} },
      }),
    ).then(setDetail, setError);

  useEffect(() => {
    setError(undefined);
    setChanges([]);
    void read();
    const stop = follow(
      `/v1/deployments/${encodeURIComponent(id)}/events`,
      (e) => {
        let change: Change;
        try {
          change = JSON.parse(e.data) as Change;
        } catch {
          return;
        }
        setChanges((cs) => (cs.some((c) => c.sequence === change.sequence) ? cs : [...cs, change]));
        void read(change.sequence);
      },
      (state) => setLive(state),
    );
    return stop;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [id, tick]);

  if (error && !detail) return <ProblemView error={error} onReload={() => setTick((t) => t + 1)} />;
  if (!detail) return <Loading what="Loading the deployment" />;
  const d = detail;
  // The stream's changes, else the detail's history (the same rows).
  const timeline = changes.length >= d.history.length ? changes : d.history;
  const status = timeline.length ? timeline[timeline.length - 1].status : d.status;
  return (
    <section>
      <p>
        <Link href="/deployments">← Deployments</Link>
      </p>
      <h1>{d.name}</h1>
      <p>
        <span class={`status status-${status}`} data-testid="status" aria-live="polite">
          {status}
        </span>{' '}
        <small>
          {live === 'open' ? '· live' : live === 'closed' ? '· final' : live === 'error' ? '· reconnecting' : '· connecting'}
        </small>
      </p>
      {d.update_pending && <p>A change is being applied.</p>}
      {d.failure_reason && <p class="error">Failed: {d.failure_reason}</p>}
      {d.grace_since && (
        <p class="error">
          Out of funds since {when(d.grace_since)}; deleted at {when(d.deletion_at)} unless the wallet is topped up.
        </p>
      )}
      <div class="grid-2">
        <article>
          <header>Facts</header>
          <dl class="facts">
            <dt>Kind</dt>
            <dd>{d.kind}</dd>
            <dt>Node</dt>
            <dd>{d.node_id ? `${d.node_id} (farm ${d.farm_id})` : '—'}</dd>
            <dt>Contract</dt>
            <dd>{d.contract_id ?? '—'}</dd>
            <dt>Why there</dt>
            <dd>{d.placement_reason ?? '—'}</dd>
            <dt>Billed so far</dt>
            <dd>
              {tft(d.billed_to_date_tft_units)} ({d.bills} bills)
            </dd>
            <dt>Created</dt>
            <dd>{when(d.created_at)}</dd>
          </dl>
        </article>
        <article>
          <header>Timeline</header>
          <ol class="timeline" aria-label="Timeline of states">
            {timeline.map((c) => (
              <li key={c.sequence}>
                <strong>{c.status}</strong> <small>{c.event}</small>
                <br />
                <small>{when(c.at)}</small>
              </li>
            ))}
          </ol>
        </article>
      </div>
      <h2>Workloads</h2>
      {d.workloads.length === 0 ? (
        <Empty>No workloads on a node yet.</Empty>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">State</th>
                <th scope="col">IP</th>
                <th scope="col">Public IP</th>
                <th scope="col">Console</th>
              </tr>
            </thead>
            <tbody>
              {d.workloads.map((w) => (
                <tr key={w.name}>
                  <td>{w.name}</td>
                  <td>
                    {w.state}
                    {w.message && <small> — {w.message}</small>}
                  </td>
                  <td>{w.ip ?? '—'}</td>
                  <td>{w.public_ip ?? '—'}</td>
                  <td>{w.console_url ? <a href={w.console_url}>Open console</a> : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {!['cancelled', 'deleted', 'failed'].includes(status) && (
        <CancelDeployment d={d} onDone={(v) => void read(v)} onReload={() => void read()} />
      )}
      <h2>Maintenance ahead</h2>
      {d.maintenance.length === 0 ? (
        <Empty>No maintenance is scheduled on its node.</Empty>
      ) : (
        <ul>
          {d.maintenance.map((m) => (
            <li key={m.window_id}>
              {when(m.starts_at)} – {when(m.ends_at)}: {m.reason} <small>({m.status})</small>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Cancel, saying which version was read: a 409 if it moved meanwhile, with a reload. */
function CancelDeployment({ d, onDone, onReload }: { d: Detail; onDone: (version: number) => void; onReload: () => void }) {
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const cancel = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const done = await ok(
        api.POST('/v1/deployments/{id}/cancel', {
          params: { path: { id: d.id }, header: { 'If-Match': `"${d.version}"`, 'Idempotency-Key': idempotencyKey() } as never },
          body: reason.trim() ? { reason: reason.trim() } : {},
        }),
      );
      setAsking(false);
      onDone(done.version);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (!asking)
    return (
      <p>
        <button class="outline secondary" onClick={() => setAsking(true)}>
          Cancel the deployment
        </button>
      </p>
    );
  return (
    <form onSubmit={cancel} aria-label="Cancel the deployment">
      <label>
        Why (optional)
        <input name="reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
      </label>
      {error ? (
        <ProblemView
          error={error}
          onReload={() => {
            setError(undefined);
            onReload();
          }}
        />
      ) : null}
      <button type="submit" class="secondary" aria-busy={busy} disabled={busy}>
        Yes, cancel it
      </button>{' '}
      <button type="button" class="outline" onClick={() => setAsking(false)}>
        Keep it
      </button>
    </form>
  );
}
