import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { DaemonProcess, agentGet, createHost, destroyHost, droverd, installAgent, releaseTree, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';

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
  async function bootHost(v1?: Buffer): Promise<{ host: Host; daemon: DaemonProcess; configBefore: Buffer; droverdJsonBefore: Buffer }> {
    manager = await FakeManager.start();
    const host = await createHost(manager);
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
    const { host, configBefore, droverdJsonBefore } = await bootHost();
    const v2 = await agentArtifact('2.0.0');
    const { commandId, nonce } = manager.queueUpdate({ version: '2.0.0', bytes: v2 });
    const result = await manager.waitForResult(commandId);
    expect(result).toMatchObject({ outcome: 'succeeded', nonce });
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
    const { host } = await bootHost(await agentArtifact('1.0.0', { busyMs: 2_500 }));
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
