// A real OpenID Connect issuer for the console's production sign-in
// (panva's `oidc-provider`), set up as an Auth0 tenant would be for the
// console: one public client (no secret, PKCE), access tokens that are
// RS256 JWTs for the API's audience (asked for with Auth0's `audience`
// parameter) carrying the roles in a namespaced claim, and no consent
// screen for this first-party client. Its own login page (the library's
// development interactions) takes any login; the login name picks the
// roles.

import { createServer, type Server } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
// (The package has no type declarations; the tests are not type-checked.)
import Provider, { errors } from 'oidc-provider';

export const CLIENT_ID = 'marketplace-console';
export const AUDIENCE = 'https://api.marketplace.test';
export const ROLES_CLAIM = 'https://marketplace.test/roles';

/** Who may sign in, and with which roles: the login name decides. */
export const ACCOUNTS: Record<string, string[]> = {
  uma: ['cloud-user'],
  otto: ['cloud-operator'],
};

export interface Issuer {
  issuer: string;
  jwksUri: string;
  close(): Promise<void>;
}

export async function startIssuer(port: number, consoleOrigin: string, accessTokenTtl: number): Promise<Issuer> {
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = { ...privateKey.export({ format: 'jwk' }), kid: 'console-tests', alg: 'RS256', use: 'sig' };

  const configuration = {
    clients: [
      {
        client_id: CLIENT_ID,
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [`${consoleOrigin}/auth/callback`, `${consoleOrigin}/auth/silent`],
        post_logout_redirect_uris: [`${consoleOrigin}/`],
      },
    ],
    jwks: { keys: [key] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
    // Auth0 names the API with `audience`, not RFC 8707's `resource`.
    extraParams: ['audience'],
    findAccount: async (_ctx, sub) =>
      ACCOUNTS[sub] ? { accountId: sub, claims: async () => ({ sub, name: sub, email: `${sub}@example.test` }) } : undefined,
    // A first-party application: the grant is given without asking.
    loadExistingGrant: async (ctx) => {
      const { Grant } = ctx.oidc.provider;
      const grant = new Grant({ clientId: ctx.oidc.client!.clientId, accountId: ctx.oidc.session!.accountId });
      grant.addOIDCScope(String(ctx.oidc.params!.scope ?? 'openid'));
      grant.addResourceScope(AUDIENCE, 'api');
      await grant.save();
      return grant;
    },
    extraTokenClaims: async (_ctx, token) =>
      'accountId' in token && token.kind === 'AccessToken' ? { [ROLES_CLAIM]: ACCOUNTS[token.accountId as string] ?? [] } : undefined,
    ttl: { AccessToken: accessTokenTtl, IdToken: accessTokenTtl, Session: 3600, Grant: 3600, Interaction: 600 },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx) => {
          const audience = ctx.oidc.params?.audience;
          return typeof audience === 'string' ? audience : AUDIENCE;
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== AUDIENCE) throw new errors.InvalidTarget();
          return { scope: 'api', audience: AUDIENCE, accessTokenTTL: accessTokenTtl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
  };
  const provider = new Provider(issuer, configuration);
  const server: Server = createServer(provider.callback());
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
