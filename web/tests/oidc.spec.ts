// The console's production sign-in, for real: `marketplace serve` (tokens
// checked against an issuer's JWKS, no dev tokens) on the dev server's
// database, and a real OpenID Connect issuer (tests/oidc-issuer.ts). The
// console signs in with Authorization Code and PKCE, keeps the tokens in
// memory, and renews them in a hidden iframe, which is also how a reload
// finds its session again.

import { test, expect, type Page, type BrowserContext } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { accessible } from './helpers';
import { AUDIENCE, CLIENT_ID, ROLES_CLAIM, startIssuer, type Issuer } from './oidc-issuer';

const repo = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
// oidc-client-ts renews a minute before expiry: 70 s tokens renew 10 s in.
const TOKEN_TTL_SECS = 70;

let issuer: Issuer;
let serve: ChildProcess;
let consoleUrl: string;

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

test.beforeAll(async () => {
  const database = process.env.CONSOLE_DATABASE_URL;
  if (!database) throw new Error('CONSOLE_DATABASE_URL is unset (tests/global-setup.ts sets it)');
  const [issuerPort, servePort] = [await freePort(), await freePort()];
  consoleUrl = `http://127.0.0.1:${servePort}`;
  issuer = await startIssuer(issuerPort, consoleUrl, TOKEN_TTL_SECS);

  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('STRIPE_') || k.startsWith('MARKETPLACE_')) delete env[k];
  const logs: string[] = [];
  serve = spawn(process.env.MARKETPLACE_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(repo, 'target'), 'debug/marketplace'), ['serve'], {
    cwd: repo,
    env: {
      ...env,
      DATABASE_URL: database,
      DATABASE_MAX_CONNECTIONS: '8',
      MARKETPLACE_LISTEN: `127.0.0.1:${servePort}`,
      JWT_JWKS_URL: issuer.jwksUri,
      JWT_ISSUER: issuer.issuer,
      JWT_AUDIENCE: AUDIENCE,
      JWT_ROLES_CLAIM: ROLES_CLAIM,
      OIDC_CLIENT_ID: CLIENT_ID,
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  serve.stdout!.on('data', (d: Buffer) => logs.push(d.toString()));
  serve.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
  const until = Date.now() + 60_000;
  for (;;) {
    if (serve.exitCode !== null) throw new Error(`marketplace serve exited with ${serve.exitCode}\n${logs.join('')}`);
    const ok = await fetch(`${consoleUrl}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > until) throw new Error(`marketplace serve not ready\n${logs.join('')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
});

test.afterAll(async () => {
  if (serve && serve.exitCode === null) {
    const exited = new Promise((r) => serve.once('exit', r));
    serve.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (serve.exitCode === null) serve.kill('SIGKILL');
  }
  await issuer?.close();
});

/** Every access token the issuer hands this context, in order. */
function issuedTokens(context: BrowserContext): string[] {
  const tokens: string[] = [];
  context.on('response', async (r) => {
    if (r.request().method() === 'POST' && r.url() === `${issuer.issuer}/token` && r.ok()) {
      const body = (await r.json().catch(() => ({}))) as { access_token?: string };
      if (body.access_token) tokens.push(body.access_token);
    }
  });
  return tokens;
}

/** Signs in at the issuer's own login page, from the console's sign-in button. */
async function signInAtIssuer(page: Page, login: string, at = '/') {
  await page.goto(consoleUrl + at);
  await expect(page.getByRole('heading', { name: 'Sign in to the marketplace console' })).toBeVisible();
  await atIssuerLogin(page);
  await page.getByPlaceholder('Enter any login').fill(login);
  await page.getByPlaceholder('and password').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await expect(page).toHaveURL(new RegExp(`^${consoleUrl}/`));
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
}

async function atIssuerLogin(page: Page) {
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(new RegExp(`^${issuer.issuer}/`));
  await expect(page.getByPlaceholder('Enter any login')).toBeVisible();
}

/** The hidden iframe's request: an authorization request that must not show anything. */
function silentRequest(page: Page, timeout = 15_000) {
  return page.waitForRequest((r) => r.url().startsWith(`${issuer.issuer}/auth?`) && new URL(r.url()).searchParams.get('prompt') === 'none', { timeout });
}

function menu(page: Page) {
  return page.getByRole('navigation', { name: 'Main' });
}

test.beforeEach(async ({ context }) => {
  // The issuer's login page imports a web font; there is no internet here.
  await context.route(/fonts\.googleapis\.com/, (r) => r.abort());
});

test('a user signs in at the issuer, keeps the tokens in memory, and stays signed in across a reload and a renewal', async ({ page, context }) => {
  const tokens = issuedTokens(context);
  await expect(page.request.get(`${consoleUrl}/console/config.json`).then((r) => r.json())).resolves.toMatchObject({
    auth: { mode: 'oidc', issuer: issuer.issuer, client_id: CLIENT_ID, audience: AUDIENCE, roles_claim: ROLES_CLAIM },
  });
  // `serve` mints no dev tokens.
  expect((await page.request.post(`${consoleUrl}/dev/token`, { data: { sub: 'x', roles: ['cloud-user'] } })).status()).toBe(404);

  // A link into the console, followed before signing in, still leads there after.
  await signInAtIssuer(page, 'uma', '/nodes?cpu=2');
  await expect(page).toHaveURL(`${consoleUrl}/nodes?cpu=2`);
  await expect(page.getByLabel('Free vCPUs at least')).toHaveValue('2');
  await expect(menu(page).getByText('uma', { exact: true })).toBeVisible();
  // A cloud user's menus, and nobody else's.
  for (const item of ['Nodes', 'Deploy', 'Deployments', 'Wallet']) await expect(menu(page).getByRole('link', { name: item, exact: true })).toBeVisible();
  for (const item of ['Review queue', 'Pricing', 'Requests', 'My nodes']) await expect(menu(page).getByRole('link', { name: item, exact: true })).toHaveCount(0);

  // The API takes the issuer's token: the catalog and the user's own deployments load.
  await expect(page.getByRole('heading', { name: 'Nodes' })).toBeVisible();
  await expect(page.locator('tbody tr[data-node]').first()).toBeVisible();
  const listed = page.waitForRequest((r) => r.url().startsWith(`${consoleUrl}/v1/deployments`));
  await menu(page).getByRole('link', { name: 'Deployments', exact: true }).click();
  await expect(page.getByText('No deployments yet.')).toBeVisible();
  await expect.poll(() => tokens.length).toBeGreaterThan(0);
  expect(tokens.map((t) => `Bearer ${t}`)).toContain((await listed).headers()['authorization']);
  await accessible(page, 'the deployments page, signed in with OIDC');

  // Tokens in memory only: no storage holds one (sessionStorage keeps
  // nothing but what the redirect needed, and that is gone after it).
  const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }]));
  for (const t of tokens) expect(stored).not.toContain(t);
  expect(stored).not.toMatch(/eyJ[\w-]+\.eyJ/);

  // A reload forgets the tokens; the hidden iframe asks the issuer, whose
  // session is still there, and the user is back without a login form.
  const before = tokens.length;
  let silentRenewal = silentRequest(page);
  await page.reload();
  await silentRenewal;
  await expect(page).toHaveURL(`${consoleUrl}/deployments`);
  await expect(page.getByRole('heading', { name: 'Deployments' })).toBeVisible();
  await expect(menu(page).getByText('uma', { exact: true })).toBeVisible();
  await expect(page.getByText('No deployments yet.')).toBeVisible();
  await expect.poll(() => tokens.length).toBe(before + 1);

  // Before the token expires it is renewed the same way, and the API takes the new one.
  silentRenewal = silentRequest(page, 30_000);
  await expect.poll(() => tokens.length, { timeout: 30_000 }).toBe(before + 2);
  await silentRenewal;
  const wallet = page.waitForRequest((r) => r.url().startsWith(`${consoleUrl}/v1/wallet`));
  await menu(page).getByRole('link', { name: 'Wallet', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'Wallet' })).toBeVisible();
  expect((await wallet).headers()['authorization']).toBe(`Bearer ${tokens.at(-1)}`);
  await expect(page.getByText('The ledger is empty.')).toBeVisible();
});

test('an operator sees only the operator menus; signing out ends the issuer session too', async ({ page }) => {
  await signInAtIssuer(page, 'otto');
  for (const item of ['Review queue', 'Pricing', 'Dead letters', 'Audit', 'Overview']) await expect(menu(page).getByRole('link', { name: item, exact: true })).toBeVisible();
  for (const item of ['Nodes', 'Wallet', 'Deployments', 'Requests']) await expect(menu(page).getByRole('link', { name: item, exact: true })).toHaveCount(0);
  await menu(page).getByRole('link', { name: 'Pricing', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'Pricing' })).toBeVisible();
  await expect(page.getByRole('alert')).toHaveCount(0);

  await menu(page).getByText('otto', { exact: true }).click();
  // The issuer is told whose session ends (Auth0 and others want the ID token as the hint).
  const end = page.waitForRequest((r) => r.url().startsWith(`${issuer.issuer}/session/end`));
  await menu(page).getByRole('link', { name: 'Sign out' }).click();
  expect(new URL((await end).url()).searchParams.get('id_token_hint')).toMatch(/^eyJ/);
  await page.getByRole('button', { name: 'Yes, sign me out' }).click();
  await expect(page).toHaveURL(`${consoleUrl}/`);
  await expect(page.getByRole('heading', { name: 'Sign in to the marketplace console' })).toBeVisible();
  // The issuer forgot the session: a reload does not sign back in.
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Sign in to the marketplace console' })).toBeVisible();
  await expect(menu(page).getByRole('link', { name: 'Pricing' })).toHaveCount(0);
});

test('cancelling at the issuer comes back to the sign-in page, saying so, and signing in still works', async ({ page }) => {
  await page.goto(consoleUrl + '/');
  await atIssuerLogin(page);
  await page.getByRole('link', { name: '[ Cancel ]' }).click();
  await expect(page).toHaveURL(`${consoleUrl}/`);
  await expect(page.getByRole('heading', { name: 'Sign in to the marketplace console' })).toBeVisible();
  await expect(page.getByRole('alert')).toHaveText(/Signing in did not finish: End-User aborted interaction/);
  await accessible(page, 'the OIDC sign-in page with an error');
  await atIssuerLogin(page);
});
