// Who is signed in: the bearer token and the roles it carries. Tokens are
// held in memory only; dev-mode sign-ins also survive a reload of the tab
// (sessionStorage, dev only), production ones are restored by a silent
// OIDC renew instead.

import { signal, computed } from '@preact/signals';

export type Role = 'cloud-user' | 'cloud-provider' | 'cloud-operator';
export const ROLES: Role[] = ['cloud-user', 'cloud-provider', 'cloud-operator'];

export interface Session {
  token: string;
  subject: string;
  roles: Role[];
  expiresAt: number; // epoch ms
}

export const session = signal<Session | null>(null);
export const roles = computed(() => session.value?.roles ?? []);

export function hasRole(role: Role): boolean {
  return roles.value.includes(role);
}

/** The claims of a JWT, unverified (the API verifies; this only reads). */
export function claims(token: string): Record<string, unknown> {
  const part = token.split('.')[1] ?? '';
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
  return JSON.parse(json) as Record<string, unknown>;
}

export function sessionFromToken(token: string, rolesClaim = 'roles'): Session {
  const c = claims(token);
  const raw = c[rolesClaim];
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(/[ ,]/) : [];
  return {
    token,
    subject: String(c.sub ?? ''),
    roles: list.filter((r): r is Role => ROLES.includes(r as Role)),
    expiresAt: typeof c.exp === 'number' ? c.exp * 1000 : Date.now() + 3600_000,
  };
}

let signOutHook: (() => Promise<void>) | null = null;
export function onSignOut(hook: () => Promise<void>) {
  signOutHook = hook;
}
export async function signOut() {
  session.value = null;
  if (signOutHook) await signOutHook();
}
