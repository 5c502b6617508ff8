// Loading, empty and error states shared by every page, and the hook that
// loads a page's data.

import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { Problem } from '../api/client';

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p aria-busy="true" role="status">
      {what}…
    </p>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

/** A problem document as a readable message; a 409 offers to reload. */
export function ProblemView({ error, onReload }: { error: unknown; onReload?: () => void }) {
  const p = error instanceof Problem ? error : null;
  const title = p?.doc.title ?? 'Something went wrong';
  const detail = p ? p.doc.detail : error instanceof Error ? error.message : String(error);
  return (
    <article class="problem" role="alert">
      <strong>{title}</strong>
      {detail && detail !== title && <p>{detail}</p>}
      {p?.field && (
        <p>
          Field: <code>{p.field}</code>
        </p>
      )}
      {p?.conflict && onReload && (
        <p>
          It changed meanwhile. <button onClick={onReload}>Reload the latest</button>
        </p>
      )}
      {p?.status === 0 && onReload && <button onClick={onReload}>Try again</button>}
    </article>
  );
}

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` on mount and whenever `deps` change; `reload()` runs it again. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** Shows loading / error / the page for one Async. */
export function Loaded<T>({ async: a, children }: { async: Async<T>; children: (data: T) => ComponentChildren }) {
  if (a.error) return <ProblemView error={a.error} onReload={a.reload} />;
  if (a.data === undefined) return <Loading />;
  return <>{children(a.data)}</>;
}
