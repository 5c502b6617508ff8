// A cloud user's flows in the console, against the real dev server (grid
// and chain simulators provision by themselves) and localstripe.

import { test, expect } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { SSH_KEY, accessible, open, screenshot, signIn, someone } from './helpers';

test('a user finds a node, deploys a VM and watches it reach running', async ({ page }) => {
  await signIn(page, someone('alice'));
  await expect(page.getByRole('heading', { name: 'Nodes' })).toBeVisible();

  // Filter the catalog: nodes with 2 free vCPUs and 4 GiB free, up.
  await page.locator('summary', { hasText: 'Filters' }).click();
  await page.getByLabel('Free vCPUs at least').fill('2');
  await page.getByLabel('Free memory at least (GiB)').fill('4');
  await page.getByLabel('Status').selectOption('up');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await expect(page).toHaveURL(/cpu=2/);
  const rows = page.locator('tbody tr[data-node]');
  await expect(rows.first()).toBeVisible();
  await screenshot(page, 'nodes');

  // Deploy on the first node's farm.
  const deployHere = rows.first().getByRole('link', { name: /Deploy on farm/ });
  const farm = (await deployHere.textContent())!.replace(/\D+/g, '');
  await deployHere.click();
  await expect(page.getByRole('heading', { name: 'Deploy' })).toBeVisible();
  await page.locator('summary', { hasText: 'Placement' }).click();
  await expect(page.getByLabel('Farm id')).toHaveValue(farm);

  await page.getByLabel('Name').fill('web1');
  await page.getByLabel('SSH public key').fill(SSH_KEY);
  // Live validation by the API: a VM without vCPUs is refused on the field.
  await page.getByLabel('vCPUs').fill('0');
  await expect(page.getByLabel('vCPUs')).toHaveAttribute('aria-invalid', 'true');
  await page.getByLabel('vCPUs').fill('2');
  await expect(page.getByLabel('vCPUs')).not.toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByText(/a month \(/)).toBeVisible();
  await screenshot(page, 'deploy');

  await page.getByRole('button', { name: 'Deploy the VM' }).click();
  await expect(page).toHaveURL(/\/deployments\/[0-9a-f-]{36}$/);
  await expect(page.getByRole('heading', { name: 'web1' })).toBeVisible();
  // The simulator places, contracts and provisions it; the page hears it live.
  await expect(page.getByTestId('status')).toHaveText('running', { timeout: 60_000 });
  await expect(page.getByRole('list', { name: 'Timeline of states' }).getByText('running', { exact: true })).toBeVisible();
  await expect(page.locator('table').getByText(/ok|running/i).first()).toBeVisible();
  await screenshot(page, 'deployment');
  await accessible(page, 'a deployment');

  await open(page, 'Deployments');
  await expect(page.getByRole('link', { name: 'web1' })).toBeVisible();
  await expect(page.locator('tbody tr').first().locator('.status')).toHaveText('running');

  // The feed told her, live; she reads it.
  await open(page, 'Notifications');
  await expect(page.getByText('Your deployment is running.')).toBeVisible();
  await expect(page.locator('.badge')).toHaveText('1');
  await page.getByRole('button', { name: 'Mark all read' }).click();
  await expect(page.getByText('0 unread')).toBeVisible();
  await expect(page.locator('.badge')).toHaveCount(0);

  // She cancels it; the page follows it to its end.
  await open(page, 'Deployments');
  await page.getByRole('link', { name: 'web1' }).click();
  await page.getByRole('button', { name: 'Cancel the deployment' }).click();
  await page.getByLabel('Why (optional)').fill('done');
  await page.getByRole('button', { name: 'Yes, cancel it' }).click();
  await expect(page.getByTestId('status')).toHaveText(/cancelled|deleted/, { timeout: 60_000 });
});

test('a user tops up by card through the Elements form and sees the balance change', async ({ page }) => {
  await signIn(page, someone('bob'));
  await open(page, 'Wallet');
  const balance = page.getByTestId('balance');
  await expect(balance).toHaveText('0.00 TFT');

  await page.getByLabel('Amount (USD, $5 to $10,000)').fill('25');
  // Stripe.js's card form (localstripe's test build of it).
  const card = page.getByTestId('card-element');
  await card.getByPlaceholder('number').fill('4242424242424242');
  await card.getByPlaceholder('exp_month').fill('12');
  await card.getByPlaceholder('exp_year').fill('30');
  await card.getByPlaceholder('cvc').fill('123');
  await card.getByPlaceholder('postal_code').fill('10001');
  await page.getByRole('button', { name: 'Pay $25' }).click();

  await expect(page.getByTestId('top-up-result')).toContainText('$25.00 paid', { timeout: 60_000 });
  await expect(balance).not.toHaveText('0.00 TFT');
  await expect(page.getByRole('table').getByText(/credit|top/i).first()).toBeVisible();
  await screenshot(page, 'wallet');
});

test('a user saves a card, pays with it, turns on auto top-up and downloads a statement', async ({ page }) => {
  await signIn(page, someone('dave'));
  await open(page, 'Wallet');
  await page.getByRole('button', { name: 'Add a card' }).click();
  const save = page.getByRole('form', { name: 'Save a card' });
  const card = save.getByTestId('card-element');
  await card.getByPlaceholder('number').fill('4242424242424242');
  await card.getByPlaceholder('exp_month').fill('11');
  await card.getByPlaceholder('exp_year').fill('31');
  await card.getByPlaceholder('cvc').fill('321');
  await card.getByPlaceholder('postal_code').fill('10001');
  await save.getByRole('button', { name: 'Save the card' }).click();
  // The card shows once Stripe's setup_intent.succeeded has reached the wallet.
  await expect(page.getByText(/•••• 4242, expires 11\/2031/)).toBeVisible({ timeout: 60_000 });

  const topUp = page.getByRole('form', { name: 'Top up by card' });
  await topUp.getByRole('radio', { name: /4242/ }).check();
  await topUp.getByLabel('Amount (USD, $5 to $10,000)').fill('10');
  await topUp.getByRole('button', { name: 'Pay $10' }).click();
  await expect(page.getByTestId('top-up-result')).toContainText('$10.00 paid', { timeout: 60_000 });
  await expect(page.getByTestId('balance')).not.toHaveText('0.00 TFT');

  const auto = page.getByRole('form', { name: 'Automatic top-up' });
  await auto.getByLabel('Add (USD)').fill('20');
  await auto.getByRole('button', { name: 'Turn on' }).click();
  await expect(auto.getByText(/^On: below 10\.00 TFT, add \$20\.00/)).toBeVisible();

  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download the PDF' }).click();
  const pdf = await download;
  expect(pdf.suggestedFilename()).toMatch(/^statement-\d{4}-\d{2}\.pdf$/);
  const bytes = readFileSync((await pdf.path())!);
  expect(bytes.subarray(0, 5).toString()).toBe('%PDF-');
});

test('every cloud-user page has no serious or critical accessibility violations, at desktop and phone width', async ({ page }) => {
  await page.goto(process.env.CONSOLE_URL! + '/');
  await expect(page.getByRole('heading', { name: /sign in/i })).toBeVisible();
  await accessible(page, 'the sign-in page');
  // Keyboard only: the subject comes first, Enter signs in.
  await page.keyboard.press('Tab');
  await expect(page.getByLabel('Subject')).toBeFocused();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.type(someone('carol'));
  await page.keyboard.press('Enter');
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeVisible();
  for (const [menu, heading] of [
    ['Nodes', 'Nodes'],
    ['Countries', 'Nodes by country'],
    ['Deploy', 'Deploy'],
    ['Deployments', 'Deployments'],
    ['Wallet', 'Wallet'],
    ['Notifications', 'Notifications'],
  ]) {
    await open(page, menu);
    await expect(page.getByRole('heading', { name: heading, exact: true })).toBeVisible();
    await expect(page.locator('[aria-busy="true"][role="status"]')).toHaveCount(0);
    await accessible(page, `${menu} (desktop)`);
    if (menu === 'Countries') await screenshot(page, 'countries');
    if (menu === 'Deploy') {
      // The cluster form: masters and workers, each with its size, priced by the API.
      await page.getByRole('radio', { name: 'A Kubernetes cluster' }).check();
      await expect(page.getByRole('group', { name: 'Each worker' })).toBeVisible();
      await page.getByLabel('SSH public key').fill(SSH_KEY);
      await expect(page.getByText(/a month \(/)).toBeVisible();
      await accessible(page, 'Deploy, a Kubernetes cluster');
    }
  }
  await page.setViewportSize({ width: 390, height: 844 });
  for (const menu of ['Nodes', 'Deploy', 'Wallet']) {
    await open(page, menu);
    await expect(page.locator('[aria-busy="true"][role="status"]')).toHaveCount(0);
    await accessible(page, `${menu} (phone)`);
    // Nothing wider than the phone but the tables' own scroll boxes.
    const { overflow, wide } = await page.evaluate(() => {
      // The outermost elements reaching past the screen, to say what does not fit.
      const past = [...document.querySelectorAll('body *')].filter(
        (e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.parentElement?.closest('.table-wrap'),
      );
      const outer = past.filter((e) => !past.some((o) => o !== e && o.contains(e)));
      return {
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        wide: outer.slice(0, 5).map((e) => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().width)}px`),
      };
    });
    expect(overflow, `${menu} fits a phone's width (too wide: ${wide.join(', ')})`).toBeLessThanOrEqual(1);
  }
  await screenshot(page, 'wallet-phone');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Nodes' }).click();
  await expect(page.locator('tbody tr').first()).toBeVisible();
  await screenshot(page, 'nodes-phone');
});
