// Alliances (docs/alliances.md): the provider's own (as member or invitee;
// every one for an operator) and one in full: members, nodes with the
// uptime measured this period against the SLA, the shares if the period
// ended now, and the settled periods.

import { Link, useLocation } from 'wouter-preact';
import { api, ok, type Schemas } from '../../api/client';
import { Empty, Loaded, ProblemView, formFields, useAction, useAsync } from '../../components/state';
import { bps, tftText, when } from '../../components/format';
import { session } from '../../auth/session';
import { allProviderNodes } from './Nodes';

type Settlement = Schemas['SettlementBody'];

function rule(r: unknown): string {
  const k = (r as { kind?: string } | null)?.kind;
  return k ? k.replace(/_/g, ' ') : '—';
}

function sla(s: unknown): string {
  const v = s as { target_bps?: number; credits_to?: string } | null;
  return v?.target_bps != null ? `${bps(v.target_bps)} a node a month, credits to ${v.credits_to}` : '—';
}

export function ProviderAlliances() {
  const list = useAsync(() => ok(api.GET('/v1/alliances', { params: { query: { limit: 100 } } })), []);
  return (
    <section>
      <h1>Alliances</h1>
      <Found />
      <Loaded async={list}>
        {(p) =>
          p.items.length === 0 ? (
            <Empty>You are in no alliance, and invited to none.</Empty>
          ) : (
            <div class="table-wrap" tabIndex={0}>
              <table class="striped">
                <thead>
                  <tr>
                    <th scope="col">Alliance</th>
                    <th scope="col">Founder</th>
                    <th scope="col">Sharing</th>
                    <th scope="col">SLA</th>
                    <th scope="col">Since</th>
                  </tr>
                </thead>
                <tbody>
                  {p.items.map((a) => (
                    <tr key={a.id}>
                      <td>
                        <Link href={`/provider/alliances/${encodeURIComponent(a.id)}`}>{a.name}</Link>
                        {a.dissolved_from && <small> · dissolved from {a.dissolved_from}</small>}
                      </td>
                      <td>{a.founder}</td>
                      <td>{rule(a.rule)}</td>
                      <td>{sla(a.sla)}</td>
                      <td>{a.founded_in}</td>
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

/** Founding one (a provider with an approved request): its name, sharing rule and SLA. */
function Found() {
  const [, navigate] = useLocation();
  const found = useAction(async (f: Record<string, string>) => {
    const done = await ok(
      api.POST('/v1/alliances', {
        body: {
          name: f.name,
          description: f.description,
          // The form's selects offer exactly the document's values (the
          // rules without shares; fixed shares are set once members join).
          rule: { kind: f.rule as 'equal' | 'capacity' | 'uptime_weighted_capacity' },
          sla: {
            target_bps: Math.round(Number(f.target) * 100),
            credits_to: f.credits_to as Schemas['SlaBody']['credits_to'],
          },
        },
      }),
    );
    // Read it back at its version before showing it.
    await ok(api.GET('/v1/alliances/{id}', { params: { path: { id: done.id }, query: { min_version: done.version } } }));
    navigate(`/provider/alliances/${encodeURIComponent(done.id)}`);
  });
  return (
    <details>
      <summary>Found an alliance</summary>
      <form aria-label="Found an alliance" onSubmit={(e) => void found.run(formFields(e))}>
        <div class="filters">
          <label>
            Name
            <input name="name" required maxLength={80} />
          </label>
          <label>
            Sharing rule
            <select name="rule" defaultValue="equal">
              <option value="equal">Equal</option>
              <option value="capacity">By capacity</option>
              <option value="uptime_weighted_capacity">By capacity, weighted by uptime</option>
            </select>
          </label>
          <label>
            SLA: uptime a node a month (%)
            <input name="target" type="number" min={0} max={100} step="0.01" required defaultValue="95" />
          </label>
          <label>
            SLA credits go to
            <select name="credits_to" defaultValue="users">
              <option value="users">The users on the node</option>
              <option value="members">The other members</option>
            </select>
          </label>
        </div>
        <label>
          What it offers
          <textarea name="description" rows={2} maxLength={2000} />
        </label>
        <button type="submit" aria-busy={found.busy} disabled={found.busy}>
          Found the alliance
        </button>
        {found.error ? <ProblemView error={found.error} /> : null}
      </form>
    </details>
  );
}

export function ProviderAlliance({ params }: { params: { id: string } }) {
  const id = params.id;
  const alliance = useAsync(() => ok(api.GET('/v1/alliances/{id}', { params: { path: { id } } })), [id]);
  const settlements = useAsync(() => ok(api.GET('/v1/alliances/{id}/settlements', { params: { path: { id } } })), [id]);
  const me = session.value?.subject;
  const answer = useAction(async (accept: boolean, version: number) => {
    const path = accept ? '/v1/alliances/{id}/invitation/accept' : '/v1/alliances/{id}/invitation/decline';
    await ok(api.POST(path, { params: { path: { id }, header: { 'If-Match': `"${version}"` } }, body: {} }));
  }, alliance.reload);
  return (
    <section>
      <p>
        <Link href="/provider/alliances">← Alliances</Link>
      </p>
      <Loaded async={alliance}>
        {(a) => (
          <>
            <h1>{a.name}</h1>
            <p>{a.description}</p>
            <dl class="facts">
              <dt>Period</dt>
              <dd>{a.period}</dd>
              <dt>Sharing</dt>
              <dd>{rule(a.current_rule ?? a.rule)}</dd>
              <dt>SLA</dt>
              <dd>{sla(a.current_sla ?? a.sla)}</dd>
              <dt>Income so far</dt>
              <dd>{tftText(a.income_so_far)}</dd>
              <dt>Last settled</dt>
              <dd>{a.last_settled ?? '—'}</dd>
            </dl>
            {a.members.some((m) => m.member === me && m.status === 'invited') && (
              <p>
                You are invited.{' '}
                <button disabled={answer.busy} onClick={() => void answer.run(true, a.version)}>
                  Accept
                </button>{' '}
                <button class="secondary" disabled={answer.busy} onClick={() => void answer.run(false, a.version)}>
                  Decline
                </button>
              </p>
            )}
            {answer.error ? <ProblemView error={answer.error} onReload={alliance.reload} /> : null}
            <h2>Members</h2>
            <div class="table-wrap" tabIndex={0}>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Member</th>
                    <th scope="col">Status</th>
                    <th scope="col">From</th>
                    <th scope="col">Until</th>
                    <th scope="col">Share if the period ended now</th>
                  </tr>
                </thead>
                <tbody>
                  {a.members.map((m) => (
                    <tr key={m.member}>
                      <td>{m.member}</td>
                      <td>{m.status}</td>
                      <td>{m.since ?? '—'}</td>
                      <td>{m.until ?? '—'}</td>
                      <td>{tftText(a.projected_shares.find((s) => s.member === m.member)?.share)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {a.members.some((m) => m.member === me && m.status === 'member') &&
              (a.farm_id == null ? (
                <p role="status">Its farm is being created on chain; nodes can be contributed once it exists.</p>
              ) : (
                <Contribute alliance={a} onDone={alliance.reload} />
              ))}
            <h2>Nodes against the SLA</h2>
            {a.nodes.length === 0 ? (
              <Empty>No node is contributed yet.</Empty>
            ) : (
              <div class="table-wrap" tabIndex={0}>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Node</th>
                      <th scope="col">Member</th>
                      <th scope="col">CU / SU</th>
                      <th scope="col">Measured uptime</th>
                      <th scope="col">Target</th>
                      <th scope="col">Meets it</th>
                      <th scope="col">Income this period</th>
                    </tr>
                  </thead>
                  <tbody>
                    {a.nodes.map((n) => (
                      <tr key={n.node_id}>
                        <td>
                          {n.node_id} <small>farm {n.farm_id}</small>
                        </td>
                        <td>{n.member}</td>
                        <td>
                          {n.cu} / {n.su}
                        </td>
                        <td>{bps(n.uptime_bps)}</td>
                        <td>{bps(n.target_bps)}</td>
                        <td class={n.meets_sla === false ? 'error' : n.meets_sla ? 'ok' : ''}>
                          {n.meets_sla == null ? '—' : n.meets_sla ? 'yes' : 'no'}
                        </td>
                        <td>{tftText(n.income)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </>
        )}
      </Loaded>
      <h2>Settlements</h2>
      <Loaded async={settlements}>
        {(list) => (list.length === 0 ? <Empty>No period is settled yet.</Empty> : <Settlements items={list} />)}
      </Loaded>
    </section>
  );
}

/** A member contributes one of its nodes (counted from this period on). */
function Contribute({ alliance: a, onDone }: { alliance: Schemas['AllianceBody']; onDone: () => void }) {
  const mine = useAsync(allProviderNodes, []);
  const taken = new Set(a.nodes.filter((n) => !n.counted_until).map((n) => n.node_id));
  const free = (mine.data ?? []).filter((n) => !taken.has(n.node_id) && !n.alliance);
  const contribute = useAction(async (nodeId: number) => {
    const done = await ok(
      api.POST('/v1/alliances/{id}/nodes', { params: { path: { id: a.id }, header: { 'If-Match': `"${a.version}"` } }, body: { node_id: nodeId } }),
    );
    await ok(api.GET('/v1/alliances/{id}', { params: { path: { id: a.id }, query: { min_version: done.version } } }));
  }, onDone);
  if (free.length === 0) return null;
  return (
    <form aria-label="Contribute a node" onSubmit={(e) => void contribute.run(Number(formFields(e).node_id))}>
      <div class="filters">
        <label>
          Your node to contribute
          <select name="node_id">
            {free.map((n) => (
              <option key={n.node_id} value={n.node_id}>
                {n.node_id} (farm {n.farm_id}, {n.status})
              </option>
            ))}
          </select>
        </label>
      </div>
      <button type="submit" aria-busy={contribute.busy} disabled={contribute.busy}>
        Contribute the node
      </button>
      {contribute.error ? <ProblemView error={contribute.error} onReload={() => { contribute.clear(); onDone(); }} /> : null}
    </form>
  );
}

function Settlements({ items }: { items: Settlement[] }) {
  return (
    <div class="table-wrap" tabIndex={0}>
      <table>
        <thead>
          <tr>
            <th scope="col">Period</th>
            <th scope="col">Income</th>
            <th scope="col">To users</th>
            <th scope="col">Shares (penalty)</th>
            <th scope="col">Carried</th>
            <th scope="col">Settled</th>
          </tr>
        </thead>
        <tbody>
          {[...items].reverse().map((s) => (
            <tr key={s.period}>
              <td>{s.period}</td>
              <td>{tftText(s.income)}</td>
              <td>{tftText(s.user_credits)}</td>
              <td>
                {s.shares.map((m) => (
                  <div key={m.member}>
                    {m.member}: {tftText(m.share)}
                    {m.penalty !== '0' && <small class="error"> (−{tftText(m.penalty)})</small>}
                    {m.paid && <small> · paid</small>}
                  </div>
                ))}
              </td>
              <td>{tftText(s.carried)}</td>
              <td>{when(s.settled_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
