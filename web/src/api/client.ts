// The typed API client: openapi-fetch over the generated schema
// (schema.d.ts, from the server's own OpenAPI document; regenerate with
// scripts/gen-client). Every request carries the session's bearer token;
// error answers become a thrown Problem (RFC 9457).

import createClient, { type Middleware } from 'openapi-fetch';
import type { paths, components, operations } from './schema';
import { session, signOut } from '../auth/session';

export type Schemas = components['schemas'];
/** The query parameters of an operation, by its operationId. */
export type Query<Op extends keyof operations> = NonNullable<operations[Op]['parameters']['query']>;

export interface ProblemDoc {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  field?: string;
}

/** An error answer of the API, or the network failing. */
export class Problem extends Error {
  constructor(
    public status: number,
    public doc: ProblemDoc,
  ) {
    super(doc.detail ?? doc.title ?? `HTTP ${status}`);
  }
  get conflict() {
    return this.status === 409;
  }
  get field() {
    return this.doc.field;
  }
}

const auth: Middleware = {
  onRequest({ request }) {
    const s = session.value;
    if (s) request.headers.set('authorization', `Bearer ${s.token}`);
    return request;
  },
  onResponse({ response }) {
    // A token the API no longer accepts: sign out rather than fail every page.
    if (response.status === 401 && session.value && session.value.expiresAt < Date.now()) void signOut();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: '' });
api.use(auth);

/** The data of an openapi-fetch answer, or a thrown Problem. */
export async function ok<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let r;
  try {
    r = await call;
  } catch (e) {
    throw new Problem(0, { title: 'The API could not be reached', detail: String(e) });
  }
  if (r.response.ok) return r.data as T;
  const e = r.error;
  const doc: ProblemDoc =
    e && typeof e === 'object' ? (e as ProblemDoc) : { title: r.response.statusText, detail: typeof e === 'string' ? e : undefined };
  throw new Problem(r.response.status, { status: r.response.status, ...doc });
}

/** A fresh Idempotency-Key for one user action (retries reuse it). */
export function idempotencyKey(): string {
  return crypto.randomUUID();
}
