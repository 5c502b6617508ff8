// The node catalog with the grid proxy's filters (GET /v1/nodes), paged
// by cursor. Filters live in the address, so a filtered view can be shared.

import { useState } from 'preact/hooks';
import { Link, useSearch, useLocation } from 'wouter-preact';
import { api, ok, type Schemas } from '../../api/client';
import { Empty, Loaded, useAsync } from '../../components/state';
import { bytes, usdUnits } from '../../components/format';

type Node = Schemas['NodeBody'];
const GIB = 2 ** 30;

const BOOLS = ['certified', 'dedicated', 'rentable', 'has_ipv4', 'has_gpu'] as const;
const BOOL_LABEL: Record<(typeof BOOLS)[number], string> = {
  certified: 'Certified',
  dedicated: 'Dedicated',
  rentable: 'Rentable',
  has_ipv4: 'Free public IPv4',
  has_gpu: 'GPU',
};

/** The API's query from the address's (GiB for sizes in the address, bytes for the API). */
function query(params: URLSearchParams, cursor?: string) {
  const q: Record<string, string | number | boolean> = {};
  const num = (k: string) => {
    const v = params.get(k);
    return v && !Number.isNaN(Number(v)) ? Number(v) : undefined;
  };
  const set = (k: string, v: string | number | boolean | undefined) => {
    if (v !== undefined && v !== '') q[k] = v;
  };
  set('free_cru', num('cpu'));
  const mem = num('memory_gib');
  set('free_mru', mem !== undefined ? Math.round(mem * GIB) : undefined);
  const ssd = num('ssd_gib');
  set('free_sru', ssd !== undefined ? Math.round(ssd * GIB) : undefined);
  set('country', params.get('country') ?? undefined);
  set('city', params.get('city') ?? undefined);
  set('farm_ids', params.get('farm_ids') ?? undefined);
  set('status', params.get('status') ?? undefined);
  const days = num('min_uptime_days');
  set('min_uptime_seconds', days !== undefined ? Math.round(days * 86400) : undefined);
  const max = num('max_price_usd');
  set('max_price', max !== undefined ? Math.round(max * 1e7) : undefined);
  for (const b of BOOLS) if (params.get(b) === 'true') q[b] = true;
  set('sort', params.get('sort') ?? undefined);
  set('cursor', cursor);
  q.limit = 20;
  return q;
}

export function Nodes() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const params = new URLSearchParams(search);
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const page = useAsync(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    () => ok(api.GET('/v1/nodes', { params: { query: query(params, cursor) as any } })),
    [search, cursor],
  );
  const apply = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const next = new URLSearchParams();
    for (const [k, v] of form.entries()) if (typeof v === 'string' && v.trim() !== '') next.set(k, v.trim());
    setCursors([]);
    navigate(`/nodes?${next.toString()}`);
  };
  return (
    <section>
      <h1>Nodes</h1>
      <details open={params.size > 0}>
        <summary>Filters</summary>
        <form onSubmit={apply} aria-label="Node filters">
          <div class="filters">
            <label>
              Free vCPUs at least
              <input type="number" name="cpu" min={0} defaultValue={params.get('cpu') ?? ''} />
            </label>
            <label>
              Free memory at least (GiB)
              <input type="number" name="memory_gib" min={0} step="any" defaultValue={params.get('memory_gib') ?? ''} />
            </label>
            <label>
              Free SSD at least (GiB)
              <input type="number" name="ssd_gib" min={0} step="any" defaultValue={params.get('ssd_gib') ?? ''} />
            </label>
            <label>
              Country
              <input name="country" defaultValue={params.get('country') ?? ''} />
            </label>
            <label>
              City
              <input name="city" defaultValue={params.get('city') ?? ''} />
            </label>
            <label>
              Farm ids (comma-separated)
              <input name="farm_ids" pattern="[0-9, ]*" defaultValue={params.get('farm_ids') ?? ''} />
            </label>
            <label>
              Status
              <select name="status" defaultValue={params.get('status') ?? ''}>
                <option value="">Any</option>
                <option value="up">Up</option>
                <option value="standby">Standby</option>
                <option value="down">Down</option>
              </select>
            </label>
            <label>
              Up for at least (days)
              <input type="number" name="min_uptime_days" min={0} step="any" defaultValue={params.get('min_uptime_days') ?? ''} />
            </label>
            <label>
              Whole node at most (USD/hour)
              <input type="number" name="max_price_usd" min={0} step="any" defaultValue={params.get('max_price_usd') ?? ''} />
            </label>
            <label>
              Sort by
              <select name="sort" defaultValue={params.get('sort') ?? ''}>
                <option value="">Node id</option>
                <option value="price">Price</option>
                <option value="free_cru">Free vCPUs</option>
                <option value="free_mru">Free memory</option>
                <option value="uptime">Uptime</option>
              </select>
            </label>
          </div>
          <fieldset class="filters">
            {BOOLS.map((b) => (
              <label key={b}>
                <input type="checkbox" name={b} value="true" defaultChecked={params.get(b) === 'true'} />
                {BOOL_LABEL[b]}
              </label>
            ))}
          </fieldset>
          <button type="submit">Apply filters</button>{' '}
          <Link href="/nodes" onClick={() => setCursors([])}>
            Clear
          </Link>
        </form>
      </details>
      <Loaded async={page}>
        {(p) =>
          p.items.length === 0 ? (
            <Empty>No node matches these filters.</Empty>
          ) : (
            <>
              <NodeTable nodes={p.items} />
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

function NodeTable({ nodes }: { nodes: Node[] }) {
  return (
    <div class="table-wrap">
      <table class="striped">
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Where</th>
            <th scope="col">Status</th>
            <th scope="col">Free vCPU</th>
            <th scope="col">Free memory</th>
            <th scope="col">Free SSD</th>
            <th scope="col">IPv4</th>
            <th scope="col">USD/hour</th>
            <th scope="col"><span class="visually-hidden">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          {nodes.map((n) => (
            <tr key={n.node_id} data-node={n.node_id}>
              <td>
                {n.node_id} <small>farm {n.farm_id}</small>
                {n.certified && <small> · certified</small>}
              </td>
              <td>
                {n.city}, {n.country}
              </td>
              <td>{n.status}</td>
              <td>{n.free_cru}</td>
              <td>{bytes(n.free_mru)}</td>
              <td>{bytes(n.free_sru)}</td>
              <td>{n.farm_free_ips}</td>
              <td>{usdUnits(n.hourly_price_usd_units)}</td>
              <td>
                <Link href={`/deploy?farm_id=${n.farm_id}&country=${encodeURIComponent(n.country)}`}>
                  Deploy on farm {n.farm_id}
                </Link>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
