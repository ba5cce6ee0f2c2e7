import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import type { AgentArtifactOptions } from '../helpers/agent-artifact.js';
import { DaemonProcess, agentRuntime, createHost, destroyHost, droverd, installAgent, waitForAgent } from '../helpers/droverd.js';
import type { Host, LogLine } from '../helpers/droverd.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A fake manager (with `settings` applied) and a host enrolled with it, running agent 1.0.0. */
async function managerAndHost(settings: Partial<Pick<FakeManager, 'enrollCheckinIntervalSeconds' | 'nextCheckinSeconds'>> = {}, agent: (host: Host) => AgentArtifactOptions = () => ({})): Promise<{ manager: FakeManager; host: Host }> {
  const manager = Object.assign(await FakeManager.start(), settings);
  const host = await createHost(manager);
  await installAgent(host, manager, '1.0.0', await agentArtifact('1.0.0', agent(host)));
  return { manager, host };
}

describe('droverd lifecycle: one daemon per state dir, supervision, SIGTERM, outages', () => {
  let manager: FakeManager;
  let host: Host;
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    ({ manager, host } = await managerAndHost());
  }, 30_000);

  afterAll(async () => {
    await destroyHost(host, daemons);
    await manager.close();
  });

  it('enrolls at start from droverd.json, with credentials.json at mode 0600 and the pinned key only', async () => {
    const daemon = new DaemonProcess(host);
    daemons.push(daemon);
    await waitForAgent(host, '1.0.0');
    const credentials = JSON.parse(await readFile(join(host.stateDir, 'credentials.json'), 'utf8')) as { trust: string; managerKeys: { keyid: string }[]; agentId: string };
    expect(credentials.trust).toBe('pinned');
    expect(credentials.managerKeys.map((k) => k.keyid)).toEqual([manager.managerKey.keyid]);
    expect((await stat(join(host.stateDir, 'credentials.json'))).mode & 0o777).toBe(0o600);
    // No secret in the log: neither the credential nor the service token.
    await manager.waitFor(() => (manager.checkins.length > 0 ? true : undefined), 10_000, 'a check-in');
    const log = daemon.output.join('\n');
    expect(log).not.toContain(manager.credential);
    expect(log).not.toContain(manager.serviceToken);
    expect(log).not.toContain(manager.enrollmentToken);
  });

  it('a second daemon on the same state dir exits at once with STATE_LOCKED (exit 3)', async () => {
    const second = new DaemonProcess(host);
    daemons.push(second);
    const exit = await second.exited;
    expect(exit.code).toBe(3);
    expect(second.output.join('\n')).toMatch(/droverd: STATE_LOCKED: Another droverd \(pid \d+\) is running on this state directory/);
    expect(((await droverd(host, ['status', '--json'])).stdout)).toContain('"running": true');
  });

  it('restarts an agent that dies outside an update, with backoff', async () => {
    const daemon = daemons[0];
    const before = await agentRuntime(host);
    expect(before).toBeDefined();
    process.kill(before?.pid ?? 0, 'SIGKILL');
    // droverd's own account: the exit, a restart scheduled after a backoff, a new agent process.
    const scheduled = await daemon?.waitForLine((l) => l.event === 'agent.restart_scheduled', 10_000);
    expect(scheduled?.['inMs']).toBeGreaterThanOrEqual(1_000);
    const started = await daemon?.waitForLine((l) => l.event === 'agent.started' && l['pid'] !== before?.pid, 10_000);
    expect(started?.['version']).toBe('1.0.0');
    await waitForAgent(host, '1.0.0');
    expect((await agentRuntime(host))?.pid).toBe(started?.['pid']);
  });

  it('backs off while the manager is unreachable, then checks in again', async () => {
    const daemon = daemons[0];
    const failedSince = (from: number): LogLine[] => (daemon?.lines.slice(from) ?? []).filter((l) => l.event === 'checkin.failed');
    const from = daemon?.lines.length ?? 0;
    manager.checkinStatus = 503;
    const start = manager.checkinAttempts;
    // A check-in fails: droverd logs it with the backoff it then waits.
    await daemon?.waitForLine(() => failedSince(from).length >= 1, 20_000);
    const during = manager.checkinAttempts - start;
    const failed = failedSince(from);
    // Each failed check-in is retried by the HTTP client (4 attempts, jittered), then the loop backs
    // off exponentially (at least half its 1 s base): far fewer requests than a tight loop would make.
    expect(during).toBeGreaterThan(0);
    expect(during).toBeLessThanOrEqual(4 * (failed.length + 1));
    for (const line of failed) expect(line['retryInMs']).toBeGreaterThanOrEqual(500);
    const answered = manager.checkins.length;
    manager.checkinStatus = undefined;
    await manager.waitFor(() => (manager.checkins.length > answered ? true : undefined), 15_000, 'a check-in after the outage');
  }, 30_000);

  it('drops a result the manager refuses (409 with its commandId) and goes on checking in', async () => {
    const { commandId } = manager.queueUpdate({ version: '2.0.0', bytes: await agentArtifact('2.0.0'), behaviour: 'flip' });
    manager.refuseResultsOf.add(commandId);
    await manager.waitFor(() => (manager.refusedResults.some((r) => r.commandId === commandId) ? true : undefined), 20_000, 'the refused result');
    const seen = manager.checkins.length;
    await manager.waitFor(() => (manager.checkins.length > seen + 1 ? true : undefined), 10_000, 'check-ins after the refusal');
    expect(manager.resultsFor(commandId)).toEqual([]);
    expect(manager.acked.has(commandId)).toBe(true);
    expect(daemons[0]?.lines.some((l) => l.event === 'checkin.result_refused' && l['commandId'] === commandId)).toBe(true);
    await waitForAgent(host, '1.0.0');
  }, 30_000);

  it('on SIGTERM forwards SIGTERM to the agent, waits for it, releases the lock and exits 0', async () => {
    const runtime = await agentRuntime(host);
    const daemon = daemons[0];
    expect(daemon).toBeDefined();
    const exit = await daemon?.stop();
    expect(exit?.code).toBe(0);
    expect(alive(runtime?.pid ?? 0)).toBe(false);
    expect(daemon?.lines.some((l) => l.event === 'agent.exited' && l.signal === null && l.code === 0)).toBe(true);
    // The lock is free again: a new daemon starts and runs the agent.
    const next = new DaemonProcess(host);
    daemons.push(next);
    await waitForAgent(host, '1.0.0');
    expect((await next.stop()).code).toBe(0);
  }, 30_000);
});

describe('droverd enroll: the manager key is pinned, or trusted on first use only when asked', () => {
  let manager: FakeManager;
  const hosts: Host[] = [];

  beforeAll(async () => {
    manager = await FakeManager.start();
  });

  afterAll(async () => {
    for (const host of hosts) await destroyHost(host);
    await manager.close();
  });

  async function bareHost(): Promise<Host> {
    const host = await createHost(manager, { settings: { manager: {} } });
    hosts.push(host);
    return host;
  }

  it('refuses without a pinned key and without --tofu (MANAGER_KEY_NOT_PINNED), writing nothing', async () => {
    const host = await bareHost();
    const result = await droverd(host, ['enroll', '--manager', manager.url, '--token', manager.enrollmentToken, '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'MANAGER_KEY_NOT_PINNED' } });
    await expect(stat(join(host.stateDir, 'credentials.json'))).rejects.toThrow();
  });

  it('refuses a manager that does not present the pinned key (MANAGER_KEY_MISMATCH)', async () => {
    const host = await bareHost();
    const other = (await import('@drover/protocol')).Ed25519PrivateKey.generate().publicKey.toBase64();
    const result = await droverd(host, ['enroll', '--manager', manager.url, '--token', manager.enrollmentToken, '--manager-key', other, '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'MANAGER_KEY_MISMATCH' } });
    await expect(stat(join(host.stateDir, 'credentials.json'))).rejects.toThrow();
  });

  it('refuses a bad enrollment token (ENROLLMENT_REFUSED)', async () => {
    const host = await bareHost();
    // One base64url token in 64 starts with a dash: it is still the value of --token, not an option.
    const result = await droverd(host, ['enroll', '--manager', manager.url, '--token', `-${'x'.repeat(31)}`, '--manager-key', manager.managerKey.publicKey.toBase64(), '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'ENROLLMENT_REFUSED' } });
  });

  it('enrolls with --tofu, and says so in the log', async () => {
    const host = await bareHost();
    const result = await droverd(host, ['enroll', '--manager', manager.url, '--token', manager.enrollmentToken, '--tofu', '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ enrolled: true, trust: 'tofu', managerKeys: [manager.managerKey.keyid] });
    expect(result.stderr).toContain('"event":"enroll.tofu"');
    const again = await droverd(host, ['enroll', '--manager', manager.url, '--token', manager.enrollmentToken, '--tofu', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ error: { code: 'ALREADY_ENROLLED' } });
  });

  it('`droverd run` on a host that is not enrolled and has no token exits 4 (NOT_ENROLLED)', async () => {
    const host = await bareHost();
    const daemon = new DaemonProcess(host);
    const exit = await daemon.exited;
    expect(exit.code).toBe(4);
    expect(daemon.output.join('\n')).toContain('NOT_ENROLLED');
  });
});

describe('droverd at start: the manager sees the agent as soon as it answers', () => {
  let manager: FakeManager;
  let host: Host;
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    // Ten minutes between check-ins: any second check-in within the test is the one sent on the agent's
    // first answer. The agent listens only once the test says so, after droverd's first check-in.
    ({ manager, host } = await managerAndHost({ enrollCheckinIntervalSeconds: 600, nextCheckinSeconds: 600 }, (h) => ({ listenWhenFile: join(h.dir, 'agent-may-listen') })));
  }, 30_000);

  afterAll(async () => {
    await destroyHost(host, daemons);
    await manager.close();
  });

  it('checks in once more when the starting agent first answers, not a whole interval later', async () => {
    daemons.push(new DaemonProcess(host));
    await manager.waitFor(() => (manager.checkins.length > 0 ? true : undefined), 20_000, 'a first check-in');
    await writeFile(join(host.dir, 'agent-may-listen'), '');
    const healthy = await manager.waitFor(() => manager.checkins.find((checkin) => checkin.body.health.status === 'healthy'), 20_000, 'a check-in reporting the agent healthy');
    expect(healthy.body.health).toMatchObject({ status: 'healthy', version: '1.0.0' });
    // The first check-in went out before the agent listened; the second is the one its first answer sent.
    expect(manager.checkins[0]?.body.health.status).not.toBe('healthy');
    expect(manager.checkins.indexOf(healthy)).toBe(1);
  });
});
