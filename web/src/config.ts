// The console's runtime settings, served by the API at /console/config.json
// (dev: dev sign-in; serve: the OIDC issuer; Stripe's publishable key).

export type AuthConfig =
  | { mode: 'dev' }
  | { mode: 'oidc'; issuer: string; client_id: string; audience?: string; roles_claim?: string };

export interface StripeConfig {
  publishable_key: string;
  js_url: string;
}

export interface ConsoleConfig {
  auth: AuthConfig;
  stripe: StripeConfig | null;
}

let loaded: ConsoleConfig | null = null;

export async function loadConfig(): Promise<ConsoleConfig> {
  if (loaded) return loaded;
  const r = await fetch('/console/config.json', { headers: { accept: 'application/json' } });
  if (!r.ok) throw new Error(`The console's settings could not be read (HTTP ${r.status}).`);
  loaded = (await r.json()) as ConsoleConfig;
  return loaded;
}

export function config(): ConsoleConfig {
  if (!loaded) throw new Error('config not loaded');
  return loaded;
}
