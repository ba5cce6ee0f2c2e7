// The command channel (issue 16, decision 0041) with real processes: `drover manager start` with
// a check-in interval of an hour and the built droverd supervising examples/agent. A command queued
// for the host reaches it at once, through the check-in the manager holds, not an hour later; the
// update it carries completes and the outcome is reported at once too. droverd with the channel
// turned off (checkin.channelWaitSeconds 0) waits for its interval, as before.
//
// A rollout the manager's engine drives over the channel (three hosts, one at a time) obeys an
// operator at once: paused while its first host updates, the hosts that had not started get no
// command for as long as the pause lasts, though their check-ins are held open; resumed, they get
// theirs within seconds and the rollout completes. Aborted while its first host updates, that host
// finishes and stays done, the others never get a command and stay on 1.0.0, and the deployment
// says cancelled.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeploymentStatus, TrustPolicyDocument } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { drover, expectOk as ok } from '../helpers/cli.js';
import { DaemonProcess, createHostFor, destroyHost, droverd, killHost, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import type { CommandView } from '../helpers/manager-process.js';
import { skipWithoutProxy, startProxy } from '../helpers/http-proxy.js';
import { until } from '../helpers/wait.js';

const platform = `${process.platform}-${process.arch}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
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
  /** The hosts runningHost started and no test removed yet. */
  const enrolled: { host: Host; agentId: string; daemon: DaemonProcess }[] = [];
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
    enrolled.push({ host, agentId, daemon });
    return { host, agentId, daemon };
  }

  async function agentView(agentId: string): Promise<{ lastCheckinAt: string | null; commands: CommandView[] } | undefined> {
    const answer = await manager.call('GET', `/v1/agents/${agentId}`, admin());
    if (answer.status !== 200) return undefined;
    const view = answer.json as { agent: { lastCheckinAt: string | null }; commands: CommandView[] };
    return { lastCheckinAt: view.agent.lastCheckinAt, commands: view.commands };
  }

  /** Removes every host started so far from the manager (as `drover agents remove` does) and stops it: a rollout reaches only the hosts a test starts next. */
  async function removeEnrolledHosts(): Promise<void> {
    for (const { host, agentId, daemon } of enrolled.splice(0)) {
      const removed = await manager.call('DELETE', `/v1/agents/${agentId}`, admin());
      expect(removed.status, JSON.stringify(removed.json)).toBe(200);
      await killHost(host, [daemon]);
    }
  }

  async function deployment(id: string): Promise<DeploymentStatus> {
    const answer = await manager.call('GET', `/manager/v1/updates/status?deployment_id=${id}`, admin());
    expect(answer.status, JSON.stringify(answer.json)).toBe(200);
    return answer.json as DeploymentStatus;
  }

  /** The deployment's status once it has closed (completed_at set), waited for at most `timeoutMs`. */
  async function closed(id: string, timeoutMs: number): Promise<DeploymentStatus> {
    return until(async () => {
      const s = await deployment(id);
      return s.completed_at === null ? undefined : s;
    }, timeoutMs, `deployment ${id} to close`);
  }

  /** An operator's pause, resume or abort (POST /manager/v1/updates/{id}/{action}); answers the deployment's status. */
  async function steer(id: string, action: 'pause' | 'resume' | 'abort'): Promise<DeploymentStatus> {
    const answer = await manager.call('POST', `/manager/v1/updates/${id}/${action}`, admin(), { reason: `channel test: ${action}` });
    expect(answer.status, JSON.stringify(answer.json)).toBe(200);
    return answer.json as DeploymentStatus;
  }

  /**
   * Three hosts at 1.0.0 on the channel (and only they), and a rollout of 1.1.0 over them through the
   * deploy API, one host at a time (maxInFlight 1; a host counts as updating until it has stayed
   * healthy 3 s); answers as soon as its first host has started.
   */
  async function rolloutOneAtATime(): Promise<{ id: string; fleet: { host: Host; agentId: string; daemon: DaemonProcess }[]; first: string }> {
    await removeEnrolledHosts();
    const fleet = await Promise.all([runningHost({}), runningHost({}), runningHost({})]);
    const rollout = { maxInFlight: 1, healthGraceSeconds: 3, soakSeconds: 0, targetDeadlineSeconds: 60 };
    const notified = await manager.call('POST', '/manager/v1/updates/notify', { authorization: `Bearer ${deployToken}` }, { version: '1.1.0', strategy: 'immediate', metadata: { rollout } });
    expect(notified.status, JSON.stringify(notified.json)).toBe(200);
    const id = (notified.json as { deployment_id: string }).deployment_id;
    const first = await until(async () => (await deployment(id)).agents.find((a) => a.state !== 'pending')?.agent_id, 10_000, 'the first host to start');
    return { id, fleet, first };
  }

  /** The commands of this deployment the manager holds for an agent (queued, delivered or done). */
  async function commandsOf(agentId: string, deploymentId: string): Promise<CommandView[]> {
    return ((await agentView(agentId))?.commands ?? []).filter((c) => c.deploymentId === deploymentId);
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
    const init = ok(await drover(['manager', 'init', '--dir', at('m'), '--trust', at('trust.json'), '--seats', '12', '--expires-in', '1h', '--json'], { env: cliEnv }), 'manager init');
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

  it('a rollout paused while its first host updates starts no other host while paused, though their channel is open; resumed, they start at once', async () => {
    const { id, fleet, first } = await rolloutOneAtATime();
    const paused = await steer(id, 'pause');
    const pausedAt = Date.now();
    expect(paused.status).toBe('paused');
    // When the pause took effect only the first host had started.
    expect(paused.agents.filter((a) => a.state !== 'pending').map((a) => a.agent_id)).toEqual([first]);
    const waiting = fleet.filter((h) => h.agentId !== first);
    // The host already updating finishes (agents already updating finish)...
    await until(async () => ((await deployment(id)).agents.find((a) => a.agent_id === first)?.state === 'succeeded' ? true : undefined), 30_000, 'the first host to finish');
    // ...and for 5 s more, paused, its slot free, the others get nothing: their held check-ins carry no command.
    await sleep(5_000);
    const still = await deployment(id);
    expect(still.status).toBe('paused');
    for (const { host, agentId, daemon } of waiting) {
      expect(still.agents.find((a) => a.agent_id === agentId)?.state).toBe('pending');
      expect(await commandsOf(agentId, id)).toEqual([]);
      await waitForAgent(host, '1.0.0', 2_000);
      // Its channel stayed up all along: no check-in of it failed or was turned away.
      expect(daemon.lines.filter((l) => l.event === 'checkin.failed' || l.event === 'checkin.channel_full')).toEqual([]);
    }
    const pausedSeconds = (Date.now() - pausedAt) / 1000;
    // Resumed: the next host takes its command within seconds (the check-in interval is an hour).
    const resumedAt = Date.now();
    expect((await steer(id, 'resume')).status).toBe('in_progress');
    const taken = await until(
      async () => {
        for (const { agentId } of waiting) {
          const command = (await commandsOf(agentId, id)).find((c) => c.ackedAt !== null);
          if (command !== undefined) return command;
        }
        return undefined;
      },
      10_000,
      'a waiting host to take its command',
    );
    const takenSeconds = (Date.parse(taken.ackedAt ?? '') - resumedAt) / 1000;
    expect(takenSeconds).toBeLessThan(5);
    // And the rollout completes, one host after the other.
    const end = await closed(id, 60_000);
    expect(end.status).toBe('completed');
    expect(end.agents.map((a) => a.state)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    for (const { host, agentId } of fleet) {
      expect((await commandsOf(agentId, id)).map((c) => c.outcome)).toEqual(['succeeded']);
      await waitForAgent(host, '1.1.0', 10_000);
    }
    console.info(`command channel, pause: paused ${pausedSeconds.toFixed(1)} s with no command sent; after resume a command was taken in ${takenSeconds.toFixed(2)} s; completed ${((Date.now() - resumedAt) / 1000).toFixed(1)} s after resume`);
  }, 120_000);

  it('a rollout aborted while its first host updates: that host finishes and stays done, the others never get a command and stay on 1.0.0', async () => {
    const { id, fleet, first } = await rolloutOneAtATime();
    const abortedAt = Date.now();
    const aborted = await steer(id, 'abort');
    expect(aborted.status).toBe('cancelled');
    const waiting = fleet.filter((h) => h.agentId !== first);
    // The hosts that had not started are skipped at once.
    for (const { agentId } of waiting) {
      const target = aborted.agents.find((a) => a.agent_id === agentId);
      expect([target?.state, target?.error?.code]).toEqual(['skipped', 'DEPLOYMENT_STOPPED']);
    }
    // The first host had taken its command: it finishes, and the deployment closes, cancelled.
    const end = await closed(id, 30_000);
    expect(end.status).toBe('cancelled');
    expect(end.events.map((e) => e.event_type)).toContain('aborted');
    expect(end.agents.find((a) => a.agent_id === first)?.state).toBe('succeeded');
    // 5 s more: the done host stays done (no rollback command), the others never got a command.
    await sleep(5_000);
    const after = await deployment(id);
    expect(after.agents.map((a) => [a.agent_id, a.state]).sort()).toEqual(end.agents.map((a) => [a.agent_id, a.state]).sort());
    for (const { host, agentId } of fleet) {
      if (agentId === first) {
        expect((await commandsOf(agentId, id)).map((c) => c.outcome)).toEqual(['succeeded']);
        await waitForAgent(host, '1.1.0', 2_000);
      } else {
        expect(await commandsOf(agentId, id)).toEqual([]);
        await waitForAgent(host, '1.0.0', 2_000);
      }
    }
    console.info(`command channel, abort: closed ${((Date.parse(end.completed_at ?? '') - abortedAt) / 1000).toFixed(1)} s after the abort; the ${waiting.length} hosts not started got no command in ${((Date.now() - abortedAt) / 1000).toFixed(1)} s`);
  }, 120_000);
});
