// The maintenance calendar of the provider's nodes
// (GET /v1/provider/maintenance): upcoming windows, scheduling one on a node
// (POST /v1/nodes/{node}/maintenance, the window id chosen here so a retry
// is recognised) and cancelling one that has not started.

import { useMemo } from 'preact/hooks';
import { api, ok, Problem } from '../../api/client';
import { Empty, Loaded, ProblemView, formFields, useAction, useAsync } from '../../components/state';
import { when } from '../../components/format';
import { allProviderNodes } from './Nodes';

/** `<input type="datetime-local">` value, in the browser's zone, `minutes` from now. */
function localInput(minutes: number): string {
  const d = new Date(Date.now() + minutes * 60_000);
  d.setSeconds(0, 0);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

/** Waits until the calendar shows (or no longer shows) a window: the calendar is a projection. */
async function calendarUntil(windowId: string, present: boolean) {
  for (let i = 0; i < 40; i++) {
    const cal = await ok(api.GET('/v1/provider/maintenance'));
    if (cal.items.some((w) => w.window_id === windowId && (present || w.status !== 'cancelled')) === present) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

export function ProviderMaintenance() {
  const calendar = useAsync(() => ok(api.GET('/v1/provider/maintenance')), []);
  const nodes = useAsync(allProviderNodes, []);
  const cancel = useAction(async (nodeId: number, windowId: string) => {
    await ok(api.POST('/v1/nodes/{node_id}/maintenance/{window_id}/cancel', { params: { path: { node_id: nodeId, window_id: windowId } }, body: {} }));
    await calendarUntil(windowId, false);
  }, calendar.reload);
  return (
    <section>
      <h1>Maintenance</h1>
      <Schedule nodes={nodes.data?.map((n) => n.node_id) ?? []} onDone={calendar.reload} />
      <h2>Upcoming windows</h2>
      {cancel.error ? <ProblemView error={cancel.error} onReload={calendar.reload} /> : null}
      <Loaded async={calendar}>
        {(cal) =>
          cal.items.length === 0 ? (
            <Empty>No maintenance is scheduled on your nodes.</Empty>
          ) : (
            <div class="table-wrap" tabIndex={0}>
              <table class="striped" aria-label="Upcoming maintenance">
                <thead>
                  <tr>
                    <th scope="col">Node</th>
                    <th scope="col">From</th>
                    <th scope="col">Until</th>
                    <th scope="col">Reason</th>
                    <th scope="col">Status</th>
                    <th scope="col"><span class="visually-hidden">Actions</span></th>
                  </tr>
                </thead>
                <tbody>
                  {cal.items.map((w) => (
                    <tr key={w.window_id} data-window={w.window_id}>
                      <td>
                        {w.node_id} <small>farm {w.farm_id}</small>
                      </td>
                      <td>{when(w.starts_at)}</td>
                      <td>{when(w.ends_at)}</td>
                      <td>{w.reason}</td>
                      <td>{w.status}</td>
                      <td>
                        {new Date(w.starts_at).getTime() > Date.now() && (
                          <button
                            class="secondary outline"
                            disabled={cancel.busy}
                            onClick={() => void cancel.run(w.node_id, w.window_id)}
                          >
                            Cancel <span class="visually-hidden">the window on node {w.node_id} from {when(w.starts_at)}</span>
                          </button>
                        )}
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

function Schedule({ nodes, onDone }: { nodes: number[]; onDone: () => void }) {
  // One id per window being filled in: a retry of the same form is the same window.
  const windowId = useMemo(() => crypto.randomUUID(), [onDone, nodes.length]);
  const schedule = useAction(async (f: Record<string, string>) => {
    await ok(
      api.POST('/v1/nodes/{node_id}/maintenance', {
        params: { path: { node_id: Number(f.node_id) } },
        body: {
          window_id: windowId,
          starts_at: new Date(f.starts_at).toISOString(),
          ends_at: new Date(f.ends_at).toISOString(),
          reason: f.reason,
        },
      }),
    );
    await calendarUntil(windowId, true);
  }, onDone);
  const field = schedule.error instanceof Problem ? schedule.error.field : undefined;
  return (
    <details open>
      <summary>Schedule a window</summary>
      <form aria-label="Schedule maintenance" onSubmit={(e) => void schedule.run(formFields(e))}>
        <div class="filters">
          <label>
            Node
            <select name="node_id" required aria-invalid={field === 'node_id' ? 'true' : undefined}>
              {nodes.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </label>
          <label>
            Starts
            <input type="datetime-local" name="starts_at" required defaultValue={localInput(24 * 60)} aria-invalid={field === 'starts_at' ? 'true' : undefined} />
          </label>
          <label>
            Ends
            <input type="datetime-local" name="ends_at" required defaultValue={localInput(26 * 60)} aria-invalid={field === 'ends_at' ? 'true' : undefined} />
          </label>
        </div>
        <label>
          Reason (shown to the users on the node)
          <input name="reason" required aria-invalid={field === 'reason' ? 'true' : undefined} />
        </label>
        <button type="submit" disabled={schedule.busy || nodes.length === 0} aria-busy={schedule.busy}>
          Schedule the window
        </button>
        {nodes.length === 0 && <Empty>You have no nodes to schedule maintenance on yet.</Empty>}
        {schedule.error ? <ProblemView error={schedule.error} /> : null}
      </form>
    </details>
  );
}
