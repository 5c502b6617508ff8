// The catalog by country: how many nodes each country has up, and their
// free capacity; a country opens the catalog filtered to it. The API has no
// per-country aggregate, so this walks the catalog's pages (at most 1,000
// nodes).

import { Link } from 'wouter-preact';
import { api, ok, type Schemas } from '../../api/client';
import { Empty, Loaded, useAsync } from '../../components/state';
import { bytes } from '../../components/format';

interface Country {
  country: string;
  nodes: number;
  up: number;
  free_cru: number;
  free_mru: number;
  ipv4: number;
}

async function allNodes(): Promise<Schemas['NodeBody'][]> {
  const out: Schemas['NodeBody'][] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 10; i++) {
    const page = await ok(api.GET('/v1/nodes', { params: { query: { limit: 100, ...(cursor ? { cursor } : {}) } } }));
    out.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

function byCountry(nodes: Schemas['NodeBody'][]): Country[] {
  const map = new Map<string, Country>();
  for (const n of nodes) {
    const c = map.get(n.country) ?? { country: n.country, nodes: 0, up: 0, free_cru: 0, free_mru: 0, ipv4: 0 };
    c.nodes += 1;
    if (n.status === 'up') c.up += 1;
    c.free_cru += n.free_cru;
    c.free_mru += n.free_mru;
    c.ipv4 += n.farm_free_ips;
    map.set(n.country, c);
  }
  return [...map.values()].sort((a, b) => b.nodes - a.nodes || a.country.localeCompare(b.country));
}

export function Countries() {
  const nodes = useAsync(allNodes, []);
  return (
    <section>
      <h1>Nodes by country</h1>
      <Loaded async={nodes}>
        {(list) => {
          const countries = byCountry(list);
          if (countries.length === 0) return <Empty>The catalog has no nodes yet.</Empty>;
          const most = countries[0].nodes;
          return (
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Country</th>
                    <th scope="col">Nodes (up)</th>
                    <th scope="col">Free vCPU</th>
                    <th scope="col">Free memory</th>
                  </tr>
                </thead>
                <tbody>
                  {countries.map((c) => (
                    <tr key={c.country}>
                      <th scope="row">
                        <Link href={`/nodes?country=${encodeURIComponent(c.country)}`}>{c.country}</Link>
                      </th>
                      <td>
                        <progress value={c.nodes} max={most} aria-label={`${c.nodes} nodes`} /> {c.nodes} ({c.up} up)
                      </td>
                      <td>{c.free_cru}</td>
                      <td>{bytes(c.free_mru)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </Loaded>
    </section>
  );
}
