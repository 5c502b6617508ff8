// The pricing policy editor (PUT /v1/pricing with If-Match: a change made
// meanwhile answers 409, offered to reload) and its history, each change
// with who made it and what it changed.

import { api, ok, type Schemas } from '../../api/client';
import { Empty, Loaded, ProblemView, formFields, useAction, useAsync } from '../../components/state';
import { usdUnits, when } from '../../components/format';

type Policy = Schemas['PricingPolicyBody'];

const PRICES: [keyof Policy, string][] = [
  ['cu_per_hour', 'Compute unit, an hour'],
  ['su_per_hour', 'Storage unit, an hour'],
  ['nu_per_gb', 'Public traffic, a GB'],
  ['ipv4_per_hour', 'Public IPv4, an hour'],
  ['name_per_hour', 'Gateway name, an hour'],
  ['domain_per_hour', 'Gateway domain, an hour'],
];
const RATES: [keyof Policy, string][] = [
  ['markup_bps', 'Marketplace markup (basis points)'],
  ['certified_multiplier_bps', 'Certified multiplier (basis points, 10,000 = ×1)'],
];

function describe(key: keyof Policy, v: unknown): string {
  if (key === 'discounts') return (v as Policy['discounts']).map((d) => `${d.level} ${d.percent}% from ${d.min_half_months / 2} months`).join(', ');
  if (String(key).endsWith('_bps')) return `${Number(v).toLocaleString('en')} bps`;
  return usdUnits(v as number);
}

/** The fields a change altered, against the change before it. */
function changed(before: Policy | undefined, after: Policy): string[] {
  const keys = [...PRICES, ...RATES].map(([k]) => k).concat('discounts');
  // The oldest change listed: what it set.
  if (!before) return keys.map((k) => `${k}: ${describe(k, after[k])}`);
  return keys
    .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .map((k) => `${k}: ${describe(k, before[k])} → ${describe(k, after[k])}`);
}

export function Pricing() {
  const current = useAsync(() => ok(api.GET('/v1/pricing')), []);
  const history = useAsync(() => ok(api.GET('/v1/pricing/history', { params: { query: { limit: 50 } } })), []);
  const reload = () => {
    current.reload();
    history.reload();
  };
  const save = useAction(async (version: number, f: Record<string, string>, old: Policy) => {
    const policy: Policy = { ...old };
    for (const [k] of [...PRICES, ...RATES]) (policy as unknown as Record<string, number>)[k] = Number(f[k]);
    policy.discounts = old.discounts.map((d, i) => ({ ...d, min_half_months: Number(f[`min_half_months_${i}`]), percent: Number(f[`percent_${i}`]) }));
    const done = await ok(api.PUT('/v1/pricing', { params: { header: { 'If-Match': `"${version}"` } }, body: policy }));
    // The policy in force is a projection: wait until it shows this change.
    for (let i = 0; i < 40 && (await ok(api.GET('/v1/pricing'))).version < done.version; i++) await new Promise((r) => setTimeout(r, 250));
  }, reload);
  return (
    <section>
      <h1>Pricing</h1>
      <Loaded async={current}>
        {(c) => (
          <form
            key={c.version}
            aria-label="Pricing policy"
            onSubmit={(e) => void save.run(c.version, formFields(e), c.policy)}
          >
            <p>
              Version <strong data-testid="pricing-version">{c.version}</strong>
              {c.changed_at ? `, set ${when(c.changed_at)}` : ' (the grid’s default)'}. Prices are in USD units (10,000,000 = $1).
            </p>
            <div class="filters">
              {PRICES.map(([k, label]) => (
                <label key={k}>
                  {label}
                  <input type="number" name={k} min={0} required defaultValue={String(c.policy[k])} />
                  <small>{usdUnits(c.policy[k] as number)}</small>
                </label>
              ))}
              {RATES.map(([k, label]) => (
                <label key={k}>
                  {label}
                  <input type="number" name={k} min={0} required defaultValue={String(c.policy[k])} />
                </label>
              ))}
            </div>
            <fieldset>
              <legend>Staking discounts</legend>
              <div class="filters">
                {c.policy.discounts.map((d, i) => (
                  <div key={d.level}>
                    <strong>{d.level}</strong>
                    <label>
                      {d.level}: balance in half-months
                      <input type="number" name={`min_half_months_${i}`} min={0} required defaultValue={String(d.min_half_months)} />
                    </label>
                    <label>
                      {d.level}: discount (%)
                      <input type="number" name={`percent_${i}`} min={0} max={100} required defaultValue={String(d.percent)} />
                    </label>
                  </div>
                ))}
              </div>
            </fieldset>
            <button type="submit" aria-busy={save.busy} disabled={save.busy}>
              Save as version {c.version + 1}
            </button>
            {save.error ? (
              <ProblemView
                error={save.error}
                onReload={() => {
                  save.clear();
                  reload();
                }}
              />
            ) : null}
          </form>
        )}
      </Loaded>
      <h2>History</h2>
      <Loaded async={history}>
        {(h) =>
          h.items.length === 0 ? (
            <Empty>The grid’s default policy has never been changed.</Empty>
          ) : (
            <div class="table-wrap" tabIndex={0}>
              <table class="striped" aria-label="Pricing history">
                <thead>
                  <tr>
                    <th scope="col">Version</th>
                    <th scope="col">When</th>
                    <th scope="col">By</th>
                    <th scope="col">What changed</th>
                  </tr>
                </thead>
                <tbody>
                  {h.items.map((c, i) => (
                    <tr key={c.version}>
                      <td>{c.version}</td>
                      <td>{when(c.changed_at)}</td>
                      <td>{c.changed_by}</td>
                      <td>
                        {changed(h.items[i + 1]?.policy, c.policy).map((line) => (
                          <div key={line}>{line}</div>
                        ))}
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
