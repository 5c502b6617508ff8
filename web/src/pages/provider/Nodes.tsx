// The provider's nodes (GET /v1/provider/nodes): status, reported uptime,
// the alliance's SLA against the uptime measured this month, and a chart of
// the uptime each node reports, sampled while the page is open (the API
// keeps no uptime history to read back).

import { useEffect, useMemo, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { api, ok, type Schemas } from '../../api/client';
import { Empty, Loaded, useAsync, useInterval } from '../../components/state';
import { TimeChart } from '../../components/TimeChart';
import { bps, duration, when } from '../../components/format';

type Node = Schemas['NodeBody'];
const SAMPLE_MS = 15_000;
const KEEP = 240;

export async function allProviderNodes(): Promise<Node[]> {
  const out: Node[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 20; i++) {
    const page = await ok(api.GET('/v1/provider/nodes', { params: { query: { limit: 100, ...(cursor ? { cursor } : {}) } } }));
    out.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

export function ProviderNodes() {
  const nodes = useAsync(allProviderNodes, []);
  const [samples, setSamples] = useState<{ at: number; nodes: Node[] }[]>([]);
  const data = nodes.data;
  useEffect(() => {
    if (data) setSamples((s) => [...s, { at: Date.now() / 1000, nodes: data }].slice(-KEEP));
  }, [data]);
  useInterval(nodes.reload, SAMPLE_MS);
  return (
    <section>
      <h1>My nodes</h1>
      <Loaded async={nodes}>
        {(list) =>
          list.length === 0 ? (
            <Empty>
              No nodes yet: they appear here once a <Link href="/provider">request</Link> for their farm is approved.
            </Empty>
          ) : (
            <>
              <UptimeChart samples={samples} />
              <div class="table-wrap" tabIndex={0}>
                <table class="striped">
                  <thead>
                    <tr>
                      <th scope="col">Node</th>
                      <th scope="col">Where</th>
                      <th scope="col">Status</th>
                      <th scope="col">Up for</th>
                      <th scope="col">Last report</th>
                      <th scope="col">Alliance</th>
                      <th scope="col">Uptime this month / SLA</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((n) => (
                      <tr key={n.node_id} data-node={n.node_id}>
                        <td>
                          {n.node_id} <small>farm {n.farm_id}</small>
                        </td>
                        <td>
                          {n.city}, {n.country}
                        </td>
                        <td class={`status status-${n.status}`}>{n.status}</td>
                        <td>{duration(n.uptime_seconds)}</td>
                        <td>{when(n.last_report)}</td>
                        <td>{n.alliance ? <Link href={`/provider/alliances/${encodeURIComponent(n.alliance.id)}`}>{n.alliance.name}</Link> : '—'}</td>
                        <td>
                          {n.alliance ? (
                            <>
                              {bps(n.alliance.measured_uptime_bps)} / {bps(n.alliance.sla_target_bps)}
                              {n.alliance.sla_target_bps != null && (
                                <small class={n.alliance.measured_uptime_bps >= n.alliance.sla_target_bps ? 'ok' : 'error'}>
                                  {n.alliance.measured_uptime_bps >= n.alliance.sla_target_bps ? ' meets it' : ' below it'}
                                </small>
                              )}
                            </>
                          ) : (
                            '—'
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          )
        }
      </Loaded>
    </section>
  );
}

function UptimeChart({ samples }: { samples: { at: number; nodes: Node[] }[] }) {
  const { times, series } = useMemo(() => {
    const ids = [...new Set(samples.flatMap((s) => s.nodes.map((n) => n.node_id)))].slice(0, 4);
    return {
      times: samples.map((s) => s.at),
      series: ids.map((id) => ({
        label: `node ${id}`,
        values: samples.map((s) => {
          const u = s.nodes.find((n) => n.node_id === id)?.uptime_seconds;
          return u == null ? null : u / 3600;
        }),
      })),
    };
  }, [samples]);
  if (samples.length === 0 || series.length === 0) return null;
  return (
    <TimeChart
      title={`Reported uptime (hours since boot), sampled every ${SAMPLE_MS / 1000} s while this page is open${series.length < 4 ? '' : ' (first four nodes)'}`}
      times={times}
      series={series}
      format={(v) => `${v.toFixed(1)} h`}
    />
  );
}
