// examples/manager as a user runs it: a directory made by `drover manager init`, the example as a
// real process (node --import tsx) on 127.0.0.1:0, the app's own routes beside drover's under its
// prefix, an enrollment and a check-in through the mounted plugin, the CLI against it, a real
// droverd enrolled at `<url>/drover` taking a signed update from there, and SIGTERM.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnrollResponse, TrustPolicyDocument, UpdateCommand } from '@drover/protocol';
import { checkinBody, enrollBody, machineId } from '../../packages/manager/test/harness.js';
import { waitFor } from '../fleet/fleet-simulator.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { drover, repoRoot, run } from '../helpers/cli.js';
import { DaemonProcess, createHostFor, destroyHost, droverd, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { ManagerProcess } from '../helpers/manager-process.js';

const script = 'examples/manager/server.ts';
const prefix = '/drover';
const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
const platform = `${process.platform}-${process.arch}`;
let dir: string;
let adminToken: string;
let app: ManagerProcess | undefined;
let host: Host | undefined;
const daemons: DaemonProcess[] = [];

function startExample(managerDir: string): Promise<ManagerProcess> {
  return ManagerProcess.spawn(['--import', 'tsx', script, managerDir], { ...env, PORT: '0' }, { cwd: repoRoot, event: 'app.listening' });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-manager-example-'));
  // The release key, and the trust policy the manager checks publications against.
  const keygen = await drover(['keygen', '--out', join(dir, 'keys'), '--name', 'release'], { env });
  expect(keygen.code, keygen.stderr).toBe(0);
  const trust = await drover(['trust', 'create', '--pub', join(dir, 'keys', 'release.pub'), '--out', join(dir, 'trust.json')], { env });
  expect(trust.code, trust.stderr).toBe(0);
  const init = await drover(['manager', 'init', '--dir', join(dir, 'm'), '--trust', join(dir, 'trust.json'), '--json'], { env });
  expect(init.code, init.stderr).toBe(0);
  adminToken = (await readFile(join(dir, 'm', 'secrets', 'admin.token'), 'utf8')).trim();
  // Bounded suite: the shortest check-in interval the manager allows, so droverd picks an update up soon.
  const configPath = join(dir, 'm', 'manager.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as { settings: Record<string, unknown> };
  config.settings['checkinIntervalSeconds'] = 5;
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  app = await startExample(join(dir, 'm'));
});
afterAll(async () => {
  if (host !== undefined) await destroyHost(host, daemons);
  await app?.stop(1_000);
  await rm(dir, { recursive: true, force: true });
});

describe('examples/manager', () => {
  it("serves the app's own routes and 404s, and drover's health routes under the prefix", async () => {
    const m = app as ManagerProcess;
    expect(await m.call('GET', '/', {})).toEqual({ status: 200, json: { app: 'my-app', version: '1.0.0' } });
    expect(await m.call('GET', '/my/status', {})).toEqual({ status: 200, json: { app: 'my-app', drover: 'serving', prefix, anyAgentEnrolled: false } });
    expect(await m.call('GET', `${prefix}/healthz`, {})).toEqual({ status: 200, json: { status: 'ok' } });
    expect(await m.call('GET', `${prefix}/readyz`, {})).toEqual({ status: 200, json: { status: 'ready' } });
    // Each side keeps its own not-found answer: Fastify's for the app, the manager's under its prefix.
    expect(await m.call('GET', '/nope', {})).toMatchObject({ status: 404, json: { statusCode: 404, error: 'Not Found' } });
    expect(await m.call('GET', `${prefix}/nope`, {})).toMatchObject({ status: 404, json: { error: { code: 'NOT_FOUND' } } });
  });

  it('enrolls with a token from `drover enroll-token create` and checks in through the mounted plugin', async () => {
    const m = app as ManagerProcess;
    // The CLI keeps the path of --manager, so it reaches the operator routes under the prefix.
    const created = await drover(['enroll-token', 'create', '--manager', `${m.url}${prefix}`, '--seats', '1', '--expires-in', '1h', '--json'], { env: { ...env, DROVER_ADMIN_TOKEN: adminToken } });
    expect(created.code, created.stderr).toBe(0);
    const { token } = JSON.parse(created.stdout) as { token: string };

    const id = machineId();
    const enrolled = await m.call('POST', `${prefix}/v1/agents/enroll`, { 'x-machine-id': id }, enrollBody(token, id));
    expect(enrolled.status).toBe(200);
    const agent = enrolled.json as EnrollResponse;

    const checkin = await m.call(
      'POST',
      `${prefix}/v1/agents/${agent.agentId}/checkin`,
      { authorization: `Bearer ${agent.credential}`, 'x-machine-id': id, 'x-agent-version': '1.0.0', 'x-daemon-version': '0.5.0' },
      checkinBody(),
    );
    expect(checkin).toMatchObject({ status: 200, json: { commands: [] } });

    // The store behind the plugin saw it: the admin API lists the agent, and the app's own route too.
    const agents = await m.call('GET', `${prefix}/v1/agents`, { authorization: `Bearer ${adminToken}` });
    expect(agents).toMatchObject({ status: 200, json: { agents: [{ agentId: agent.agentId, agentVersion: '1.0.0' }] } });
    expect(await m.call('GET', '/my/status', {})).toMatchObject({ json: { anyAgentEnrolled: true } });
    // The seat is spent: the same token enrolls no second host.
    const again = machineId();
    const second = await m.call('POST', `${prefix}/v1/agents/enroll`, { 'x-machine-id': again }, enrollBody(token, again, { hostname: 'web-2' }));
    expect(second).toMatchObject({ status: 403, json: { error: { code: 'ENROLLMENT_TOKEN_EXHAUSTED' } } });
  });

  it('refuses an admin route with a wrong token (401) and without one', async () => {
    const m = app as ManagerProcess;
    expect(await m.call('GET', `${prefix}/v1/agents`, { authorization: 'Bearer not-the-admin-token' })).toMatchObject({ status: 401, json: { error: { code: 'AUTH_INVALID' } } });
    expect(await m.call('GET', `${prefix}/v1/agents`, {})).toMatchObject({ status: 401, json: { error: { code: 'AUTH_REQUIRED' } } });
  });

  it('a real droverd enrolls at <url>/drover, checks in, and takes a signed update downloaded from a URL under the prefix', async () => {
    const m = app as ManagerProcess;
    const managerUrl = `${m.url}${prefix}`;
    const admin = { authorization: `Bearer ${adminToken}` };
    const cli = (args: string[], extra: Record<string, string> = {}): Promise<Awaited<ReturnType<typeof drover>>> => drover(args, { env: { ...env, ...extra } });
    /** Writes `version` of the example agent as rel/<version>/agent.cjs, signed with the release key. */
    const signed = async (version: string, bytes: Buffer): Promise<string> => {
      const file = join(dir, 'rel', version, 'agent.cjs');
      await mkdir(join(dir, 'rel', version), { recursive: true });
      await writeFile(file, bytes);
      const sign = await cli(['release', 'sign', '--key', join(dir, 'keys', 'release.key'), '--artifact', 'agent', '--version', version, '--platform', platform, '--expires-in', '1d', file]);
      expect(sign.code, sign.stderr).toBe(0);
      return file;
    };

    const created = await cli(['enroll-token', 'create', '--manager', managerUrl, '--seats', '1', '--expires-in', '1h', '--json'], { DROVER_ADMIN_TOKEN: adminToken });
    expect(created.code, created.stderr).toBe(0);
    // droverd.json names the manager with its path, pins its key, and enrolls by itself on `droverd run`.
    const h = await createHostFor(
      {
        url: managerUrl,
        managerKey: await readFile(join(dir, 'm', 'keys', 'manager.key.pub'), 'utf8'),
        enrollmentToken: (JSON.parse(created.stdout) as { token: string }).token,
        trustPolicy: JSON.parse(await readFile(join(dir, 'trust.json'), 'utf8')) as TrustPolicyDocument,
      },
      { settings: { machineId: machineId(), checkin: { backoffMaxSeconds: 2 } } },
    );
    host = h;
    const v1 = await signed('1.0.0', await agentArtifact('1.0.0'));
    const installed = await droverd(h, ['install', '--release', `${v1}.release.json`, v1, '--json']);
    expect(installed.code, installed.stderr).toBe(0);

    const daemon = new DaemonProcess(h);
    daemons.push(daemon);
    await waitForAgent(h, '1.0.0');
    const { agentId } = JSON.parse(await waitFor('droverd to enroll', async () => readFile(join(h.stateDir, 'credentials.json'), 'utf8').catch(() => undefined))) as { agentId: string };
    // The manager's side: the agent is listed with its version and a check-in just now.
    const agent = await waitFor(
      'a check-in the manager recorded',
      async () => {
        const answer = await m.call('GET', `${prefix}/v1/agents/${agentId}`, admin);
        const view = (answer.json as { agent?: { lastCheckinAt: string | null; health: { status?: string } | null } }).agent;
        return view?.lastCheckinAt !== null && view?.health?.status === 'healthy' ? view : undefined;
      },
      20_000,
      200,
    );
    expect(agent).toMatchObject({ agentId, agentVersion: '1.0.0', health: { status: 'healthy', version: '1.0.0' } });
    expect(Date.now() - Date.parse(agent.lastCheckinAt ?? '')).toBeLessThan(30_000);
    expect(daemon.lines.filter((line) => line.event === 'checkin.failed' || line.event === 'enroll.failed')).toEqual([]);

    // v2: published through the prefix, queued, and downloaded by droverd from the URL the manager
    // hands out, which carries the prefix (droverd resolves it against the manager's origin).
    const v2 = await agentArtifact('2.0.0');
    const published = await cli(['release', 'publish', '--manager', managerUrl, await signed('2.0.0', v2)], { DROVER_DEPLOY_TOKEN: (await readFile(join(dir, 'm', 'secrets', 'deploy.token'), 'utf8')).trim() });
    expect([published.code, published.stdout], published.stderr).toEqual([0, expect.stringContaining(`PUBLISHED agent 2.0.0 for ${platform}`)]);
    const queued = await m.call('POST', `${prefix}/v1/agents/${agentId}/commands`, admin, { artifact: 'agent', version: '2.0.0', deploymentId: 'dep-prefix', drainTimeoutSeconds: 10 });
    expect(queued.status, JSON.stringify(queued.json)).toBe(201);
    const command = queued.json as UpdateCommand;
    expect(command.url).toBe(`${prefix}/v1/download/agent/2.0.0/${platform}`);
    const outcome = await waitFor(
      'the manager to record the update',
      async () => {
        const answer = await m.call('GET', `${prefix}/v1/agents/${agentId}`, admin);
        const recorded = (answer.json as { commands: { id: string; outcome: string | null }[] }).commands.find((c) => c.id === command.id);
        return recorded?.outcome === null || recorded?.outcome === 'deferred' ? undefined : recorded;
      },
      40_000,
      200,
    );
    expect(outcome).toMatchObject({ outcome: 'succeeded' });
    await waitForAgent(h, '2.0.0');
    // The bytes installed are the bytes published; the manager knows the host runs v2.
    expect(await readFile(join(h.stateDir, 'releases', 'agent', '2.0.0', 'agent.cjs'))).toEqual(v2);
    expect(await m.call('GET', `${prefix}/v1/agents/${agentId}`, admin)).toMatchObject({ status: 200, json: { agent: { agentVersion: '2.0.0' } } });
    const events = (await readFile(join(dir, 'm', 'audit', 'audit.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { event: string; agentId?: string });
    expect(events.filter((e) => e.agentId === agentId).map((e) => e.event)).toEqual(expect.arrayContaining(['agent.enrolled', 'update.completed']));
    expect(events.some((e) => e.event === 'download.refused')).toBe(false);

    await destroyHost(h, daemons);
    host = undefined;
  }, 60_000);

  it('stops on SIGTERM with exit 0, the stop audited in a log that still verifies', async () => {
    const m = app as ManagerProcess;
    expect(await m.stop(15_000)).toBe(0);
    const events = (await readFile(join(dir, 'm', 'audit', 'audit.jsonl'), 'utf8')).trim().split('\n').map((line) => (JSON.parse(line) as { event: string }).event);
    expect(events.at(-1)).toBe('manager.stopped');
    expect(events).toEqual(expect.arrayContaining(['enrollment_token.created', 'agent.enrolled', 'token.rejected']));
    const verified = await drover(['audit', 'verify', '--signers', join(dir, 'm', 'audit', 'signers.json'), join(dir, 'm', 'audit', 'audit.jsonl')], { env });
    expect([verified.code, verified.stdout]).toEqual([0, expect.stringMatching(/^VERIFIED \d+ records/)]);
  });

  it('exits 1 with a message when the manager directory is missing or not initialized', async () => {
    const none = await run(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, env: { ...env, PORT: '0' } });
    expect([none.code, none.stderr]).toEqual([1, expect.stringContaining('drover manager init --dir DIR')]);
    const empty = await run(process.execPath, ['--import', 'tsx', script, join(dir, 'empty')], { cwd: repoRoot, env: { ...env, PORT: '0' } });
    expect([empty.code, empty.stderr]).toEqual([1, expect.stringContaining('"code":"CONFIG_INVALID"')]);
  });
});
