// How far behind the system is, read from /metrics (Prometheus text,
// parsed here) every few seconds while the page is open: projection lag,
// the Kafka relay's backlog and the consumer groups' lag, charted over the
// time the page has been open; dead letters and the Stripe inbox beside.

import { Fragment } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { Problem } from '../../api/client';
import { session } from '../../auth/session';
import { Empty, Loading, ProblemView, useInterval } from '../../components/state';
import { TimeChart } from '../../components/TimeChart';
import { byLabel, parsePrometheus, type Sample } from '../../components/prometheus';

const EVERY_MS = 5_000;
const KEEP = 360; // half an hour

interface Scrape {
  at: number;
  samples: Sample[];
}

async function scrape(): Promise<Scrape> {
  let r: Response;
  try {
    const s = session.value;
    r = await fetch('/metrics', { headers: s ? { authorization: `Bearer ${s.token}` } : {} });
  } catch (e) {
    throw new Problem(0, { title: 'The API could not be reached', detail: String(e) });
  }
  if (!r.ok) {
    const doc = await r.json().catch(() => ({ title: r.statusText }));
    throw new Problem(r.status, { status: r.status, ...doc });
  }
  return { at: Date.now() / 1000, samples: parsePrometheus(await r.text()) };
}

/** One chart's series: per label value, the few largest, over the scrapes. */
function series(scrapes: Scrape[], metric: string, label: string, max = 4) {
  const per = scrapes.map((s) => byLabel(s.samples, metric, label));
  const peak: Record<string, number> = {};
  for (const p of per) for (const [k, v] of Object.entries(p)) peak[k] = Math.max(peak[k] ?? 0, v);
  const keys = Object.keys(peak).sort((a, b) => peak[b] - peak[a] || a.localeCompare(b));
  const shown = keys.slice(0, max);
  const out = shown.map((k) => ({ label: k, values: per.map((p) => p[k] ?? null) }));
  if (keys.length > max) out.push({ label: `${keys.length - max} others (sum)`, values: per.map((p) => keys.slice(max).reduce((sum, k) => sum + (p[k] ?? 0), 0)) });
  return { series: out, present: keys.length > 0 };
}

function total(s: Sample[] | undefined, name: string): number | undefined {
  if (!s) return undefined;
  const m = s.filter((x) => x.name === name);
  return m.length ? m.reduce((a, x) => a + x.value, 0) : undefined;
}

export function Overview() {
  const [scrapes, setScrapes] = useState<Scrape[]>([]);
  const [error, setError] = useState<unknown>();
  const take = () =>
    scrape().then(
      (s) => {
        setError(undefined);
        setScrapes((all) => [...all, s].slice(-KEEP));
      },
      setError,
    );
  useEffect(() => void take(), []);
  useInterval(take, EVERY_MS);
  const times = useMemo(() => scrapes.map((s) => s.at), [scrapes]);
  const projections = useMemo(() => series(scrapes, 'marketplace_projection_lag_events', 'projection'), [scrapes]);
  const relays = useMemo(() => series(scrapes, 'marketplace_relay_backlog_events', 'relay'), [scrapes]);
  const consumers = useMemo(() => series(scrapes, 'marketplace_kafka_consumer_lag_messages', 'group'), [scrapes]);
  const last = scrapes[scrapes.length - 1]?.samples;
  const count = (v: number) => v.toLocaleString('en', { maximumFractionDigits: 0 });
  const facts: [string, string, number | undefined][] = [
    ['Events in the store', 'marketplace_event_store_position', total(last, 'marketplace_event_store_position')],
    ['Projection lag (events, all)', 'marketplace_projection_lag_events', total(last, 'marketplace_projection_lag_events')],
    ['Unresolved dead letters', 'marketplace_projection_dead_letters', total(last, 'marketplace_projection_dead_letters')],
    ['Stripe events set aside', 'marketplace_stripe_inbox_set_aside', total(last, 'marketplace_stripe_inbox_set_aside')],
    ['Stripe events pending', 'marketplace_stripe_inbox_pending', total(last, 'marketplace_stripe_inbox_pending')],
    ['Chain lag (blocks)', 'marketplace_chain_lag_blocks', total(last, 'marketplace_chain_lag_blocks')],
  ];
  return (
    <section>
      <h1>Overview</h1>
      <p>
        Read from <code>/metrics</code> every {EVERY_MS / 1000} s while this page is open{' '}
        <small aria-live="polite" data-testid="scrapes">
          ({scrapes.length} {scrapes.length === 1 ? 'scrape' : 'scrapes'})
        </small>
        .
      </p>
      {error ? <ProblemView error={error} onReload={() => void take()} /> : null}
      {!last ? (
        !error && <Loading what="Reading the metrics" />
      ) : (
        <>
          <dl class="facts" aria-label="Now">
            {facts.map(([label, name, v]) => (
              <Fragment key={name}>
                <dt>{label}</dt>
                <dd data-metric={name}>{v === undefined ? '—' : count(v)}</dd>
              </Fragment>
            ))}
          </dl>
          <p>
            <Link href="/operator/dead-letters">Dead letters and Stripe events</Link>
          </p>
          <h2>Projection lag</h2>
          {projections.present ? (
            <TimeChart title="Events each projection has not applied yet" times={times} series={projections.series} format={count} />
          ) : (
            <Empty>No projection reports its lag.</Empty>
          )}
          <h2>Relay backlog</h2>
          {relays.present ? (
            <TimeChart title="Committed events the Kafka relay has not published yet" times={times} series={relays.series} format={count} />
          ) : (
            <Empty>No Kafka relay runs here (projections tail the store directly).</Empty>
          )}
          <h2>Consumer lag</h2>
          {consumers.present ? (
            <TimeChart title="Messages each consumer group has not applied yet (all partitions)" times={times} series={consumers.series} format={count} />
          ) : (
            <Empty>No Kafka consumer group runs here.</Empty>
          )}
        </>
      )}
    </section>
  );
}
