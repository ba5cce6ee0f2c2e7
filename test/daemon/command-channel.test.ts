// The command channel (issue 16, decision 0041) with real processes: `drover manager start` with
// a check-in interval of an hour and the built droverd supervising examples/agent. A command queued
// for the host reaches it at once, through the check-in the manager holds, not an hour later; the
// update it carries completes and the outcome is reported at once too. droverd with the channel
// turned off (checkin.channelWaitSeconds 0) waits for its interval, as before.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrustPolicyDocument } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { drover, expectOk as ok } from '../helpers/cli.js';
import { DaemonProcess, createHostFor, destroyHost, droverd, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import type { CommandView } from '../helpers/manager-process.js';
import { skipWithoutProxy, startProxy } from '../helpers/http-proxy.js';
import { until } from '../helpers/wait.js';

const platform = `${process.platform}-${process.arch}`;
const skipProxy = skipWithoutProxy('droverd behind an HTTP proxy');

describe('the command channel: droverd and the manager as operators run them', () => {
  let root: string;
  let manager: ManagerProcess;
  let adminToken: string;
  let deployToken: string;
  let enrollmentToken: string;
  let trustPolicy: TrustPolicyDocument;
  let managerKey: string;
  const hosts: Host[] = [];
  const daemons: DaemonProcess[] = [];
  const cliEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
  const at = (...parts: string[]): string => join(root, ...parts);
  const admin = (): Record<string, string> => ({ authorization: `Bearer ${adminToken}` });

  async function release(version: string): Promise<string> {
    const file = at('rel', version, 'agent.cjs');
    await mkdir(at('rel', version), { recursive: true });
    await writeFile(file, await agentArtifact(version));
    ok(await drover(['release', 'sign', '--key', at('keys', 'release.key'), '--artifact', 'agent', '--version', version, '--platform', platform, '--expires-in', '1d', file], { env: cliEnv }), `release sign ${version}`);
    ok(await drover(['release', 'publish', '--manager', manager.url, file], { env: { ...cliEnv, DROVER_DEPLOY_TOKEN: deployToken } }), `release publish ${version}`);
    return file;
  }

  /** A host at 1.0.0, enrolled, running droverd with `checkin` settings (and `env`); answers its agent id. */
  async function runningHost(checkin: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<{ host: Host; agentId: string; daemon: DaemonProcess }> {
    const host = await createHostFor(
      { url: manager.url, managerKey, enrollmentToken, trustPolicy },
      { settings: { machineId: createHash('sha256').update(randomBytes(16)).digest('hex'), checkin: { backoffMaxSeconds: 1, ...checkin } } },
    );
    hosts.push(host);
    ok(await droverd(host, ['install', '--release', `${at('rel', '1.0.0', 'agent.cjs')}.release.json`, at('rel', '1.0.0', 'agent.cjs'), '--json']), 'droverd install 1.0.0');
    const daemon = new DaemonProcess(host, env);
    daemons.push(daemon);
    await waitForAgent(host, '1.0.0', 30_000);
    const agentId = await until(async () => {
      try {
        return (JSON.parse(await readFile(join(host.stateDir, 'credentials.json'), 'utf8')) as { agentId: string }).agentId;
      } catch {
        return undefined;
      }
    }, 20_000, 'the host to enroll');
    // Checked in, and settled (no check-in for 2 s: the ones at start, for enrollment and the agent
    // turning healthy, are over): from now on its next check-in is an hour away, unless it is held.
    await until(async () => ((await agentView(agentId))?.lastCheckinAt !== null ? true : undefined), 20_000, 'a first check-in');
    let last: string | null | undefined;
    await until(async () => {
      const seen = (await agentView(agentId))?.lastCheckinAt;
      const settled = seen === last;
      last = seen;
      if (!settled) await new Promise((resolve) => setTimeout(resolve, 2_000));
      return settled ? true : undefined;
    }, 30_000, 'the check-ins at start to be over');
    return { host, agentId, daemon };
  }

  async function agentView(agentId: string): Promise<{ lastCheckinAt: string | null; commands: CommandView[] } | undefined> {
    const answer = await manager.call('GET', `/v1/agents/${agentId}`, admin());
    if (answer.status !== 200) return undefined;
    const view = answer.json as { agent: { lastCheckinAt: string | null }; commands: CommandView[] };
    return { lastCheckinAt: view.agent.lastCheckinAt, commands: view.commands };
  }

  async function queue(agentId: string, version: string, deploymentId: string): Promise<string> {
    const queued = await manager.call('POST', `/v1/agents/${agentId}/commands`, admin(), { artifact: 'agent', version, deploymentId });
    expect(queued.status, JSON.stringify(queued.json)).toBe(201);
    return (queued.json as { id: string }).id;
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'drover-channel-'));
    ok(await drover(['keygen', '--out', at('keys'), '--name', 'release'], { env: cliEnv }), 'keygen');
    ok(await drover(['trust', 'create', '--pub', at('keys', 'release.pub'), '--out', at('trust.json')], { env: cliEnv }), 'trust create');
    const init = ok(await drover(['manager', 'init', '--dir', at('m'), '--trust', at('trust.json'), '--seats', '6', '--expires-in', '1h', '--json'], { env: cliEnv }), 'manager init');
    enrollmentToken = (JSON.parse(init.stdout) as { enrollmentToken: string }).enrollmentToken;
    adminToken = (await readFile(at('m', 'secrets', 'admin.token'), 'utf8')).trim();
    deployToken = (await readFile(at('m', 'secrets', 'deploy.token'), 'utf8')).trim();
    const config = JSON.parse(await readFile(at('m', 'manager.json'), 'utf8')) as { settings: Record<string, unknown> };
    config.settings['checkinIntervalSeconds'] = 3600;
    await writeFile(at('m', 'manager.json'), JSON.stringify(config, null, 2));
    manager = await ManagerProcess.start(at('m'), cliEnv);
    managerKey = await readFile(at('m', 'keys', 'manager.key.pub'), 'utf8');
    trustPolicy = JSON.parse(await readFile(at('trust.json'), 'utf8')) as TrustPolicyDocument;
    await release('1.0.0');
    await release('1.1.0');
  }, 90_000);

  afterAll(async () => {
    for (const host of hosts) await destroyHost(host, daemons);
    await manager.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('delivers a command at once with a check-in interval of an hour, and the outcome comes back at once', async () => {
    const { host, agentId } = await runningHost({});
    const queuedAt = Date.now();
    const commandId = await queue(agentId, '1.1.0', 'channel-1');
    // Taken (acked) within seconds, not at the next check-in an hour away.
    const acked = await until(async () => (await agentView(agentId))?.commands.find((c) => c.id === commandId && c.ackedAt !== null), 10_000, 'the command to be acked');
    const ackSeconds = (Date.parse(acked.ackedAt ?? '') - queuedAt) / 1000;
    expect(ackSeconds).toBeLessThan(5);
    // The update runs (health grace 0.5 s) and its result is reported without waiting for an interval.
    const done = await manager.finalOutcome(agentId, commandId, adminToken, 30_000);
    expect(done.outcome).toBe('succeeded');
    await waitForAgent(host, '1.1.0', 10_000);
    console.info(`command channel: acked ${ackSeconds.toFixed(2)} s after it was queued, outcome ${((Date.now() - queuedAt) / 1000).toFixed(1)} s after`);
  }, 90_000);

  it.skipIf(skipProxy)('delivers a command at once to a host behind an HTTP proxy (tinyproxy), through the held check-in', async () => {
    const proxy = await startProxy();
    try {
      const { agentId } = await runningHost({}, { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: '' });
      const queuedAt = Date.now();
      const commandId = await queue(agentId, '1.1.0', 'channel-proxy');
      const acked = await until(async () => (await agentView(agentId))?.commands.find((c) => c.id === commandId && c.ackedAt !== null), 10_000, 'the command to be acked');
      expect((Date.parse(acked.ackedAt ?? '') - queuedAt) / 1000).toBeLessThan(5);
      expect((await manager.finalOutcome(agentId, commandId, adminToken, 30_000)).outcome).toBe('succeeded');
      // The check-ins went through the proxy: it logged connections to the manager.
      expect(await proxy.log()).toContain(`127.0.0.1:${new URL(manager.url).port}`);
    } finally {
      await proxy.stop();
    }
  }, 90_000);

  it('with the channel off (channelWaitSeconds 0), the command waits for the next check-in', async () => {
    const { agentId } = await runningHost({ channelWaitSeconds: 0 });
    const commandId = await queue(agentId, '1.1.0', 'channel-2');
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect((await agentView(agentId))?.commands.find((c) => c.id === commandId)?.ackedAt).toBeNull();
  }, 90_000);
});
