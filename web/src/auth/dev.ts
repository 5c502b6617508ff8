// Dev mode: `marketplace dev` mints tokens at POST /dev/token (absent in
// `serve`). The session is kept for this tab only, so a reload stays
// signed in while developing.

import { session, sessionFromToken, onSignOut, type Role } from './session';

const KEY = 'marketplace-dev-session';

export async function devSignIn(sub: string, roles: Role[]): Promise<void> {
  const r = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ sub, roles }),
  });
  if (!r.ok) {
    const body = await r.json().catch(() => null);
    throw new Error(body?.detail ?? body?.title ?? `Sign-in refused (HTTP ${r.status}).`);
  }
  const { token } = (await r.json()) as { token: string };
  session.value = sessionFromToken(token);
  sessionStorage.setItem(KEY, token);
}

export function restoreDevSession() {
  onSignOut(async () => sessionStorage.removeItem(KEY));
  const token = sessionStorage.getItem(KEY);
  if (!token) return;
  const s = sessionFromToken(token);
  if (s.expiresAt > Date.now() + 30_000) session.value = s;
  else sessionStorage.removeItem(KEY);
}
