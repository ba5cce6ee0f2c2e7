import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Ed25519PrivateKey } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import type { QueueUpdateInput } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { DaemonProcess, agentGet, createHost, destroyHost, installAgent, releaseTree, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';

// Each refusal must leave v1 running (the very same process: nothing was drained), nothing
// half-installed under releases/, staging/ empty, and the refusal's stable code reported to the
// manager with the command's nonce.

const OTHER_MACHINE = 'ab'.repeat(32);

describe('droverd refuses what it must not install', () => {
  let manager: FakeManager;
  let host: Host;
  let daemon: DaemonProcess;
  let v2: Buffer;
  let pid: number;
  let configBefore: Buffer;
  let treeBefore: string[];

  beforeAll(async () => {
    manager = await FakeManager.start();
    host = await createHost(manager);
    await installAgent(host, manager, '1.0.0', await agentArtifact('1.0.0'));
    v2 = await agentArtifact('2.0.0');
    daemon = new DaemonProcess(host);
    await waitForAgent(host, '1.0.0');
    await manager.waitFor(() => (manager.checkins.length > 0 ? true : undefined), 10_000, 'a first check-in');
    pid = ((await agentGet(host, '/info')) as { pid: number }).pid;
    configBefore = await readFile(host.agentConfigPath);
    treeBefore = await releaseTree(host);
  }, 30_000);

  afterAll(async () => {
    await destroyHost(host, [daemon]);
    await manager.close();
  });

  async function expectRefused(input: Partial<QueueUpdateInput>, code: string, outcome = 'rejected'): Promise<void> {
    const { commandId, nonce } = manager.queueUpdate({ version: '2.0.0', bytes: v2, ...input });
    const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 20_000);
    expect(result).toMatchObject({ outcome, detail: { code }, nonce });
    expect(manager.acked.has(commandId)).toBe(true);
    const health = (await agentGet(host, '/v1/system/health')) as { status: string; version: string };
    expect(health).toMatchObject({ status: 'healthy', version: '1.0.0' });
    expect(((await agentGet(host, '/info')) as { pid: number }).pid).toBe(pid);
    expect(await releaseTree(host)).toEqual(treeBefore);
    expect(await readdir(join(host.stateDir, 'staging'))).toEqual([]);
    expect(await readFile(host.agentConfigPath)).toEqual(configBefore);
  }

  it('a flipped byte in the artifact (ARTIFACT_DIGEST_MISMATCH)', async () => {
    await expectRefused({ behaviour: 'flip' }, 'ARTIFACT_DIGEST_MISMATCH');
  });

  it('a replayed nonce (NONCE_REPLAYED), even inside an otherwise valid command', async () => {
    // The nonce of a command refused after its nonce verified (and was spent) comes back in a new command.
    const first = manager.queueUpdate({ version: '2.0.0', bytes: v2, behaviour: 'flip' });
    await manager.waitForResult(first.commandId);
    await expectRefused({ nonceToken: first.nonce }, 'NONCE_REPLAYED');
  });

  it('a release signed by an untrusted key (RELEASE_UNTRUSTED_SIGNER)', async () => {
    await expectRefused({ signWith: [Ed25519PrivateKey.generate()] }, 'RELEASE_UNTRUSTED_SIGNER');
  });

  it('a release for another platform (RELEASE_WRONG_PLATFORM)', async () => {
    await expectRefused({ platform: 'linux-riscv64' }, 'RELEASE_WRONG_PLATFORM');
  });

  it('an expired release (RELEASE_EXPIRED)', async () => {
    await expectRefused({ createdAt: new Date(Date.now() - 2 * 86_400_000), expiresInSeconds: 86_400 }, 'RELEASE_EXPIRED');
  });

  it('a downgrade without a rollback nonce (NONCE_DOWNGRADE_REFUSED)', async () => {
    await expectRefused({ version: '0.9.0', bytes: await agentArtifact('0.9.0') }, 'NONCE_DOWNGRADE_REFUSED');
  });

  it('a signed rollback nonce does let a lower release through both version rules (control for the test above)', async () => {
    const { commandId } = manager.queueUpdate({ version: '0.9.0', bytes: await agentArtifact('0.9.0'), nonce: { rollback: true }, behaviour: 'flip' });
    const result = await manager.waitForResult(commandId);
    // It got past both version rules and was stopped only by the flipped byte.
    expect(result.detail.code).toBe('ARTIFACT_DIGEST_MISMATCH');
  });

  it('a stale rollback nonce, issued for a host running another version (NONCE_DOWNGRADE_REFUSED)', async () => {
    // A genuine, signed rollback from 1.5.0 to 0.9.0: this host runs 1.0.0, so it is not the rollback it was signed for.
    await expectRefused({ version: '0.9.0', bytes: await agentArtifact('0.9.0'), nonce: { rollback: true, fromVersion: '1.5.0' } }, 'NONCE_DOWNGRADE_REFUSED');
  });

  it('a release below the running version, even under an upgrade nonce (DOWNGRADE_REFUSED, the release rule)', async () => {
    await expectRefused({ version: '0.9.0', bytes: await agentArtifact('0.9.0'), nonce: { toVersion: '3.0.0' } }, 'DOWNGRADE_REFUSED');
  });

  it('a nonce issued to another agent (NONCE_WRONG_AGENT)', async () => {
    await expectRefused({ nonce: { agentId: 'agent-someone-else' } }, 'NONCE_WRONG_AGENT');
  });

  it('a nonce issued for another machine (NONCE_WRONG_MACHINE)', async () => {
    await expectRefused({ nonce: { machineId: OTHER_MACHINE } }, 'NONCE_WRONG_MACHINE');
  });

  it('a command whose nonce authorises another version than its release (COMMAND_MISMATCH)', async () => {
    // Both pieces are valid on their own: a signed 2.0.0 release, and a signed upgrade nonce to 3.0.0.
    await expectRefused({ nonce: { toVersion: '3.0.0' } }, 'COMMAND_MISMATCH');
  });

  it('a command whose nonce authorises another artifact than the command names (NONCE_MALFORMED)', async () => {
    // A signed nonce for a droverd update, put in an agent command with a valid agent release.
    await expectRefused({ nonce: { artifact: 'daemon' } }, 'NONCE_MALFORMED');
  });

  it('an expired nonce (NONCE_EXPIRED)', async () => {
    await expectRefused({ nonce: { now: new Date(Date.now() - 2 * 3_600_000), ttlSeconds: 60 } }, 'NONCE_EXPIRED');
  });

  it('a nonce signed by another key than the pinned manager key (NONCE_SIGNATURE_INVALID)', async () => {
    await expectRefused({ nonceToken: manager.foreignNonce('2.0.0') }, 'NONCE_SIGNATURE_INVALID');
  });

  it('a server that sends more than the signed size: reading stops at size + 1 (ARTIFACT_TOO_LARGE)', async () => {
    const before = manager.downloads.length;
    await expectRefused({ behaviour: 'oversize' }, 'ARTIFACT_TOO_LARGE');
    const sent = manager.downloads.slice(before).reduce((sum, d) => sum + d.bytesSent, 0);
    // The server writes until the client hangs up; socket buffers aside, the daemon hung up at once.
    expect(sent).toBeLessThan(v2.length + 16 * 1024 * 1024);
  });

  it('a server that stalls half-way: a timeout, retried once, then DOWNLOAD_STALLED', async () => {
    await expectRefused({ behaviour: 'stall' }, 'DOWNLOAD_STALLED', 'failed');
  });

  it('a download cut half-way resumes with Range, verifies and installs (last: it moves the host to v2)', async () => {
    const { commandId, path } = manager.queueUpdate({ version: '2.0.0', bytes: v2, behaviour: 'cut-once' });
    const result = await manager.waitForResult(commandId);
    expect(result.outcome).toBe('succeeded');
    const requests = manager.downloads.filter((d) => d.path === path);
    expect(requests.length).toBe(2);
    expect(requests[0]?.range).toBeUndefined();
    expect(requests[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(requests[1]?.status).toBe(206);
    expect(requests.every((d) => d.authorized)).toBe(true);
    await waitForAgent(host, '2.0.0');
    expect(await readFile(join(host.stateDir, 'releases', 'agent', '2.0.0', 'agent.cjs'))).toEqual(v2);
  }, 30_000);
});
