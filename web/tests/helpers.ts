import { expect, type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqexampleconsoletestkey0000000000000000 tester@console';

/** A subject no other test uses. */
export function someone(name: string): string {
  return `${name}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}

export async function signIn(page: Page, subject: string, roles: string[] = ['cloud-user']) {
  await page.goto(process.env.CONSOLE_URL! + '/');
  await expect(page.getByRole('heading', { name: /sign in/i })).toBeVisible();
  await page.getByLabel('Subject').fill(subject);
  for (const role of ['Cloud user', 'Provider', 'Operator']) {
    const box = page.getByRole('checkbox', { name: role });
    const want = roles.includes({ 'Cloud user': 'cloud-user', Provider: 'cloud-provider', Operator: 'cloud-operator' }[role]!);
    if ((await box.isChecked()) !== want) await box.click();
  }
  await page.getByRole('button', { name: `Sign in as ${subject}` }).click();
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
}

/** Goes to a page through the menu, as a person would. */
export async function open(page: Page, menu: string) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: menu, exact: false }).first().click();
}

const shots = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../docs/screenshots');

/** A screenshot for the README (docs/screenshots/NAME.png). */
export async function screenshot(page: Page, name: string) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true, animations: 'disabled', caret: 'hide' });
}

/** No serious or critical accessibility violations on the page as shown. */
export async function accessible(page: Page, what: string) {
  // The card form is Stripe's (in tests localstripe's test build of
  // Stripe.js, whose bare inputs stand in for Stripe's labelled iframe).
  const result = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .exclude('[data-testid="card-element"]')
    .analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`),
    `accessibility of ${what}`,
  ).toEqual([]);
}

/** A dev token for `sub` (the API mints them in dev mode only), for setting up through the API. */
export async function token(sub: string, roles: string[]): Promise<string> {
  const r = await fetch(`${process.env.CONSOLE_URL}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub, roles }),
  });
  expect(r.status, 'POST /dev/token').toBe(200);
  return ((await r.json()) as { token: string }).token;
}

/** Calls the API as the token's holder; the JSON answer (any 2xx), else fails with the problem. */
export async function call<T = Record<string, unknown>>(bearer: string, method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(`${process.env.CONSOLE_URL}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  expect(r.ok, `${method} ${path}: ${r.status} ${text}`).toBe(true);
  return (text ? JSON.parse(text) : {}) as T;
}

/** A VM for `bearer`'s user, through the API (the deploy form has its own test), once it runs. */
export async function runningVm(bearer: string, name: string): Promise<{ id: string; node_id: number; farm_id: number }> {
  const { id } = await call<{ id: string }>(bearer, 'POST', '/v1/deployments', {
    name,
    spec: { kind: 'vm', size: { cpu: 1, memory_mib: 1024, rootfs_gb: 10 }, image: 'https://hub.grid.tf/tf-official-apps/base:latest.flist', ssh_key: SSH_KEY },
  });
  let d: { status: string; node_id?: number; farm_id?: number } = { status: '' };
  await expect
    .poll(
      async () => {
        // 503 while the view catches up with the request: ask again.
        const r = await fetch(`${process.env.CONSOLE_URL}/v1/deployments/${id}`, { headers: { authorization: `Bearer ${bearer}` } });
        if (r.ok) d = await r.json();
        return d.status;
      },
      { timeout: 60_000, intervals: [500] },
    )
    .toBe('running');
  return { id, node_id: d.node_id!, farm_id: d.farm_id! };
}
