// The audit explorer (docs/audit.md): an aggregate's timeline, its state at
// a version, what changed between two versions (a JSON Patch), and the tree
// of everything one correlation id caused. Every read here is itself
// logged by the API (GET /v1/audit/access-log).

import { useLocation, useSearch, Link } from 'wouter-preact';
import { api, ok, type Schemas } from '../../api/client';
import { Empty, Loaded, formFields, useAsync } from '../../components/state';
import { when } from '../../components/format';

type Event = Schemas['AuditEventBody'];
const TYPES = ['deployment', 'node', 'pricing_policy', 'provider_request', 'tft_price', 'wallet'];

function meta(e: Event, key: string): string | undefined {
  const v = (e.metadata as Record<string, unknown>)[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function auditHref(q: Record<string, string | number | undefined>) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') p.set(k, String(v));
  return `/operator/audit?${p.toString()}`;
}

export function Audit() {
  const params = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const type = params.get('type') ?? 'deployment';
  const id = params.get('id') ?? '';
  const version = params.get('version') ?? '';
  const from = params.get('from') ?? '';
  const to = params.get('to') ?? '';
  const q = { type, id, version, from, to };
  return (
    <section>
      <h1>Audit</h1>
      <div class="grid-2">
        <form aria-label="Find an aggregate" onSubmit={(e) => { const f = formFields(e); navigate(auditHref({ type: f.type, id: f.id })); }}>
          <div class="filters">
            <label>
              Aggregate type
              <select name="type" defaultValue={type} key={type}>
                {TYPES.map((t) => (
                  <option key={t} value={t}>
                    {t}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Aggregate id
              <input name="id" required defaultValue={id} key={id} />
            </label>
          </div>
          <button type="submit">Show its timeline</button>
        </form>
        <form aria-label="Follow a correlation" onSubmit={(e) => navigate(`/operator/audit/correlations/${encodeURIComponent(formFields(e).correlation)}`)}>
          <label>
            Correlation id
            <input name="correlation" required />
          </label>
          <button type="submit" class="secondary">
            Show its tree
          </button>
        </form>
      </div>
      {id ? <Aggregate {...q} /> : <Empty>Name an aggregate, or a correlation id, to explore.</Empty>}
    </section>
  );
}

function Aggregate({ type, id, version, from, to }: { type: string; id: string; version: string; from: string; to: string }) {
  const path = { aggregate_type: type, id };
  const history = useAsync(() => ok(api.GET('/v1/audit/aggregates/{aggregate_type}/{id}/events', { params: { path, query: { limit: 500 } } })), [type, id]);
  return (
    <>
      <h2>
        {type}/{id}
      </h2>
      <Loaded async={history}>
        {(h) =>
          h.items.length === 0 ? (
            <Empty>This aggregate has no events.</Empty>
          ) : (
            <div class="grid-2">
              <article>
                <header>Timeline</header>
                <ol class="timeline" aria-label="Events of the aggregate">
                  {h.items.map((e) => {
                    const corr = meta(e, 'correlation_id');
                    return (
                      <li key={e.sequence} data-sequence={e.sequence}>
                        <strong>
                          v{e.sequence} {e.event_type}
                        </strong>
                        <br />
                        <small>
                          {when(e.recorded_at)} · {meta(e, 'actor_subject') ?? '—'} ({meta(e, 'actor_role') ?? '—'})
                        </small>
                        <br />
                        <Link href={auditHref({ type, id, version: e.sequence })}>State at v{e.sequence}</Link>
                        {e.sequence > 1 && (
                          <>
                            {' · '}
                            <Link href={auditHref({ type, id, from: e.sequence - 1, to: e.sequence })}>What it changed</Link>
                          </>
                        )}
                        {corr && (
                          <>
                            {' · '}
                            <Link href={`/operator/audit/correlations/${encodeURIComponent(corr)}`}>Correlation tree</Link>
                          </>
                        )}
                      </li>
                    );
                  })}
                </ol>
                {h.next_after != null && <small>Only the first {h.items.length} events are shown.</small>}
              </article>
              <div>
                <DiffForm type={type} id={id} last={h.items[h.items.length - 1].sequence} from={from} to={to} />
                {from && to ? <Diff type={type} id={id} from={Number(from)} to={Number(to)} /> : <State type={type} id={id} version={version || String(h.items[h.items.length - 1].sequence)} />}
              </div>
            </div>
          )
        }
      </Loaded>
    </>
  );
}

function DiffForm({ type, id, last, from, to }: { type: string; id: string; last: number; from: string; to: string }) {
  const [, navigate] = useLocation();
  return (
    <form aria-label="Compare versions" onSubmit={(e) => { const f = formFields(e); navigate(auditHref({ type, id, from: f.from, to: f.to })); }}>
      <div class="filters">
        <label>
          From version
          <input type="number" name="from" min={0} max={last} required defaultValue={from || '0'} key={from} />
        </label>
        <label>
          To version
          <input type="number" name="to" min={1} max={last} required defaultValue={to || String(last)} key={to} />
        </label>
      </div>
      <button type="submit" class="secondary">
        Compare
      </button>
    </form>
  );
}

function State({ type, id, version }: { type: string; id: string; version: string }) {
  const state = useAsync(
    () => ok(api.GET('/v1/audit/aggregates/{aggregate_type}/{id}/state', { params: { path: { aggregate_type: type, id }, query: { version: Number(version) } } })),
    [type, id, version],
  );
  return (
    <article>
      <Loaded async={state}>
        {(s) => (
          <>
            <header>State at v{s.version}</header>
            <pre class="json" data-testid="state" tabIndex={0}>
              {JSON.stringify(s.state, null, 2)}
            </pre>
          </>
        )}
      </Loaded>
    </article>
  );
}

function Diff({ type, id, from, to }: { type: string; id: string; from: number; to: number }) {
  const diff = useAsync(
    () => ok(api.GET('/v1/audit/aggregates/{aggregate_type}/{id}/diff', { params: { path: { aggregate_type: type, id }, query: { from, to } } })),
    [type, id, from, to],
  );
  return (
    <article>
      <header>
        From v{from} to v{to}
      </header>
      <Loaded async={diff}>
        {(d) => {
          const ops = d.changes as { op: string; path: string; value?: unknown; from?: string }[];
          return (
            <>
              <p>
                Events between: {d.events.map((e) => e.event_type).join(', ') || 'none'}
                {d.events_truncated && ' (and more)'}
              </p>
              {ops.length === 0 ? (
                <Empty>The state did not change.</Empty>
              ) : (
                <ul aria-label="Changes" data-testid="diff">
                  {ops.map((o, i) => (
                    <li key={i} class={`patch-${o.op}`}>
                      <code>{o.op}</code> <code>{o.path}</code>
                      {o.from && <> from <code>{o.from}</code></>}
                      {o.value !== undefined && <> = <code>{JSON.stringify(o.value)}</code></>}
                    </li>
                  ))}
                </ul>
              )}
            </>
          );
        }}
      </Loaded>
    </article>
  );
}

export function Correlation({ params }: { params: { id: string } }) {
  const cid = params.id;
  const tree = useAsync(() => ok(api.GET('/v1/audit/correlations/{correlation_id}', { params: { path: { correlation_id: cid } } })), [cid]);
  return (
    <section>
      <p>
        <Link href="/operator/audit">← Audit</Link>
      </p>
      <h1>Correlation tree</h1>
      <p>
        <code>{cid}</code>
      </p>
      <Loaded async={tree}>
        {(t) =>
          t.events.length === 0 ? (
            <Empty>No event carries this correlation id.</Empty>
          ) : (
            <>
              <p>
                {t.events.length} events across {t.aggregates.length} aggregates
                {t.truncated && ' (cut: the tree is larger)'}.
              </p>
              <ul aria-label="Aggregates touched">
                {(t.aggregates as string[]).map((a) => {
                  const [type, ...rest] = a.split('/');
                  return (
                    <li key={a}>
                      <Link href={auditHref({ type, id: rest.join('/') })}>{a}</Link>
                    </li>
                  );
                })}
              </ul>
              <ol class="tree" aria-label="Events of the correlation">
                {t.events.map((e) => (
                  <li key={e.position} style={{ marginLeft: `${e.depth * 1.5}rem` }} data-depth={e.depth}>
                    {e.depth > 0 && <span aria-hidden="true">↳ </span>}
                    <strong>{e.event_type}</strong>{' '}
                    <Link href={auditHref({ type: e.aggregate_type, id: e.aggregate_id, version: e.sequence })}>
                      {e.aggregate_type}/{e.aggregate_id} v{e.sequence}
                    </Link>{' '}
                    <small>
                      {when(e.recorded_at)} · {meta(e, 'actor_subject') ?? '—'}
                      {e.depth > 0 && ` · caused ${e.depth} step${e.depth > 1 ? 's' : ''} down`}
                    </small>
                  </li>
                ))}
              </ol>
            </>
          )
        }
      </Loaded>
    </section>
  );
}
