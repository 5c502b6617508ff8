import { defineConfig } from '@playwright/test';

// The console's browser tests: Debian's chromium (nothing downloads a
// browser), against a real `marketplace dev` (grid and chain simulators)
// and localstripe, both started by tests/global-setup.ts. One worker: the
// tests share that server and each signs in as its own user.
export default defineConfig({
  testDir: './tests',
  globalSetup: './tests/global-setup.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 15_000 },
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    launchOptions: { executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium' },
    viewport: { width: 1280, height: 900 },
    trace: 'off',
    screenshot: 'only-on-failure',
  },
});
