// The notification feed: every item (newest first), the unread count in
// the menu, marking one or all read; new items arrive by the feed's
// server-sent events (GET /v1/notifications/stream), one stream per
// signed-in session.

import { signal, effect } from '@preact/signals';
import { Link } from 'wouter-preact';
import { api, ok, type Schemas } from '../../api/client';
import { follow } from '../../api/sse';
import { session, hasRole } from '../../auth/session';
import { Empty, Loading, ProblemView } from '../../components/state';
import { when } from '../../components/format';

type Item = Schemas['NotificationBody'];

const items = signal<Item[] | null>(null);
const unread = signal(0);
const failure = signal<unknown>(null);
let stop: (() => void) | null = null;

async function start() {
  failure.value = null;
  try {
    let after = 0;
    const all: Item[] = [];
    for (let i = 0; i < 20; i++) {
      const page = await ok(api.GET('/v1/notifications', { params: { query: { after, limit: 200 } } }));
      all.push(...page.items);
      unread.value = page.unread;
      if (page.next_after == null || page.items.length === 0) break;
      after = page.next_after;
    }
    items.value = all.reverse();
    const last = all.length ? all[0].position : 0;
    stop = follow(
      `/v1/notifications/stream?after=${last}`,
      (e) => {
        const n = JSON.parse(e.data) as Item;
        if (items.value?.some((x) => x.id === n.id)) return;
        items.value = [n, ...(items.value ?? [])];
        if (!n.read_at) unread.value += 1;
      },
      () => undefined,
    );
  } catch (e) {
    failure.value = e;
  }
}

// Start with a cloud user's session, stop when it ends.
effect(() => {
  const s = session.value;
  stop?.();
  stop = null;
  items.value = null;
  unread.value = 0;
  if (s && hasRole('cloud-user')) void start();
});

export function UnreadBadge() {
  if (unread.value === 0) return null;
  return (
    <span class="badge" aria-label={`${unread.value} unread`}>
      {unread.value}
    </span>
  );
}

function describe(n: Item): string {
  const d = (n.details ?? {}) as Record<string, unknown>;
  switch (n.kind) {
    case 'deployment_running':
      return 'Your deployment is running.';
    case 'deployment_failed':
      return `Your deployment failed: ${d.reason ?? 'no reason given'}.`;
    case 'balance_low':
      return `Your balance is low: about ${d.runway_hours ?? '?'} hours of runway left.`;
    case 'auto_top_up_failed':
      return `An automatic top-up failed: ${d.message ?? d.code ?? ''}`;
    case 'maintenance_announced':
    case 'maintenance_soon':
      return `Maintenance on node ${d.node_id}: ${when(String(d.start))} – ${when(String(d.end))} (${d.reason ?? ''}).`;
    case 'grace_period_started':
      return `Out of funds: the deployment will be deleted at ${when(String(d.deletion_at))} unless you top up.`;
    case 'grace_period_ended':
      return 'Funds arrived: the grace period ended.';
    case 'deleted_out_of_funds':
      return 'A deployment was deleted for lack of funds.';
    default:
      return n.kind.replace(/_/g, ' ');
  }
}

export function Notifications() {
  const list = items.value;
  const markAll = async () => {
    const r = await ok(api.POST('/v1/notifications/read', { body: {} })).catch((e) => {
      failure.value = e;
      return null;
    });
    if (!r) return;
    unread.value = r.unread;
    const now = new Date().toISOString();
    items.value = (items.value ?? []).map((n) => (n.read_at ? n : { ...n, read_at: now }));
  };
  const markOne = async (n: Item) => {
    const ok_ = await ok(api.POST('/v1/notifications/{id}/read', { params: { path: { id: n.id } } })).then(
      () => true,
      (e) => {
        failure.value = e;
        return false;
      },
    );
    if (!ok_) return;
    unread.value = Math.max(0, unread.value - 1);
    items.value = (items.value ?? []).map((x) => (x.id === n.id ? { ...x, read_at: new Date().toISOString() } : x));
  };
  return (
    <section>
      <h1>Notifications</h1>
      {failure.value ? <ProblemView error={failure.value} onReload={() => void start()} /> : null}
      {list === null ? (
        failure.value ? null : <Loading />
      ) : list.length === 0 ? (
        <Empty>Nothing yet. You will hear here about your deployments, your balance and maintenance.</Empty>
      ) : (
        <>
          <p>
            {unread.value} unread{' '}
            {unread.value > 0 && (
              <button class="outline" onClick={markAll}>
                Mark all read
              </button>
            )}
          </p>
          <ul class="feed">
            {list.map((n) => (
              <li key={n.id} class={n.read_at ? 'read' : 'unread'}>
                {!n.read_at && <strong>New · </strong>}
                {describe(n)} <small>{when(n.at)}</small>
                {n.deployment_id && (
                  <>
                    {' '}
                    <Link href={`/deployments/${n.deployment_id}`}>Open the deployment</Link>
                  </>
                )}
                {!n.read_at && (
                  <>
                    {' '}
                    <button class="outline secondary" onClick={() => markOne(n)}>
                      Mark read
                    </button>
                  </>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
