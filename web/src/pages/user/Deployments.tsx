// The user's deployments, newest first, filtered by status and kind.

import { useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { api, ok } from '../../api/client';
import { Empty, Loaded, useAsync } from '../../components/state';
import { when } from '../../components/format';

const STATUSES = ['requested', 'placed', 'provisioning', 'running', 'failed', 'suspended', 'cancelled', 'deleted'];

export function Deployments() {
  const [status, setStatus] = useState('');
  const [kind, setKind] = useState('');
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const page = useAsync(
    () =>
      ok(
        api.GET('/v1/deployments', {
          // eslint-disable-next-line @typescript-eslint/no-explicit-any
          params: { query: { limit: 20, ...(status && { status }), ...(kind && { kind }), ...(cursor && { cursor }) } as any },
        }),
      ),
    [status, kind, cursor],
  );
  return (
    <section>
      <h1>Deployments</h1>
      <div class="filters" role="group" aria-label="Filter deployments">
        <label>
          Status
          <select value={status} onChange={(e) => { setCursors([]); setStatus(e.currentTarget.value); }}>
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Kind
          <select value={kind} onChange={(e) => { setCursors([]); setKind(e.currentTarget.value); }}>
            <option value="">Any</option>
            <option value="vm">VM</option>
            <option value="kubernetes">Kubernetes</option>
          </select>
        </label>
      </div>
      <Loaded async={page}>
        {(p) =>
          p.items.length === 0 ? (
            <Empty>
              No deployments{status || kind ? ' match' : ' yet'}. <Link href="/deploy">Deploy one</Link>.
            </Empty>
          ) : (
            <>
              <div class="table-wrap">
                <table class="striped">
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Kind</th>
                      <th scope="col">Status</th>
                      <th scope="col">Node</th>
                      <th scope="col">Created</th>
                    </tr>
                  </thead>
                  <tbody>
                    {p.items.map((d) => (
                      <tr key={d.id}>
                        <td>
                          <Link href={`/deployments/${d.id}`}>{d.name}</Link>
                        </td>
                        <td>{d.kind}</td>
                        <td class={`status status-${d.status}`}>{d.status}</td>
                        <td>{d.node_id ?? '—'}</td>
                        <td>{when(d.created_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <nav aria-label="Pages">
                {cursors.length > 0 && <button class="secondary" onClick={() => setCursors(cursors.slice(0, -1))}>Previous</button>}{' '}
                {p.next_cursor && <button onClick={() => setCursors([...cursors, p.next_cursor!])}>Next</button>}
              </nav>
            </>
          )
        }
      </Loaded>
    </section>
  );
}
