import { readFile, readdir, readlink, statfs, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { DaemonProcess, agentGet, createHost, destroyHost, installAgent, killHost, releaseTree, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { mountTmpfs, mountUnavailable, skipWithoutRoot } from '../helpers/root.js';

// A full disk under droverd's state directory, on real small file systems (tmpfs mounts, so root
// only): wherever the update's write is refused (the download, the staged release, the swap's
// symlink), the manager hears DISK_FULL naming the state directory, never a network failure, and
// v1 keeps running. Each case has its own manager, host and mounts, all taken down afterwards.

const MiB = 1024 * 1024;

interface Setup {
  manager: FakeManager;
  host: Host;
  daemon: DaemonProcess;
  /** v1's pid once droverd runs it. */
  pid: number;
  treeBefore: string[];
}

const unmounts: (() => void)[] = [];
const hosts: { host: Host; daemons: DaemonProcess[]; manager: FakeManager }[] = [];

afterEach(async () => {
  // Processes first (they hold files in the mounts), then the mounts, then the files.
  for (const { host, daemons } of hosts) await killHost(host, daemons);
  for (const unmount of unmounts.splice(0).reverse()) unmount();
  for (const { host, manager } of hosts.splice(0)) {
    await destroyHost(host);
    await manager.close();
  }
});

/** A host with v1 installed, `mount.before` run before the install and `mount.after` after it; then droverd starts. */
async function hostWithV1(mount: { before?: (host: Host) => Promise<void> | void; after?: (host: Host) => Promise<void> | void }): Promise<Setup> {
  const manager = await FakeManager.start();
  const host = await createHost(manager);
  const entry = { host, daemons: [] as DaemonProcess[], manager };
  hosts.push(entry);
  await mount.before?.(host);
  await installAgent(host, manager, '1.0.0', await agentArtifact('1.0.0'));
  await mount.after?.(host);
  const daemon = new DaemonProcess(host);
  entry.daemons.push(daemon);
  await waitForAgent(host, '1.0.0');
  await manager.waitFor(() => (manager.checkins.length > 0 ? true : undefined), 10_000, 'a first check-in');
  const pid = ((await agentGet(host, '/info')) as { pid: number }).pid;
  return { manager, host, daemon, pid, treeBefore: await releaseTree(host) };
}

/** A `before` hook: the host's state directory becomes a tmpfs of `size`, its trust.json copied in. */
function stateOnTmpfs(size: string): (host: Host) => Promise<void> {
  return async (host) => {
    const trust = await readFile(join(host.stateDir, 'trust.json'));
    unmounts.push(mountTmpfs(host.stateDir, `size=${size},mode=0700`));
    await writeFile(join(host.stateDir, 'trust.json'), trust);
  };
}

async function freeBytes(dir: string): Promise<number> {
  const stats = await statfs(dir);
  return stats.bavail * stats.bsize;
}

describe.skipIf(skipWithoutRoot('the full-disk tests', mountUnavailable()))('droverd on a full disk: DISK_FULL to the manager, v1 keeps running', () => {
  it('download: 40 MB into a 20 MB state directory is DISK_FULL, not retried, the space given back, v1 the same process', async () => {
    const { manager, host, pid, treeBefore } = await hostWithV1({ before: stateOnTmpfs('20m') });
    const freeBefore = await freeBytes(host.stateDir);
    const { commandId, nonce, path } = manager.queueUpdate({ version: '2.0.0', bytes: Buffer.alloc(40 * MiB, 0x2a) });
    const result = await manager.waitForResult(commandId);
    expect(result).toMatchObject({ outcome: 'failed', detail: { code: 'DISK_FULL' }, nonce });
    expect(result.detail.message).toContain(`Free space in ${host.stateDir}`);
    expect(result.detail.message).toContain('ENOSPC');
    // A full disk is not the network: one request, no resumption into the same full disk.
    expect(manager.downloads.filter((d) => d.path === path)).toHaveLength(1);
    expect(await agentGet(host, '/v1/system/health')).toMatchObject({ status: 'healthy', version: '1.0.0' });
    expect(((await agentGet(host, '/info')) as { pid: number }).pid).toBe(pid);
    expect(await releaseTree(host)).toEqual(treeBefore);
    expect(await readdir(join(host.stateDir, 'staging'))).toEqual([]);
    // The partial download was removed: the disk has its space back (the journal grew by a result).
    expect(await freeBytes(host.stateDir)).toBeGreaterThan(freeBefore - MiB);
  }, 60_000);

  it('stage: a download that fills staging/ to the byte leaves no room for the release record: DISK_FULL, staging/ emptied, v1 the same process', async () => {
    // The artifact is exactly the size of the file system it lands on: it downloads and verifies,
    // and staging's next write (the signed envelope beside it) finds no room.
    const size = 2 * MiB;
    const { manager, host, daemon, pid, treeBefore } = await hostWithV1({
      after: (h) => {
        unmounts.push(mountTmpfs(join(h.stateDir, 'staging'), `size=${size},mode=0700`));
      },
    });
    const { commandId, nonce } = manager.queueUpdate({ version: '2.0.0', bytes: Buffer.alloc(size, 0x2a) });
    const result = await manager.waitForResult(commandId);
    expect(result).toMatchObject({ outcome: 'failed', detail: { code: 'DISK_FULL' }, nonce });
    // The download itself fitted: it was staging that the disk refused.
    expect(daemon.lines.filter((l) => l.commandId === commandId && l.event === 'update.step').map((l) => l.step)).toContain('artifact_verified');
    expect(daemon.lines.some((l) => l.commandId === commandId && l.step === 'staged')).toBe(false);
    expect(result.detail.message).toContain(`Free space in ${host.stateDir}`);
    expect(((await agentGet(host, '/info')) as { pid: number }).pid).toBe(pid);
    expect(await agentGet(host, '/v1/system/health')).toMatchObject({ status: 'healthy', version: '1.0.0' });
    expect(await releaseTree(host)).toEqual(treeBefore);
    expect(await readdir(join(host.stateDir, 'staging'))).toEqual([]);
  }, 60_000);

  it('drain: under 1 MiB left once v2 is staged, the agent is not stopped: DISK_FULL, v1 the same process', async () => {
    const { manager, host, daemon, pid } = await hostWithV1({ before: stateOnTmpfs('20m') });
    // v2 fits, and leaves about 768 KiB: enough for every write up to the drain, not the 1 MiB droverd keeps.
    const size = (await freeBytes(host.stateDir)) - 768 * 1024;
    const { commandId, nonce } = manager.queueUpdate({ version: '2.0.0', bytes: Buffer.alloc(size, 0x2a) });
    const result = await manager.waitForResult(commandId);
    expect(result).toMatchObject({ outcome: 'failed', detail: { code: 'DISK_FULL' }, nonce });
    expect(result.detail.message).toContain('the agent was not stopped');
    expect(daemon.lines.find((l) => l.commandId === commandId && l.event === 'update.failed')).toMatchObject({ step: 'draining', code: 'DISK_FULL' });
    expect(((await agentGet(host, '/info')) as { pid: number }).pid).toBe(pid);
    expect(await agentGet(host, '/v1/system/health')).toMatchObject({ status: 'healthy', version: '1.0.0' });
  }, 60_000);

  it('swap: no room for the new current/ symlink: DISK_FULL reported with the rollback, v1 back and healthy', async () => {
    const { manager, host, daemon } = await hostWithV1({
      after: async (h) => {
        // current/ on a file system with room for its root and one entry: the agent's link, as it is.
        const current = join(h.stateDir, 'current');
        const target = await readlink(join(current, 'agent'));
        unmounts.push(mountTmpfs(current, 'size=1m,nr_inodes=2,mode=0755'));
        await symlink(target, join(current, 'agent'));
      },
    });
    const { commandId, nonce } = manager.queueUpdate({ version: '2.0.0', bytes: await agentArtifact('2.0.0') });
    const result = await manager.waitForResult(commandId);
    expect(result).toMatchObject({ outcome: 'rolled_back', detail: { code: 'DISK_FULL' }, nonce });
    expect(daemon.lines.find((l) => l.commandId === commandId && l.event === 'update.rollback')).toMatchObject({ step: 'swapped', code: 'DISK_FULL' });
    expect(result.detail.message).toContain(`Free space in ${host.stateDir}`);
    expect(result.detail.message).toContain(join(host.stateDir, 'current'));
    await waitForAgent(host, '1.0.0');
    expect(await readlink(join(host.stateDir, 'current', 'agent'))).toBe(join('..', 'releases', 'agent', '1.0.0'));
  }, 60_000);
});
