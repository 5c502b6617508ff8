// Starts what the console talks to, on free ports, for the whole run:
// localstripe behind the repository's wrapper (the `localstripe` example,
// built by `cargo test`; it installs localstripe into
// ~/.cache/marketplace-localstripe on first use) and the real dev server
// (`marketplace dev`, MARKETPLACE_BIN or $CARGO_TARGET_DIR/debug/marketplace)
// with a fresh data dir. Returns the teardown that stops both. The dev
// server's database is handed on (CONSOLE_DATABASE_URL) to the OIDC spec,
// whose `marketplace serve` reads the same catalog.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, chmodSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const target = process.env.CARGO_TARGET_DIR ?? join(repo, 'target');
const WEBHOOK_SECRET = 'whsec_console_tests';

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

function binary(env: string | undefined, path: string, what: string): string {
  const bin = env ?? path;
  if (!existsSync(bin)) throw new Error(`${what} not found at ${bin}: run \`cargo test --workspace\` (or \`cargo build --bin marketplace --example localstripe\`) first`);
  return bin;
}

/** Resolves with the first line of the child's stdout matching `re`. */
function lineOf(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((ok, fail) => {
    let buf = '';
    const t = setTimeout(() => fail(new Error(`no line matching ${re} within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = buf.match(re);
      if (m) {
        clearTimeout(t);
        ok(m);
      }
    });
    child.on('exit', (code) => fail(new Error(`exited with ${code} before printing ${re}`)));
  });
}

async function ready(url: string, child: ChildProcess, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? -1));
  while (Date.now() < until) {
    if (exited !== null) throw new Error(`marketplace dev exited with ${exited}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms`);
}

export default async function globalSetup() {
  const started = Date.now();
  const port = await freePort();
  const api = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  const data = mkdtempSync(join(tmpdir(), 'marketplace-console-'));
  chmodSync(data, 0o777); // the private PostgreSQL runs as `postgres` when we are root
  const stop = async () => {
    for (const c of children.reverse()) {
      if (c.exitCode === null) {
        c.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => {
            c.kill('SIGKILL');
            r(null);
          }, 10_000);
          c.on('exit', () => {
            clearTimeout(t);
            r(null);
          });
        });
      }
    }
    rmSync(data, { recursive: true, force: true });
  };
  try {
    const wrapper = spawn(binary(process.env.LOCALSTRIPE_WRAPPER, join(target, 'debug/examples/localstripe'), 'the localstripe wrapper'), [], {
      env: { ...process.env, MARKETPLACE_WEBHOOK_URL: `${api}/v1/webhooks/stripe`, STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(wrapper);
    const [, stripeBase] = await lineOf(wrapper, /STRIPE_API_BASE=(\S+)/, 120_000);

    const logs: string[] = [];
    const dev = spawn(binary(process.env.MARKETPLACE_BIN, join(target, 'debug/marketplace'), 'marketplace'), ['dev'], {
      cwd: repo,
      env: {
        ...process.env,
        MARKETPLACE_DATA_DIR: data,
        MARKETPLACE_LISTEN: `127.0.0.1:${port}`,
        STRIPE_SECRET_KEY: 'sk_test_console',
        STRIPE_PUBLISHABLE_KEY: 'pk_test_console',
        STRIPE_API_BASE: stripeBase,
        STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
        // Alliances get their chain farm within seconds, not a minute.
        ALLIANCE_SETTLEMENT_INTERVAL_SECS: '2',
        // Info from the dev command itself: it names its database, which
        // the OIDC spec's `marketplace serve` joins.
        RUST_LOG: `${process.env.RUST_LOG ?? 'warn'},marketplace::cmd::dev=info`,
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(dev);
    const keep = (d: Buffer) => {
      logs.push(d.toString());
      if (logs.length > 200) logs.shift();
    };
    dev.stdout!.on('data', keep);
    dev.stderr!.on('data', keep);
    let database: string | undefined;
    dev.stderr!.on('data', () => (database ??= logs.join('').match(/database_url=(postgres\S+)/)?.[1]));
    await ready(`${api}/readyz`, dev, 120_000).catch((e) => {
      throw new Error(`${e.message}\n${logs.join('')}`);
    });
    process.env.CONSOLE_URL = api;
    // Logged before it listens, so known by now.
    if (!database) throw new Error(`marketplace dev did not log its database_url\n${logs.join('')}`);
    process.env.CONSOLE_DATABASE_URL = database;
    process.env.STRIPE_API_BASE = stripeBase;
    console.log(`marketplace dev on ${api}, localstripe at ${stripeBase} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    await stop();
    throw e;
  }
  return stop;
}
