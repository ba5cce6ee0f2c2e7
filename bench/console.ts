// bench/console.ts: the web console's fleet page at 10,000 hosts in a real Chromium (Debian's
// `chromium`, through playwright-core), and GET /metrics at 10,000 agents, on one real manager
// (bench/lib/fleet-manager.ts: SQLite, audit log, an active canary rollout over every agent).
//
//   npm run bench:console [-- --agents 10000 --renders 5 --scrapes 50]
//
// renderMs: from a page load of /ui/#/fleet (logged in) to its first page of 100 hosts rendered
// with the fleet's total, median of --renders loads after a warm-up one; nextPageMs: a click on
// `next` to the next 100 rendered. scrapeMs: the median of --scrapes scrapes. Targets (issue 13):
// renderMs under 1 s, scrapeMs under 50 ms. Prints figures only; the tests check correctness.
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import type { Page } from 'playwright-core';
import { measureScrapes, percentile, startFleetManager } from './lib/fleet-manager.js';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '10000' },
    renders: { type: 'string', default: '5' },
    scrapes: { type: 'string', default: '50' },
  },
});
const CHROMIUM = process.env['DROVER_CHROMIUM'] ?? '/usr/bin/chromium';
const PAGE_SIZE = 100;

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

// The fleet page shows its first page: 100 rows and the fleet's total. (Locators, not
// waitForFunction: the console's CSP refuses evaluating strings, rightly.)
async function firstPageShown(page: Page, agents: number): Promise<void> {
  await page.locator('tbody tr').nth(Math.min(PAGE_SIZE, agents) - 1).waitFor({ timeout: 30_000 });
  await page.locator('.count', { hasText: `${agents} hosts` }).waitFor({ timeout: 30_000 });
}

const exactly = (text: string): RegExp => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);

async function main(): Promise<void> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (apt-get install chromium, or set DROVER_CHROMIUM)`);
  const agentCount = Number(values.agents);
  const renders = Number(values.renders);
  const fleet = await startFleetManager(agentCount);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    await page.goto(`${fleet.url}/ui/`);
    await page.fill('input[name=token]', fleet.adminToken);
    await page.click('button[type=submit]');
    await page.waitForSelector('nav');
    const load = async (i: number): Promise<number> =>
      timed(async () => {
        await page.goto(`${fleet.url}/ui/?load=${i}#/fleet`);
        await firstPageShown(page, agentCount);
      });
    await load(0);
    const times: number[] = [];
    for (let i = 1; i <= renders; i += 1) times.push(await load(i));
    times.sort((a, b) => a - b);
    const firstRow = await page.textContent('tbody tr:first-child td:first-child');
    const nextPageMs = await timed(async () => {
      await page.click('button:has-text("next")');
      await page.locator('tbody tr:first-child td:first-child').filter({ hasNotText: exactly(firstRow ?? '') }).waitFor({ timeout: 30_000 });
    });
    const scrape = await measureScrapes(fleet, Number(values.scrapes));
    const renderMs = Number(percentile(times, 0.5).toFixed(1));
    const target = { renderMs: 1000, scrapeMs: 50 };
    console.log(
      JSON.stringify({
        bench: 'console',
        agents: agentCount,
        renders,
        renderMs,
        renderMaxMs: Number((times[times.length - 1] ?? Number.NaN).toFixed(1)),
        nextPageMs: Number(nextPageMs.toFixed(1)),
        ...scrape,
        target,
        meetsTarget: renderMs < target.renderMs && scrape.scrapeMs < target.scrapeMs,
        cpus: cpus().length,
        node: process.version,
      }),
    );
  } finally {
    await browser.close();
    await fleet.close();
  }
}

await main();
