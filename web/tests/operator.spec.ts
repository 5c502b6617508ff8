// The operator's pages against the real dev server: the audit explorer on
// a deployment (timeline, state, diff, correlation tree), the pricing
// editor with its history and a stale edit's 409, the live overview from
// /metrics, dead letters; every page scanned by axe at desktop and phone width.

import { test, expect, type Page } from '@playwright/test';
import { accessible, open, runningVm, screenshot, signIn, someone, token } from './helpers';

async function settled(page: Page) {
  await expect(page.locator('[aria-busy="true"][role="status"]')).toHaveCount(0);
}

test("an operator follows a deployment's correlation tree in the audit explorer", async ({ page }) => {
  const vm = await runningVm(await token(someone('erin'), ['cloud-user']), 'audited1');
  await signIn(page, someone('auditor'), ['cloud-operator']);
  await open(page, 'Audit');
  await expect(page.getByRole('heading', { name: 'Audit', exact: true })).toBeVisible();
  await expect(page.getByText('Name an aggregate, or a correlation id, to explore.')).toBeVisible();
  const find = page.getByRole('form', { name: 'Find an aggregate' });
  await find.getByLabel('Aggregate type').selectOption('deployment');
  await find.getByLabel('Aggregate id').fill(vm.id);
  await find.getByRole('button', { name: 'Show its timeline' }).click();

  const timeline = page.getByRole('list', { name: 'Events of the aggregate' });
  await expect(timeline.getByText('v1 DeploymentRequested')).toBeVisible();
  const events = await timeline.locator('li').count();
  expect(events, 'placed, contracted, provisioned: several events').toBeGreaterThan(2);
  // The state at v1 is the request as asked.
  await expect(page.getByTestId('state')).toBeVisible();
  await timeline.locator('li[data-sequence="1"]').getByRole('link', { name: 'State at v1' }).click();
  // The state's own panel (the timeline keeps its link of the same name).
  await expect(page.locator('header', { hasText: /^State at v1$/ })).toBeVisible();
  await expect(page.getByTestId('state')).toContainText('audited1');
  // What the whole life changed.
  const compare = page.getByRole('form', { name: 'Compare versions' });
  await compare.getByLabel('From version').fill('1');
  await compare.getByLabel('To version').fill(String(events));
  await compare.getByRole('button', { name: 'Compare' }).click();
  await expect(page.getByTestId('diff').locator('li').first()).toBeVisible();
  await expect(page.getByText(`From v1 to v${events}`)).toBeVisible();
  await settled(page);
  await accessible(page, 'the audit explorer');
  await screenshot(page, 'operator-audit');

  // The request's correlation: everything the request caused, across aggregates.
  await timeline.locator('li[data-sequence="1"]').getByRole('link', { name: 'Correlation tree' }).click();
  await expect(page.getByRole('heading', { name: 'Correlation tree' })).toBeVisible();
  const tree = page.getByRole('list', { name: 'Events of the correlation' });
  await expect(tree.getByText('DeploymentRequested')).toBeVisible();
  await expect(page.getByRole('list', { name: 'Aggregates touched' }).getByRole('link', { name: `deployment/${vm.id}` })).toBeVisible();
  await settled(page);
  await accessible(page, 'a correlation tree');
  await screenshot(page, 'operator-correlation');
  // From the tree back to the deployment's timeline.
  await page.getByRole('list', { name: 'Aggregates touched' }).getByRole('link', { name: `deployment/${vm.id}` }).click();
  await expect(timeline.getByText('v1 DeploymentRequested')).toBeVisible();
});

test('an operator changes a price, sees it in the history, and a stale edit is refused with a reload', async ({ browser }) => {
  const ops = someone('pricer');
  const first = await (await browser.newContext()).newPage();
  await signIn(first, ops, ['cloud-operator']);
  await open(first, 'Pricing');
  await expect(first.getByRole('heading', { name: 'Pricing' })).toBeVisible();
  const version = Number(await first.getByTestId('pricing-version').textContent());
  const cu = first.getByLabel('Compute unit, an hour');
  const old = Number(await cu.inputValue());

  // A second tab changes it first.
  const second = await (await browser.newContext()).newPage();
  await signIn(second, ops, ['cloud-operator']);
  await open(second, 'Pricing');
  await second.getByLabel('Compute unit, an hour').fill(String(old + 1000));
  await second.getByRole('button', { name: `Save as version ${version + 1}` }).click();
  await expect(second.getByTestId('pricing-version')).toHaveText(String(version + 1));
  const history = second.getByRole('table', { name: 'Pricing history' });
  await expect(history.getByRole('row').nth(1)).toContainText(ops);
  await expect(history.getByRole('row').nth(1)).toContainText('cu_per_hour');
  await accessible(second, 'pricing');
  await screenshot(second, 'operator-pricing');

  // The first tab still shows the old version: its save is a 409.
  await cu.fill(String(old + 2000));
  await first.getByRole('button', { name: `Save as version ${version + 1}` }).click();
  const problem = first.getByRole('alert');
  await expect(problem).toBeVisible();
  await problem.getByRole('button', { name: 'Reload the latest' }).click();
  await expect(first.getByTestId('pricing-version')).toHaveText(String(version + 1));
  await expect(first.getByLabel('Compute unit, an hour')).toHaveValue(String(old + 1000));
});

test('the overview charts projection lag from /metrics and keeps updating while open', async ({ page }) => {
  await signIn(page, someone('watcher'), ['cloud-operator']);
  await open(page, 'Overview');
  await expect(page.getByRole('heading', { name: 'Overview' })).toBeVisible();
  await expect(page.getByRole('img', { name: 'Events each projection has not applied yet' })).toBeVisible();
  await expect(page.locator('dd[data-metric="marketplace_event_store_position"]')).toHaveText(/^[\d,]+$/);
  // Scraped again while the page stays open.
  await expect(page.getByTestId('scrapes')).toHaveText('(2 scrapes)', { timeout: 15_000 });
  await expect(page.getByText('No Kafka relay runs here (projections tail the store directly).')).toBeVisible();
  await accessible(page, 'the overview');
  await screenshot(page, 'operator-overview');
});

test('every operator page has no serious or critical accessibility violations, at desktop and phone width', async ({ page }) => {
  await signIn(page, someone('carla'), ['cloud-operator']);
  const pages = [
    ['Review queue', 'Review queue'],
    ['Pricing', 'Pricing'],
    ['Dead letters', 'Dead letters'],
    ['Audit', 'Audit'],
    ['Overview', 'Overview'],
  ];
  for (const [menu, heading] of pages) {
    await open(page, menu);
    await expect(page.getByRole('heading', { name: heading, exact: true })).toBeVisible();
    await settled(page);
    await accessible(page, `${menu} (desktop)`);
  }
  await open(page, 'Dead letters');
  await expect(page.getByText('No projection has failed to apply an event.').or(page.getByRole('table', { name: 'Dead letters' })).first()).toBeVisible();
  await expect(page.getByText('Every Stripe event was applied.').or(page.getByRole('table', { name: 'Stripe events not applied' })).first()).toBeVisible();
  await screenshot(page, 'operator-dead-letters');
  // An unknown correlation id: an empty tree or a readable problem, not a blank page.
  await page.goto(`${process.env.CONSOLE_URL}/operator/audit/correlations/nothing-here`);
  await expect(page.getByText('No event carries this correlation id.').or(page.getByRole('alert'))).toBeVisible();
  await accessible(page, 'an unknown correlation');

  await page.setViewportSize({ width: 390, height: 844 });
  for (const [menu, heading] of pages) {
    await open(page, menu);
    await expect(page.getByRole('heading', { name: heading, exact: true })).toBeVisible();
    await settled(page);
    await accessible(page, `${menu} (phone)`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `${menu} fits a phone's width`).toBeLessThanOrEqual(1);
  }
  await screenshot(page, 'operator-phone');
});
