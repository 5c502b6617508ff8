// Production sign-in: Authorization Code with PKCE against the configured
// issuer (oidc-client-ts). The user, and so the tokens, live in memory
// only; only the PKCE verifier and state survive the redirect (in
// sessionStorage, as the flow requires). Tokens renew silently in a hidden
// iframe, which is also how a reload finds its session again.

import { UserManager, InMemoryWebStorage, WebStorageStateStore, type User } from 'oidc-client-ts';
import { signal } from '@preact/signals';
import type { AuthConfig } from '../config';
import { session, sessionFromToken, onSignOut } from './session';

type Oidc = Extract<AuthConfig, { mode: 'oidc' }>;

export const CALLBACK_PATH = '/auth/callback';
export const SILENT_PATH = '/auth/silent';

let manager: UserManager | null = null;

/** Why the last redirect back from the issuer did not sign anyone in. */
export const signInError = signal<string | null>(null);
let rolesClaim = 'roles';

function make(cfg: Oidc): UserManager {
  const origin = window.location.origin;
  return new UserManager({
    authority: cfg.issuer,
    client_id: cfg.client_id,
    redirect_uri: origin + CALLBACK_PATH,
    silent_redirect_uri: origin + SILENT_PATH,
    post_logout_redirect_uri: origin + '/',
    response_type: 'code',
    scope: 'openid profile email offline_access',
    extraQueryParams: cfg.audience ? { audience: cfg.audience } : {},
    automaticSilentRenew: true,
    userStore: new WebStorageStateStore({ store: new InMemoryWebStorage() }),
    stateStore: new WebStorageStateStore({ store: window.sessionStorage }),
  });
}

function apply(user: User | null) {
  // The API takes the access token (its audience is the API's).
  session.value = user && !user.expired ? sessionFromToken(user.access_token, rolesClaim) : null;
}

/** Starts OIDC: finishes a redirect back from the issuer, answers in the silent-renew iframe, or (any other load) looks for a session silently. */
export async function startOidc(cfg: Oidc): Promise<void> {
  rolesClaim = cfg.roles_claim ?? 'roles';
  manager = make(cfg);
  manager.events.addUserLoaded(apply);
  manager.events.addUserUnloaded(() => apply(null));
  manager.events.addAccessTokenExpired(() => apply(null));
  onSignOut(async () => {
    // signoutRedirect reads the ID token (the issuer's id_token_hint) and
    // then forgets the user; only when it cannot go is the user dropped here.
    await manager?.signoutRedirect().catch(() => manager?.removeUser());
  });
  const path = window.location.pathname;
  if (path === SILENT_PATH) {
    await manager.signinSilentCallback();
    return;
  }
  if (path === CALLBACK_PATH) {
    try {
      const user = await manager.signinRedirectCallback();
      apply(user);
      const back = typeof user.state === 'string' ? user.state : '/';
      window.history.replaceState(null, '', back);
    } catch (e) {
      // Cancelled at the issuer, or refused there: back to the sign-in
      // page, saying why (the callback URL cannot be used twice).
      signInError.value = e instanceof Error ? e.message : String(e);
      window.history.replaceState(null, '', '/');
    }
    return;
  }
  // A reload: ask the issuer silently whether its session is still there.
  await manager.signinSilent().then(apply, () => apply(null));
}

export async function oidcSignIn(returnTo: string) {
  await manager?.signinRedirect({ state: returnTo });
}
