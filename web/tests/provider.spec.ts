// A provider's flows in the console with the operator who reviews them and
// the cloud user whose VM runs on the provider's node, each in their own
// browser context, against the real dev server.

import { test, expect, type Page } from '@playwright/test';
import { accessible, open, runningVm, screenshot, signIn, someone, token } from './helpers';

async function settled(page: Page) {
  await expect(page.locator('[aria-busy="true"][role="status"]')).toHaveCount(0);
}

test('a provider applies, answers the operator, is approved, schedules maintenance the user sees, and cancels it', async ({ browser }) => {
  // The user's VM gives the node (and farm) the provider will sell.
  const userSub = someone('dora');
  const vm = await runningVm(await token(userSub, ['cloud-user']), 'maint1');

  const provider = await (await browser.newContext()).newPage();
  const farmer = someone('farmer');
  await signIn(provider, farmer, ['cloud-provider']);
  await expect(provider.getByRole('heading', { name: 'Provider requests' })).toBeVisible();
  await expect(provider.getByText('You have not applied to sell a farm yet.')).toBeVisible();
  await accessible(provider, 'provider requests (empty)');

  const form = provider.getByRole('form', { name: 'Apply to sell a farm' });
  await form.getByLabel('Company').fill('Green Edge BV');
  await form.getByLabel('Contact e-mail').fill('ops@greenedge.example');
  await form.getByLabel('Farm id').fill(String(vm.farm_id));
  await form.getByLabel('Country').fill('Belgium');
  await form.getByLabel('Node ids (comma-separated)').fill(String(vm.node_id));
  await form.getByLabel('Message to the reviewers (optional)').fill('One node in Ghent');
  await form.getByRole('button', { name: 'Send the request' }).click();
  const mine = provider.locator(`article[data-request="${vm.farm_id}"]`);
  await expect(mine.getByTestId('request-status')).toHaveText('Submitted, waiting for review');

  // The operator asks a question.
  const operator = await (await browser.newContext()).newPage();
  await signIn(operator, someone('ops'), ['cloud-operator']);
  await expect(operator.getByRole('heading', { name: 'Review queue' })).toBeVisible();
  const review = operator.locator(`article[data-request="${vm.farm_id}"]`);
  await expect(review.getByText('One node in Ghent')).toBeVisible();
  await review.getByRole('button', { name: 'Ask a question…' }).click();
  await review.getByLabel('Question for the provider').fill('What is the uplink?');
  await review.getByRole('button', { name: `Ask farm ${vm.farm_id}` }).click();
  await expect(review.getByText('The reviewers asked a question')).toBeVisible();

  // The provider sees it and answers.
  await provider.reload();
  await expect(mine.getByTestId('question')).toHaveText('What is the uplink?');
  await screenshot(provider, 'provider-request');
  await mine.getByLabel('Your answer').fill('10 Gbit/s');
  await mine.getByRole('button', { name: 'Send the answer' }).click();
  await expect(mine.getByTestId('request-status')).toHaveText('Submitted, waiting for review');

  // The operator reads the answer and approves.
  await operator.reload();
  await expect(review.getByTestId('answer')).toHaveText('10 Gbit/s');
  await accessible(operator, 'the review queue');
  await screenshot(operator, 'operator-queue');
  await review.getByRole('button', { name: 'Approve…' }).click();
  await review.getByRole('button', { name: `Approve farm ${vm.farm_id}` }).click();
  await expect(review).toHaveCount(0); // no longer open
  await operator.getByLabel('Show').selectOption('approved');
  await expect(review.getByText('Approved')).toBeVisible();

  await provider.reload();
  await expect(mine.getByTestId('request-status')).toHaveText('Approved');
  await expect(mine.getByRole('button', { name: 'Withdraw the request' })).toHaveCount(0);

  // Its nodes, with the uptime chart.
  await open(provider, 'My nodes');
  await expect(provider.getByRole('heading', { name: 'My nodes' })).toBeVisible();
  await expect(provider.locator(`tr[data-node="${vm.node_id}"]`)).toBeVisible();
  await expect(provider.getByRole('img', { name: /Reported uptime/ })).toBeVisible();
  await accessible(provider, 'my nodes');
  await screenshot(provider, 'provider-nodes');

  // Maintenance on the VM's node.
  await open(provider, 'Maintenance');
  await expect(provider.getByRole('heading', { name: 'Maintenance' })).toBeVisible();
  await expect(provider.getByText('No maintenance is scheduled on your nodes.')).toBeVisible();
  const schedule = provider.getByRole('form', { name: 'Schedule maintenance' });
  await schedule.getByRole('combobox', { name: /^Node/ }).selectOption(String(vm.node_id));
  await schedule.getByLabel('Reason (shown to the users on the node)').fill('disk swap');
  await schedule.getByRole('button', { name: 'Schedule the window' }).click();
  const row = provider.getByRole('table', { name: 'Upcoming maintenance' }).getByRole('row').filter({ hasText: 'disk swap' });
  await expect(row).toBeVisible();
  await expect(row).toContainText(String(vm.node_id));
  await accessible(provider, 'maintenance');
  await screenshot(provider, 'provider-maintenance');

  // The user on that node sees the window on the deployment.
  const user = await (await browser.newContext()).newPage();
  await signIn(user, userSub, ['cloud-user']);
  await user.goto(`${process.env.CONSOLE_URL}/deployments/${vm.id}`);
  await expect(user.getByRole('heading', { name: 'maint1' })).toBeVisible();
  await expect(user.getByText(/disk swap/)).toBeVisible();

  // Cancelled, it is gone for both.
  await row.getByRole('button', { name: /Cancel/ }).click();
  await expect(provider.getByText('No maintenance is scheduled on your nodes.')).toBeVisible();
  await user.reload();
  await expect(user.getByRole('heading', { name: 'maint1' })).toBeVisible();
  await expect(user.getByText('No maintenance is scheduled on its node.')).toBeVisible();

  // It founds an alliance: members, nodes against the SLA, settlements.
  await open(provider, 'Alliances');
  await expect(provider.getByRole('heading', { name: 'Alliances' })).toBeVisible();
  await provider.getByText('Found an alliance').click();
  const found = provider.getByRole('form', { name: 'Found an alliance' });
  await found.getByLabel('Name').fill('Ghent Edge');
  await found.getByLabel('What it offers').fill('Belgian capacity');
  await found.getByRole('spinbutton', { name: /SLA: uptime/ }).fill('98');
  await found.getByRole('button', { name: 'Found the alliance' }).click();
  await expect(provider).toHaveURL(/\/provider\/alliances\/[^/]+$/);
  const id = decodeURIComponent(new URL(provider.url()).pathname.split('/').pop()!);
  await expect(provider.getByText('98.00 % a node a month, credits to users')).toBeVisible();
  await expect(provider.getByRole("heading", { name: "Ghent Edge" })).toBeVisible();
  await expect(provider.getByRole('cell', { name: farmer })).toBeVisible();
  await expect(provider.getByText('No period is settled yet.')).toBeVisible();
  await expect(provider.getByText('No node is contributed yet.')).toBeVisible();
  const contribute = provider.getByRole('form', { name: 'Contribute a node' });
  // Once the chain has created the alliance's farm.
  await expect(async () => {
    await provider.reload();
    await expect(contribute).toBeVisible({ timeout: 2_000 });
  }).toPass({ timeout: 45_000 });
  await contribute.getByRole('combobox', { name: /Your node/ }).selectOption(String(vm.node_id));
  await contribute.getByRole('button', { name: 'Contribute the node' }).click();
  const counted = provider.getByRole('row').filter({ hasText: `farm ${vm.farm_id}` }).filter({ hasText: farmer });
  await expect(counted).toBeVisible();
  await expect(counted).toContainText('98.00 %'); // the target beside the measured uptime
  await settled(provider);
  await accessible(provider, 'an alliance');
  await screenshot(provider, 'provider-alliance');
  await open(provider, 'Alliances');
  await expect(provider.getByRole('link', { name: 'Ghent Edge' })).toHaveAttribute('href', `/provider/alliances/${encodeURIComponent(id)}`);
  await settled(provider);
  await accessible(provider, 'alliances');
});

test('provider pages fit a phone and keep their empty states readable', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await signIn(page, someone('newfarmer'), ['cloud-provider']);
  for (const [menu, heading, empty] of [
    ['Requests', 'Provider requests', 'You have not applied to sell a farm yet.'],
    ['My nodes', 'My nodes', /No nodes yet/],
    ['Maintenance', 'Maintenance', 'No maintenance is scheduled on your nodes.'],
    ['Alliances', 'Alliances', 'You are in no alliance, and invited to none.'],
  ] as const) {
    // The menu wraps at phone width; reach each page by keyboard from the menu.
    const link = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: menu, exact: true });
    await link.focus();
    await page.keyboard.press('Enter');
    await expect(page.getByRole('heading', { name: heading, exact: true })).toBeVisible();
    await expect(page.getByText(empty)).toBeVisible();
    await accessible(page, `${menu} (phone)`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, `${menu} fits a phone's width`).toBeLessThanOrEqual(1);
  }
  // One open request per farm: a second is refused readably, offering the latest.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Requests', exact: true }).click();
  const form = page.getByRole('form', { name: 'Apply to sell a farm' });
  const farm = String(900000 + Math.floor(Math.random() * 99999));
  for (let i = 0; i < 2; i++) {
    await form.getByLabel('Company').fill('Nobody Ltd');
    await form.getByLabel('Contact e-mail').fill('x@nobody.example');
    await form.getByLabel('Farm id').fill(farm);
    await form.getByLabel('Country').fill('Nowhere');
    await form.getByLabel('Node ids (comma-separated)').fill(farm);
    await form.getByRole('button', { name: 'Send the request' }).click();
    if (i === 0) await expect(page.locator(`article[data-request="${farm}"]`)).toBeVisible();
  }
  const problem = form.getByRole('alert');
  await expect(problem).toBeVisible();
  await accessible(page, 'a refused request (phone)');
  await screenshot(page, 'provider-phone');
});
