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
