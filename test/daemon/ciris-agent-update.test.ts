import { readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { DaemonProcess, agentGet, createHost, destroyHost, droverd, installAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';

// droverd updating an agent that answers in the real CIRIS agent's shapes (test/fixtures/
// ciris-agent.cjs, CIRISAgent 2bd11fcb): its health inside {data, metadata}, no `busy`,
// `initializing`, then `healthy` in WAKEUP, then WORK; its shutdown authorised by
// `Bearer service:<token>` and answered in its envelope (decision 0035). Real processes: the built
// droverd, the fixture packaged as the artifact, a test peer speaking the manager's protocol.

const fixture = new URL('../fixtures/ciris-agent.cjs', import.meta.url);

/** The fixture as a release of `version`, with what it reports baked in (droverd gives every release the same environment). */
async function cirisArtifact(version: string, options: { status?: string } = {}): Promise<Buffer> {
  const env = [`process.env.CIRIS_VERSION = ${JSON.stringify(version)};`, options.status === undefined ? '' : `process.env.CIRIS_FIXTURE_STATUS = ${JSON.stringify(options.status)};`].join('');
  return Buffer.from(`${env}\n${await readFile(fixture, 'utf8')}`);
}

interface CirisHealth {
  data: { status: string; version: string; cognitive_state: string | null };
}

/** Waits until the fixture answers healthy in WORK at `version`. */
async function waitForCirisAgent(host: Host, version: string, timeoutMs = 20_000): Promise<CirisHealth> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = (await agentGet(host, '/v1/system/health')) as CirisHealth | undefined;
    if (health?.data.status === 'healthy' && health.data.cognitive_state === 'WORK' && health.data.version === version) return health;
    if (Date.now() > deadline) throw new Error(`The CIRIS fixture is not healthy at ${version} after ${timeoutMs} ms (last: ${JSON.stringify(health)})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('droverd updates an agent answering in the real CIRIS shapes', () => {
  const hosts: { host: Host; daemons: DaemonProcess[]; manager: FakeManager }[] = [];

  afterAll(async () => {
    for (const entry of hosts) {
      await destroyHost(entry.host, entry.daemons);
      await entry.manager.close();
    }
  });

  async function bootHost(): Promise<{ host: Host; manager: FakeManager; daemon: DaemonProcess }> {
    const manager = await FakeManager.start();
    const host = await createHost(manager);
    await installAgent(host, manager, '2.9.33-stable', await cirisArtifact('2.9.33-stable'));
    const entry = { host, daemons: [] as DaemonProcess[], manager };
    hosts.push(entry);
    const daemon = new DaemonProcess(host);
    entry.daemons.push(daemon);
    await waitForCirisAgent(host, '2.9.33-stable');
    await manager.waitFor(() => (manager.checkins.length > 0 ? true : undefined), 10_000, 'a first check-in');
    return { host, manager, daemon };
  }

  it('takes 2.9.33-stable to 2.9.34-stable: drains it through its shutdown route, and the health gate passes once it is in WORK', async () => {
    const { host, manager, daemon } = await bootHost();
    // Read as healthy in the check-ins: the envelope is read, `busy` absent is not busy.
    await manager.waitFor(() => (manager.checkins.at(-1)?.body.health.status === 'healthy' ? true : undefined), 15_000, 'a healthy check-in');
    expect(manager.checkins.at(-1)?.body.health).toMatchObject({ status: 'healthy', version: '2.9.33-stable', busy: false });
    const { commandId, nonce } = manager.queueUpdate({ version: '2.9.34-stable', bytes: await cirisArtifact('2.9.34-stable') });
    const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 30_000);
    expect(result).toMatchObject({ outcome: 'succeeded', nonce });
    await waitForCirisAgent(host, '2.9.34-stable');
    // Drained by its shutdown route (200 in the envelope, then it exited): never SIGTERMed for want of an answer.
    expect(daemon.lines.filter((l) => l.event === 'agent.unreachable' || l.event === 'agent.drain_timeout')).toEqual([]);
    const status = JSON.parse((await droverd(host, ['status', '--json'])).stdout) as unknown;
    expect(status).toMatchObject({ agent: { current: '2.9.34-stable', previous: '2.9.33-stable' }, lastResult: { outcome: 'succeeded', commandId } });
  }, 60_000);

  it('rolls back a version that stays initializing past the health timeout (HEALTH_CHECK_FAILED), back on the old version', async () => {
    const { host, manager } = await bootHost();
    const { commandId, nonce } = manager.queueUpdate({ version: '2.9.34-stable', bytes: await cirisArtifact('2.9.34-stable', { status: 'initializing' }) });
    const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 30_000);
    expect(result).toMatchObject({ outcome: 'rolled_back', detail: { code: 'HEALTH_CHECK_FAILED' }, nonce });
    await waitForCirisAgent(host, '2.9.33-stable');
    const status = JSON.parse((await droverd(host, ['status', '--json'])).stdout) as { agent: { current: string }; lastResult: { outcome: string } };
    expect(status).toMatchObject({ agent: { current: '2.9.33-stable' }, lastResult: { outcome: 'rolled_back' } });
  }, 60_000);
});
