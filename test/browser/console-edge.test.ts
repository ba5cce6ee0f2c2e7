// The web console's edge states, rendered in a real Chromium from msw handlers: an empty fleet, a
// fleet of 10,000 hosts, API errors, a broken audit chain. A static server of this test serves the
// console bundle exactly as `npm run build` wrote it (packages/manager/dist/console), msw's service
// worker (mockServiceWorker.js from the msw package, served here only) and test/browser/msw/
// edge-states.js (bundled by esbuild on the fly), which starts the worker with one scenario's
// handlers and then imports the real console: the console's own code runs against msw's answers.
// Screenshots go to $DROVER_ARTIFACTS_DIR/console/edge-*.png.
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessRequired } from '../helpers/skip.js';

const CHROMIUM = process.env['DROVER_CHROMIUM'] ?? '/usr/bin/chromium';
const consoleDir = fileURLToPath(new URL('../../packages/manager/dist/console/', import.meta.url));
const missing = !existsSync(CHROMIUM) ? `${CHROMIUM} is missing (apt-get install chromium)` : !existsSync(join(consoleDir, 'app.js')) ? 'the console is not built (npm run build)' : undefined;
const skip = skipUnlessRequired('the browser tests', missing, 'DROVER_REQUIRE_BROWSER');
const artifacts = resolve(process.env['DROVER_ARTIFACTS_DIR'] ?? 'test-artifacts', 'console');

const EDGE_HTML = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>drover console (msw)</title><link rel="stylesheet" href="app.css"></head><body><main id="app"></main><script type="module" src="/msw/edge-states.js"></script></body></html>';

async function staticFiles(): Promise<Map<string, { type: string; body: Buffer | string }>> {
  const js = 'text/javascript; charset=utf-8';
  const setup = await build({
    entryPoints: [fileURLToPath(new URL('msw/edge-states.js', import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    external: ['/ui/app.js'],
    logLevel: 'silent',
  });
  const worker = createRequire(import.meta.url).resolve('msw/mockServiceWorker.js');
  return new Map([
    ['/ui/edge.html', { type: 'text/html; charset=utf-8', body: EDGE_HTML }],
    ['/ui/app.js', { type: js, body: await readFile(join(consoleDir, 'app.js')) }],
    ['/ui/app.css', { type: 'text/css; charset=utf-8', body: await readFile(join(consoleDir, 'app.css')) }],
    ['/mockServiceWorker.js', { type: js, body: await readFile(worker) }],
    ['/msw/edge-states.js', { type: js, body: setup.outputFiles[0]?.text ?? '' }],
  ]);
}

describe.skipIf(skip)('the web console’s edge states, from msw handlers in Chromium', () => {
  let server: Server | undefined;
  let browser: Browser | undefined;
  let origin = '';

  beforeAll(async () => {
    await mkdir(artifacts, { recursive: true });
    const files = await staticFiles();
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const file = files.get(path);
      // The event stream is not mocked: 204 tells EventSource not to reconnect.
      if (file === undefined) res.writeHead(path === '/manager/v1/updates/events' ? 204 : 404).end();
      else res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' }).end(file.body);
    });
    await new Promise<void>((done) => server?.listen(0, '127.0.0.1', done));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    origin = `http://127.0.0.1:${address.port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise((done) => server?.close(done));
  });

  async function open(scenario: string, hash: string): Promise<Page> {
    if (browser === undefined) throw new Error('Chromium did not start');
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${origin}/ui/edge.html?scenario=${scenario}#/${hash}`);
    await page.waitForSelector(`html[data-msw="${scenario}"]`);
    await page.waitForSelector('nav');
    return page;
  }
  const shot = (page: Page, name: string): Promise<Buffer> => page.screenshot({ path: join(artifacts, `edge-${name}.png`), fullPage: true });

  it('an empty fleet: each page says there is nothing yet, and the chain verdict says EMPTY', async () => {
    const page = await open('empty', 'fleet');
    expect(await page.locator('.empty').textContent({ timeout: 10_000 })).toContain('No hosts yet');
    await shot(page, 'empty-fleet');
    await page.goto(`${origin}/ui/edge.html?scenario=empty#/rollouts`);
    expect(await page.locator('.empty').textContent({ timeout: 10_000 })).toContain('No rollouts yet');
    await page.goto(`${origin}/ui/edge.html?scenario=empty#/audit`);
    expect(await page.locator('.empty').textContent({ timeout: 10_000 })).toContain('No audit records');
    expect(await page.locator('[data-verdict=broken]').textContent()).toContain('EMPTY');
    await shot(page, 'empty-audit');
    await page.context().close();
  });

  it('10,000 hosts: one page of 100 at a time, 100 pages, the next page on a click', async () => {
    const page = await open('fleet10k', 'fleet');
    await page.locator('tbody tr').nth(99).waitFor({ timeout: 10_000 });
    expect(await page.locator('tbody tr').count()).toBe(100);
    expect(await page.locator('.count').textContent()).toContain('page 1 of 100');
    expect(await page.locator('.count').textContent()).toContain('10000 hosts');
    expect(await page.locator('tbody tr:first-child td:first-child').textContent()).toBe('edge-1');
    await shot(page, 'fleet-10000');
    await page.click('button:has-text("next")');
    await expect.poll(() => page.locator('tbody tr:first-child td:first-child').textContent(), { timeout: 10_000 }).toBe('edge-101');
    expect(await page.locator('.count').textContent()).toContain('page 2 of 100');
    await page.context().close();
  });

  it('10,000 hosts: the search and the selects ask the server, start again at page 1 and count what matches', async () => {
    const page = await open('fleet10k', 'fleet');
    await page.locator('tbody tr').nth(99).waitFor({ timeout: 10_000 });
    await page.click('button:has-text("next")');
    await expect.poll(() => page.locator('.count').textContent(), { timeout: 10_000 }).toContain('page 2 of 100');
    // Typing a host's id shows that host, from the server's search (it is on page 44, not this one).
    await page.fill('input[aria-label=search]', 'HOST-04321');
    await expect.poll(() => page.locator('tbody tr td:first-child').allTextContents(), { timeout: 10_000 }).toEqual(['edge-4321']);
    expect(await page.locator('.count').textContent()).toContain('page 1 of 1, 1 shown, 1 matching host');
    await shot(page, 'fleet-search');
    await page.fill('input[aria-label=search]', 'host-0432');
    await page.selectOption('select[aria-label=group]', 'explorer');
    // host-04320 .. host-04329 whose number is a multiple of 3: 4320, 4323, 4326, 4329.
    await expect.poll(() => page.locator('tbody tr td:first-child').allTextContents(), { timeout: 10_000 }).toEqual(['edge-4320', 'edge-4323', 'edge-4326', 'edge-4329']);
    expect(await page.locator('.count').textContent()).toContain('4 matching hosts');
    await page.selectOption('select[aria-label=health]', 'degraded');
    await expect.poll(() => page.locator('.empty').textContent(), { timeout: 10_000 }).toContain('No host matches these filters');
    await page.context().close();
  });

  it('API errors: each page shows the refusal code and message, and stays usable', async () => {
    const page = await open('errors', 'fleet');
    expect(await page.locator('.error').textContent({ timeout: 10_000 })).toBe('STORE_UNAVAILABLE: The store is unreachable; retry.');
    await shot(page, 'errors-fleet');
    await page.goto(`${origin}/ui/edge.html?scenario=errors#/rollouts`);
    expect(await page.locator('.error').textContent({ timeout: 10_000 })).toContain('INTERNAL_ERROR');
    await page.goto(`${origin}/ui/edge.html?scenario=errors#/audit`);
    await page.locator('.error').nth(1).waitFor({ timeout: 10_000 });
    expect(await page.locator('.error').allTextContents()).toEqual([expect.stringContaining('TOKEN_SCOPE_INSUFFICIENT'), expect.stringContaining('TOKEN_SCOPE_INSUFFICIENT')]);
    await shot(page, 'errors-audit');
    // The navigation still works: the console did not fall over.
    await page.click('nav a:has-text("Fleet")');
    expect(await page.locator('.error').textContent({ timeout: 10_000 })).toContain('STORE_UNAVAILABLE');
    await page.context().close();
  });

  it('a broken audit chain: the first broken seq and its code', async () => {
    const page = await open('broken-chain', 'audit');
    const verdict = page.locator('[data-verdict=broken]');
    expect(await verdict.textContent({ timeout: 10_000 })).toContain('BROKEN at seq 7');
    expect(await verdict.textContent()).toContain('HASH_MISMATCH');
    await shot(page, 'audit-broken');
    await page.context().close();
  });
});
