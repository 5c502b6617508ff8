// Server-sent events with the bearer token (EventSource cannot send one):
// @microsoft/fetch-event-source, which resumes with Last-Event-ID after a
// dropped connection, as EventSource would.

import { fetchEventSource, EventStreamContentType } from '@microsoft/fetch-event-source';
import { session } from '../auth/session';

export interface StreamEvent {
  id: string;
  event: string;
  data: string;
}

/** Follows `path` until `stop()` or the server ends the stream. */
export function follow(
  path: string,
  onEvent: (e: StreamEvent) => void,
  onState: (state: 'open' | 'closed' | 'error', error?: string) => void,
): () => void {
  const abort = new AbortController();
  void fetchEventSource(path, {
    signal: abort.signal,
    openWhenHidden: true,
    headers: session.value ? { authorization: `Bearer ${session.value.token}` } : {},
    async onopen(r) {
      if (r.status === 204) {
        // Nothing more will come: the deployment has ended.
        onState('closed');
        abort.abort();
        return;
      }
      if (!r.ok || !r.headers.get('content-type')?.startsWith(EventStreamContentType)) {
        const body = await r.json().catch(() => null);
        throw new Error(body?.detail ?? body?.title ?? `HTTP ${r.status}`);
      }
      onState('open');
    },
    onmessage(m) {
      if (m.event || m.data) onEvent({ id: m.id, event: m.event, data: m.data });
    },
    onclose() {
      // The server closes after a terminal status: do not reconnect.
      onState('closed');
      abort.abort();
    },
    onerror(err) {
      onState('error', err instanceof Error ? err.message : String(err));
      // Returning nothing retries with backoff; a refused stream is final.
      if (err instanceof Error && /HTTP 4\d\d/.test(err.message)) throw err;
    },
  }).catch(() => undefined);
  return () => abort.abort();
}
