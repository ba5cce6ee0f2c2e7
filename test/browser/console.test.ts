// The web console in a real Chromium (Debian's `chromium`, driven by playwright-core) against
// `drover manager start` with real droverd hosts: log in with the admin token, see the fleet,
// watch a rollout move without a reload, pause and resume it from the page, see a busy host deferred
// and a host rolled back on the rollout page, see the audit chain's verdict.
// A screenshot of each page goes to $DROVER_ARTIFACTS_DIR (default test-artifacts/).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TrustPolicyDocument } from '@drover/protocol';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { drover, expectOk as ok } from '../helpers/cli.js';
import { DaemonProcess, agentRuntime, createHostFor, destroyHost, droverd, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import { skipUnlessRequired } from '../helpers/skip.js';

const CHROMIUM = process.env['DROVER_CHROMIUM'] ?? '/usr/bin/chromium';
const skip = skipUnlessRequired('the browser tests', existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (apt-get install chromium)`, 'DROVER_REQUIRE_BROWSER');
const artifacts = resolve(process.env['DROVER_ARTIFACTS_DIR'] ?? 'test-artifacts', 'console');
const platform = `${process.platform}-${process.arch}`;

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe.skipIf(skip)('the web console in Chromium', () => {
  let root: string | undefined;
  let manager: ManagerProcess | undefined;
  let adminToken: string;
  let deployToken: string;
  let browser: Browser | undefined;
  let page: Page;
  const hosts: Host[] = [];
  const daemons: DaemonProcess[] = [];
  const cliEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
  const at = (...parts: string[]): string => join(root ?? '', ...parts);
  const url = (): string => mgr().url;
  const mgr = (): ManagerProcess => {
    if (manager === undefined) throw new Error('the manager did not start');
    return manager;
  };
  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

  async function release(version: string): Promise<void> {
    const file = at('rel', version, 'agent.cjs');
    await mkdir(at('rel', version), { recursive: true });
    await writeFile(file, await agentArtifact(version));
    ok(await drover(['release', 'sign', '--key', at('keys', 'release.key'), '--artifact', 'agent', '--version', version, '--platform', platform, '--expires-in', '1d', file], { env: cliEnv }), `release sign ${version}`);
    ok(await drover(['release', 'publish', '--manager', url(), file], { env: { ...cliEnv, DROVER_DEPLOY_TOKEN: deployToken } }), `release publish ${version}`);
  }

  beforeAll(async () => {
    await mkdir(artifacts, { recursive: true });
    root = await mkdtemp(join(tmpdir(), 'drover-console-'));
    ok(await drover(['keygen', '--out', at('keys'), '--name', 'release'], { env: cliEnv }), 'keygen');
    ok(await drover(['trust', 'create', '--pub', at('keys', 'release.pub'), '--out', at('trust.json')], { env: cliEnv }), 'trust create');
    const init = ok(await drover(['manager', 'init', '--dir', at('m'), '--trust', at('trust.json'), '--seats', '4', '--expires-in', '1h', '--json'], { env: cliEnv }), 'manager init');
    const enrollmentToken = (JSON.parse(init.stdout) as { enrollmentToken: string }).enrollmentToken;
    // Check-ins every 5 s (the least allowed), so a rollout moves within the test's patience.
    const config = JSON.parse(await readFile(at('m', 'manager.json'), 'utf8')) as { settings: Record<string, unknown> };
    config.settings['checkinIntervalSeconds'] = 5;
    await writeFile(at('m', 'manager.json'), JSON.stringify(config));
    adminToken = (await readFile(at('m', 'secrets', 'admin.token'), 'utf8')).trim();
    deployToken = (await readFile(at('m', 'secrets', 'deploy.token'), 'utf8')).trim();
    manager = await ManagerProcess.start(at('m'), cliEnv);
    const managerKey = await readFile(at('m', 'keys', 'manager.key.pub'), 'utf8');
    const trustPolicy = JSON.parse(await readFile(at('trust.json'), 'utf8')) as TrustPolicyDocument;
    await release('1.0.0');
    await release('1.1.0');
    await release('1.2.0');
    for (let i = 0; i < 2; i++) {
      const host = await createHostFor(
        { url: manager.url, managerKey, enrollmentToken, trustPolicy },
        { settings: { machineId: createHash('sha256').update(randomBytes(16)).digest('hex'), checkin: { backoffMaxSeconds: 1 } } },
      );
      hosts.push(host);
      ok(await droverd(host, ['install', '--release', `${at('rel', '1.0.0', 'agent.cjs')}.release.json`, at('rel', '1.0.0', 'agent.cjs'), '--json']), 'droverd install 1.0.0');
      daemons.push(new DaemonProcess(host));
      await waitForAgent(host, '1.0.0', 30_000);
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    for (const host of hosts) await destroyHost(host, daemons);
    await manager?.stop();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it('logs in with the admin token into an HttpOnly, SameSite=Strict session, under a CSP', async () => {
    const served = await page.goto(`${url()}/ui`);
    expect(served?.headers()['content-security-policy']).toContain("script-src 'self'");
    await shot('login');
    await page.fill('input[name=token]', adminToken);
    await page.click('button[type=submit]');
    await page.waitForSelector('nav');
    const [cookie] = await page.context().cookies();
    expect(cookie).toMatchObject({ name: 'drover_session', httpOnly: true, sameSite: 'Strict' });
    // A cookie-authenticated action without the CSRF token is refused.
    // (page.request sends the page's cookies, as a script of the page would.)
    const refused = await page.request.post(`${url()}/manager/v1/updates/notify`, { data: { version: '1.1.0' } });
    expect(refused.status()).toBe(403);
    expect(await refused.text()).toContain('CSRF_TOKEN_INVALID');
  });

  it('shows the fleet: both hosts', async () => {
    await page.goto(`${url()}/ui/#/fleet`);
    await page.locator('tbody tr').nth(1).waitFor({ timeout: 20_000 });
    await shot('fleet');
    await page.click('tbody tr a');
    await page.waitForSelector('h1:has-text("Host")');
    // Readable sections, not raw JSON: facts, the current step, the update history, its audit records.
    await page.waitForSelector('h2:has-text("Update history")');
    expect(await page.textContent('.current-step')).toContain('idle');
    await page.locator('.audit-records tbody tr').first().waitFor({ timeout: 10_000 });
    expect(await page.locator('.audit-records tbody tr').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining('agent.enrolled')]));
    await shot('host');
    await page.goto(`${url()}/ui/#/releases`);
    await page.locator('tbody tr').nth(1).waitFor({ timeout: 10_000 });
    await shot('releases');
  });

  it('watches a rollout move without a reload, and pauses and resumes it from the page', async () => {
    await page.goto(`${url()}/ui/#/rollouts`);
    await page.waitForSelector('h1:has-text("Rollouts")');
    const started = await mgr().call('POST', '/manager/v1/updates/notify', { authorization: `Bearer ${deployToken}` }, { version: '1.1.0', strategy: 'manual' });
    expect(started.status, JSON.stringify(started.json)).toBe(200);
    const id = (started.json as { deployment_id: string }).deployment_id;
    const rollout = page.locator(`[data-deployment="${id}"]`);
    // Appears without a reload: the event stream told the page.
    await rollout.waitFor({ timeout: 15_000 });
    await shot('rollouts');
    for (const action of ['pause', 'resume'] as const) {
      await rollout.locator(`button[data-action=${action}]`).click();
      await page.click('dialog button[data-confirm]');
      await page.waitForSelector(`.message:has-text("${action}: sent")`, { timeout: 10_000 });
      const status = await mgr().call('GET', `/manager/v1/updates/status?deployment_id=${id}`, { authorization: `Bearer ${adminToken}` });
      expect(JSON.stringify(status.json)).toContain(action === 'pause' ? 'paused' : '');
      await shot(`rollouts-${action}d`);
    }
    const events = await mgr().call('GET', '/v1/deployments?limit=5', { authorization: `Bearer ${adminToken}` });
    expect((events.json as { deployments: { deploymentId: string; status: string }[] }).deployments.find((d) => d.deploymentId === id)?.status).not.toBe('paused');
  }, 60_000);

  it('shows a busy host deferred and, after a rollback confirmed on the page, a host rolled back, without a reload', async () => {
    const admin = { authorization: `Bearer ${adminToken}` };
    // The rollout of the test before ends first (abort, then its in-flight targets finish).
    const before = (await mgr().call('GET', '/v1/deployments?active=true', admin)).json as { deployments: { deploymentId: string }[] };
    for (const d of before.deployments) await mgr().call('POST', `/manager/v1/updates/${d.deploymentId}/abort`, admin, {});
    await until(async () => ((await mgr().call('GET', '/v1/deployments?active=true', admin)).json as { deployments: unknown[] }).deployments.length === 0, 60_000, 'the earlier rollout to end');
    // Host 0's agent is busy for two minutes: it defers the update.
    const busyHost = hosts[0] as Host;
    const { serviceToken } = JSON.parse(await readFile(join(busyHost.stateDir, 'credentials.json'), 'utf8')) as { serviceToken: string };
    const runtime = await agentRuntime(busyHost);
    if (runtime === undefined) throw new Error('droverd recorded no running agent');
    const busy = await request(`http://127.0.0.1:${runtime.port}/work?ms=120000`, { method: 'POST', headers: { authorization: `Bearer service:${serviceToken}` } });
    await busy.body.dump();
    expect(busy.statusCode).toBe(202);
    const busyId = (JSON.parse(await readFile(join(busyHost.stateDir, 'credentials.json'), 'utf8')) as { agentId: string }).agentId;

    await page.goto(`${url()}/ui/#/rollouts`);
    await page.waitForSelector('h1:has-text("Rollouts")');
    const started = await mgr().call('POST', '/manager/v1/updates/notify', { authorization: `Bearer ${deployToken}` }, { version: '1.2.0', strategy: 'immediate', metadata: { rollout: { healthGraceSeconds: 1 } } });
    expect(started.status, JSON.stringify(started.json)).toBe(200);
    const id = (started.json as { deployment_id: string }).deployment_id;
    const rollout = page.locator(`[data-deployment="${id}"]`);
    const busyRow = rollout.locator('tbody tr', { has: page.locator(`a:text-is("${busyId}")`) });
    await busyRow.locator('.target-state[data-state=deferred]').waitFor({ timeout: 45_000 });
    expect(await busyRow.locator('.reason').textContent()).toContain('busy');
    await rollout.locator('.target-state[data-state=succeeded]').waitFor({ timeout: 60_000 });
    await shot('rollouts-deferred');

    await rollout.locator('button[data-action=rollback]').click();
    await page.click('dialog button[data-confirm]');
    await page.waitForSelector('.message:has-text("rollback: sent")', { timeout: 10_000 });
    await rollout.locator('.status[data-status=rolling_back]').waitFor({ timeout: 10_000 });
    const rolledBack = rollout.locator('.target-state[data-state=rolled_back]');
    await rolledBack.waitFor({ timeout: 60_000 });
    expect(await rollout.locator('tbody tr', { has: page.locator('.target-state[data-state=rolled_back]') }).locator('.reason').textContent()).toContain('rolled back');
    // The busy host is still deferred: nobody forced it.
    expect(await busyRow.locator('.target-state').textContent()).toBe('deferred');
    await shot('rollouts-rolled-back');
  }, 240_000);

  it("shows the audit chain's verdict and its records, filtered by event", async () => {
    await page.goto(`${url()}/ui/#/audit`);
    await page.waitForSelector('h1:has-text("Audit")');
    const verdict = page.locator('[data-verdict]');
    await verdict.waitFor({ timeout: 20_000 });
    expect(await verdict.getAttribute('data-verdict')).toBe('ok');
    expect(await verdict.textContent()).toMatch(/Chain verified: \d+ records, up to seq \d+/);
    await page.locator('.audit-records tbody tr').first().waitFor({ timeout: 10_000 });
    await shot('audit');
    await page.fill('input[name=event]', 'deployment.');
    await page.click('form.filters button[type=submit]');
    const events = page.locator('.audit-records tbody tr td:nth-child(3)');
    await expect.poll(async () => (await events.allTextContents()).every((e) => e.startsWith('deployment.')), { timeout: 10_000 }).toBe(true);
    expect(await events.allTextContents()).toContain('deployment.rollback');
    await shot('audit-filtered');
  });
});
