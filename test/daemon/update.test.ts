import { readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { DaemonProcess, agentGet, createHost, destroyHost, droverd, installAgent, releaseTree, waitForAgent } from '../helpers/droverd.js';
import type { Host, HostOptions } from '../helpers/droverd.js';

// End to end with real processes: the built droverd, the example agent packaged as the artifact,
// real HTTP on loopback to a test peer speaking the manager's protocol.

describe('droverd updates the agent', () => {
  const hosts: { host: Host; daemons: DaemonProcess[]; manager: FakeManager }[] = [];
  let manager: FakeManager;

  afterAll(async () => {
    for (const entry of hosts) {
      await destroyHost(entry.host, entry.daemons);
      await entry.manager.close();
    }
  });

  // One manager per host: the fake manager serves one enrolled agent.
  async function bootHost(v1?: Buffer, options?: HostOptions): Promise<{ host: Host; daemon: DaemonProcess; configBefore: Buffer; droverdJsonBefore: Buffer }> {
    manager = await FakeManager.start();
    const host = await createHost(manager, options);
    await installAgent(host, manager, '1.0.0', v1 ?? (await agentArtifact('1.0.0')));
    const entry = { host, daemons: [] as DaemonProcess[], manager };
    hosts.push(entry);
    const daemon = new DaemonProcess(host);
    entry.daemons.push(daemon);
    await waitForAgent(host, '1.0.0');
    await manager.waitFor(() => (manager.checkins.length > 0 ? true : undefined), 10_000, 'a first check-in');
    return { host, daemon, configBefore: await readFile(host.agentConfigPath), droverdJsonBefore: await readFile(host.configPath) };
  }

  it('takes v1 to v2: download, verify, stage, drain, swap, start, health check, commit; config untouched', async () => {
    const { host, daemon, configBefore, droverdJsonBefore } = await bootHost();
    const v2 = await agentArtifact('2.0.0');
    const { commandId, nonce } = manager.queueUpdate({ version: '2.0.0', bytes: v2 });
    const result = await manager.waitForResult(commandId);
    expect(result).toMatchObject({ outcome: 'succeeded', nonce });
    // Verified as it was written (no second pass over the file), and the health gate's figures logged.
    expect(daemon.lines.find((line) => line.event === 'artifact.verified')).toMatchObject({ hashedWhileWritten: true });
    expect(daemon.lines.find((line) => line.event === 'update.health_passed')).toMatchObject({ firstHealthyMs: expect.any(Number) as number, probes: expect.any(Number) as number });
    await waitForAgent(host, '2.0.0');
    const info = (await agentGet(host, '/info')) as { version: string; configHash: string | null };
    expect(info.version).toBe('2.0.0');
    expect(await readFile(host.agentConfigPath)).toEqual(configBefore);
    expect(await readFile(host.configPath)).toEqual(droverdJsonBefore);
    expect(manager.acked.has(commandId)).toBe(true);
    // The bytes installed are the bytes signed.
    expect(await readFile(join(host.stateDir, 'releases', 'agent', '2.0.0', 'agent.cjs'))).toEqual(v2);
    expect(await releaseTree(host)).toEqual(expect.arrayContaining(['1.0.0', '2.0.0']));
    const status = await droverd(host, ['status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ agent: { current: '2.0.0', previous: '1.0.0' }, update: null, lastResult: { outcome: 'succeeded', commandId } });
    const verify = await droverd(host, ['verify', '--json']);
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
  });

  it('defers while the agent is busy (503), reports deferred, and updates once it is free', async () => {
    const { host } = await bootHost(await agentArtifact('1.0.0', { busyAfterRefusalMs: 1_000 }));
    const runtime = (await agentGet(host, '/info')) as { pid: number };
    const { commandId, nonce } = manager.queueUpdate({ version: '2.0.0', bytes: await agentArtifact('2.0.0') });
    const deferred = await manager.waitForResult(commandId, ['deferred'], 15_000);
    expect(deferred).toMatchObject({ outcome: 'deferred', detail: { code: 'AGENT_BUSY' }, nonce });
    // Not forced: the busy v1 kept running through the deferral.
    expect(((await agentGet(host, '/info')) as { pid: number }).pid).toBe(runtime.pid);
    const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 20_000);
    expect(result.outcome).toBe('succeeded');
    await waitForAgent(host, '2.0.0');
  }, 45_000);

  it("gives a busy agent up at the command's deferral window: failed DEFERRAL_WINDOW_EXPIRED, v1 untouched, not updated once free", async () => {
    // A long backoff cap, so the agent's Retry-After (5 s) would be slept in full were the wait not cut at the window's end.
    const settings = { update: { healthGraceSeconds: 0.5, healthTimeoutSeconds: 5, deferBackoffMaxSeconds: 30 } };
    const { host, configBefore, droverdJsonBefore } = await bootHost(await agentArtifact('1.0.0', { busyMs: 9_000 }), { settings });
    const runtime = (await agentGet(host, '/info')) as { pid: number };
    const currentDir = join(host.stateDir, 'current');
    const currentBefore = { entries: await readdir(currentDir), agent: await readlink(join(currentDir, 'agent')) };
    const { commandId, nonce } = manager.queueUpdate({ version: '2.0.0', bytes: await agentArtifact('2.0.0'), deferralWindowSeconds: 2 });
    expect(await manager.waitForResult(commandId, ['deferred'], 15_000)).toMatchObject({ outcome: 'deferred', detail: { code: 'AGENT_BUSY' }, nonce });
    const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 15_000);
    expect(result).toMatchObject({ outcome: 'failed', detail: { code: 'DEFERRAL_WINDOW_EXPIRED' }, nonce });
    // The window counts from the first deferral: about 2 s, not the 10 minutes of the deadline, nor
    // the 5 s of the agent's Retry-After.
    const waited = (manager.resultAt.get(`${commandId}:failed`) ?? 0) - (manager.resultAt.get(`${commandId}:deferred`) ?? 0);
    expect(waited).toBeGreaterThanOrEqual(1_500);
    expect(waited).toBeLessThan(4_000);
    // Never forced: the same v1 process, config byte-identical, nothing new under current/ or staging/.
    expect(((await agentGet(host, '/info')) as { pid: number }).pid).toBe(runtime.pid);
    expect(await readFile(host.agentConfigPath)).toEqual(configBefore);
    expect(await readFile(host.configPath)).toEqual(droverdJsonBefore);
    expect({ entries: await readdir(currentDir), agent: await readlink(join(currentDir, 'agent')) }).toEqual(currentBefore);
    expect(await readdir(join(host.stateDir, 'staging')).catch(() => [])).toEqual([]);
    const status = JSON.parse((await droverd(host, ['status', '--json'])).stdout) as { update: unknown; lastResult: { outcome: string; commandId: string } };
    expect(status).toMatchObject({ update: null, lastResult: { outcome: 'failed', commandId } });
    // Once the agent is free, droverd does not come back to the update it gave up.
    await manager.waitFor(() => (manager.checkins.at(-1)?.body.health.busy === false ? true : undefined), 15_000, 'a check-in with the agent free');
    // One more whole check-in cycle with the agent free: droverd had every chance to come back to the update.
    const free = manager.checkins.length;
    await manager.waitFor(() => (manager.checkins.length > free ? true : undefined), 15_000, 'another check-in with the agent free');
    expect(manager.checkins.at(-1)?.body.health).toMatchObject({ busy: false, version: '1.0.0' });
    expect(((await agentGet(host, '/info')) as { pid: number; version: string })).toMatchObject({ pid: runtime.pid, version: '1.0.0' });
    expect(manager.resultsFor(commandId).map((r) => r.outcome)).not.toContain('succeeded');
    expect(await readlink(join(currentDir, 'agent'))).toBe(currentBefore.agent);
  }, 45_000);

  it('keeps the first deferral time across a SIGKILL: the window ends when it would have without the restart', async () => {
    manager = await FakeManager.start();
    const host = await createHost(manager);
    await installAgent(host, manager, '1.0.0', await agentArtifact('1.0.0', { busyMs: 30_000 }));
    const entry = { host, daemons: [] as DaemonProcess[], manager };
    hosts.push(entry);
    // The failpoint SIGKILLs droverd right after the journal records the first deferral.
    const first = new DaemonProcess(host, { DROVER_FAILPOINT: 'deferred' });
    entry.daemons.push(first);
    await manager.waitFor(() => (manager.checkins.length > 0 ? true : undefined), 15_000, 'a first check-in');
    const { commandId } = manager.queueUpdate({ version: '2.0.0', bytes: await agentArtifact('2.0.0'), deferralWindowSeconds: 12 });
    expect((await first.exited).signal).toBe('SIGKILL');
    const journalPath = join(host.stateDir, 'journal.json');
    const readUpdate = async (): Promise<{ step: string; deferrals: number; firstDeferredAt?: string } | null> =>
      (JSON.parse(await readFile(journalPath, 'utf8')) as { update: { step: string; deferrals: number; firstDeferredAt?: string } | null }).update;
    const killed = await readUpdate();
    expect(killed).toMatchObject({ step: 'deferred', deferrals: 1 });
    const firstDeferredAt = killed?.firstDeferredAt ?? '';
    expect(Date.parse(firstDeferredAt)).not.toBeNaN();
    const second = new DaemonProcess(host);
    entry.daemons.push(second);
    // The restarted droverd defers again (its agent restarted busy) under the same window start.
    await second.waitForLine((line) => line.event === 'update.step' && line.step === 'deferred', 20_000);
    const again = await readUpdate();
    expect(again?.deferrals).toBeGreaterThanOrEqual(2);
    expect(again?.firstDeferredAt).toBe(firstDeferredAt);
    const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 20_000);
    expect(result).toMatchObject({ outcome: 'failed', detail: { code: 'DEFERRAL_WINDOW_EXPIRED' } });
    expect((manager.resultAt.get(`${commandId}:failed`) ?? 0) - Date.parse(firstDeferredAt)).toBeLessThan(12_000 + 3_000);
    await waitForAgent(host, '1.0.0');
  }, 60_000);

  it('droverd killed once the download is journaled, a byte of the .part then altered: the restarted droverd hashes the file again and refuses it (ARTIFACT_DIGEST_MISMATCH)', async () => {
    manager = await FakeManager.start();
    const host = await createHost(manager);
    await installAgent(host, manager, '1.0.0', await agentArtifact('1.0.0'));
    const entry = { host, daemons: [] as DaemonProcess[], manager };
    hosts.push(entry);
    // The first droverd verifies the file as it writes it, then is killed right after the journal
    // records `downloaded`: what it knew of the file dies with it.
    const first = new DaemonProcess(host, { DROVER_FAILPOINT: 'downloaded' });
    entry.daemons.push(first);
    await manager.waitFor(() => (manager.checkins.length > 0 ? true : undefined), 15_000, 'a first check-in');
    const { commandId, nonce } = manager.queueUpdate({ version: '2.0.0', bytes: await agentArtifact('2.0.0') });
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(first.lines.some((line) => line.event === 'download.done')).toBe(true);
    const part = join(host.stateDir, 'staging', `${commandId}.part`);
    const altered = await readFile(part);
    altered[100] = (altered[100] ?? 0) ^ 1;
    await writeFile(part, altered);
    const second = new DaemonProcess(host);
    entry.daemons.push(second);
    const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 30_000);
    expect(result).toMatchObject({ outcome: 'rejected', detail: { code: 'ARTIFACT_DIGEST_MISMATCH' }, nonce });
    await waitForAgent(host, '1.0.0');
    expect((await releaseTree(host)).some((path) => path.startsWith('2.0.0'))).toBe(false);
    expect(await readdir(join(host.stateDir, 'staging')).catch(() => [])).toEqual([]);
  }, 60_000);

  for (const [name, options, code] of [
    ['crashes at boot', { crashAtBoot: true }, 'AGENT_EXITED'],
    ['reports degraded', { unhealthy: true }, 'HEALTH_CHECK_FAILED'],
  ] as const) {
    it(`rolls a v2 that ${name} back to v1 by itself and reports it (${code}); config byte-identical`, async () => {
      const { host, configBefore, droverdJsonBefore } = await bootHost();
      const { commandId, nonce } = manager.queueUpdate({ version: '2.0.0', bytes: await agentArtifact('2.0.0', options) });
      const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 30_000);
      expect(result).toMatchObject({ outcome: 'rolled_back', detail: { code }, nonce });
      await waitForAgent(host, '1.0.0');
      expect(await readFile(host.agentConfigPath)).toEqual(configBefore);
      expect(await readFile(host.configPath)).toEqual(droverdJsonBefore);
      const status = JSON.parse((await droverd(host, ['status', '--json'])).stdout) as { agent: { current: string }; lastResult: { outcome: string } };
      expect(status.agent.current).toBe('1.0.0');
      expect(status.lastResult.outcome).toBe('rolled_back');
      // The daemon reports the version it runs: v1 again.
      await manager.waitFor(() => (manager.checkins.at(-1)?.headers['x-agent-version'] === '1.0.0' ? true : undefined), 5_000, 'a check-in at 1.0.0');
    }, 45_000);
  }
});
