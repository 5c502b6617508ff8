// Loading, empty and error states shared by every page, and the hook that
// loads a page's data.

import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
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

export interface Action<A extends unknown[]> {
  busy: boolean;
  error: unknown;
  /** Runs the action; resolves true when it succeeded. */
  run: (...args: A) => Promise<boolean>;
  clear: () => void;
}

/** One user action (a button, a form): busy while it runs, its problem kept to show. */
export function useAction<A extends unknown[]>(act: (...args: A) => Promise<unknown>, onDone?: () => void): Action<A> {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const run = async (...args: A) => {
    setBusy(true);
    setError(undefined);
    try {
      await act(...args);
      onDone?.();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(undefined) };
}

/** A submitted form's text fields, trimmed. */
export function formFields(e: Event): Record<string, string> {
  e.preventDefault();
  const out: Record<string, string> = {};
  for (const [k, v] of new FormData(e.currentTarget as HTMLFormElement).entries()) if (typeof v === 'string') out[k] = v.trim();
  return out;
}

/** Calls `tick` every `ms` while the page is open (and visible). */
export function useInterval(tick: () => void, ms: number) {
  const latest = useRef(tick);
  latest.current = tick;
  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState !== 'hidden') latest.current();
    }, ms);
    return () => clearInterval(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ms]);
}
