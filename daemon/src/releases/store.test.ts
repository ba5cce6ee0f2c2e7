import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { expectError, expectRejection } from '../../../test/helpers/expect-error.js';
import { DaemonError } from '../errors.js';
import { resolvePaths } from '../host/paths.js';
import type { DaemonPaths } from '../host/paths.js';
import { ReleaseStore, checkNames } from './store.js';
import { pointSymlink, readSymlink } from './swap.js';

const manifestOf = (version: string, content: Buffer): { version: string; file: { name: string; size: number; sha256: string } } => ({
  version,
  file: { name: 'agent.cjs', size: content.length, sha256: createHash('sha256').update(content).digest('hex') },
});

describe('releases/, current/ and previous/', () => {
  let dir: string;
  let paths: DaemonPaths;
  let store: ReleaseStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-store-'));
    paths = resolvePaths({ env: {}, stateDir: dir });
    store = new ReleaseStore(paths);
    await store.ensureLayout();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function install(version: string, content = Buffer.from(`agent ${version}`)): Promise<void> {
    const part = store.partPath(`cmd-${version}`);
    await writeFile(part, content);
    await store.install({ commandId: `cmd-${version}`, artifact: 'agent', manifest: manifestOf(version, content), envelope: undefined, source: part });
  }

  it('installs by moving the verified file itself (same inode), read-only, from an assembly in staging/', async () => {
    const content = Buffer.from('the verified bytes');
    const part = store.partPath('cmd-1');
    await writeFile(part, content);
    const inode = (await stat(part)).ino;
    const installed = await store.install({ commandId: 'cmd-1', artifact: 'agent', manifest: manifestOf('1.0.0', content), envelope: undefined, source: part });
    expect((await stat(installed.entry)).ino).toBe(inode);
    expect((await stat(installed.entry)).mode & 0o777).toBe(0o444);
    expect(await readFile(installed.entry)).toEqual(content);
    expect(await readdir(paths.staging)).toEqual([]);
    expect(installed).toMatchObject({ version: '1.0.0', node: true, signed: false });
  });

  it('never overwrites an installed release with other bytes (RELEASE_CONFLICT); the same bytes again are fine', async () => {
    await install('1.0.0');
    await install('1.0.0'); // idempotent
    const part = store.partPath('cmd-x');
    await writeFile(part, 'different');
    await expectRejection(store.install({ commandId: 'cmd-x', artifact: 'agent', manifest: manifestOf('1.0.0', Buffer.from('different')), envelope: undefined, source: part }), DaemonError, 'RELEASE_CONFLICT');
  });

  it('flips current/ atomically and keeps previous/', async () => {
    await install('1.0.0');
    await install('2.0.0');
    await store.activate('agent', '1.0.0', null);
    await store.activate('agent', '2.0.0', '1.0.0');
    expect(await store.currentVersion('agent')).toBe('2.0.0');
    expect(await store.previousVersion('agent')).toBe('1.0.0');
    expect(await readlink(join(paths.current, 'agent'))).toBe('../releases/agent/2.0.0');
    expect((await lstat(join(paths.current, 'agent'))).isSymbolicLink()).toBe(true);
    await store.pointCurrent('agent', '1.0.0');
    expect((await store.current('agent'))?.version).toBe('1.0.0');
    expect((await readdir(paths.current)).filter((name) => name.includes('.tmp'))).toEqual([]);
  });

  it('pointSymlink is idempotent and replaces, never removes first', async () => {
    await mkdir(join(dir, 'links'));
    const link = join(dir, 'links', 'x');
    await pointSymlink(link, 'a');
    await pointSymlink(link, 'a');
    await pointSymlink(link, 'b');
    expect(await readSymlink(link)).toBe('b');
    expect(await readdir(join(dir, 'links'))).toEqual(['x']);
  });

  it('keeps the newest N releases and never the current or the previous one', async () => {
    // Installed one second apart on a fake clock (only Date is faked: the file system runs as usual).
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      for (const [i, version] of ['1.0.0', '2.0.0', '3.0.0', '4.0.0', '5.0.0'].entries()) {
        vi.setSystemTime(Date.UTC(2026, 0, 1, 0, 0, i));
        await install(version);
      }
    } finally {
      vi.useRealTimers();
    }
    await store.activate('agent', '1.0.0', null);
    await store.activate('agent', '5.0.0', '1.0.0');
    const removed = await store.prune('agent', 3);
    expect(removed).toEqual(['2.0.0', '3.0.0']);
    expect((await store.list('agent')).map((r) => r.version).sort()).toEqual(['1.0.0', '4.0.0', '5.0.0']);
  });

  it('refuses names that could escape the release directory', () => {
    expectError(() => { checkNames('../../etc', 'agent.cjs'); }, DaemonError, 'COMMAND_INVALID');
    expectError(() => { checkNames('1.0.0', '..'); }, DaemonError, 'COMMAND_INVALID');
    expectError(() => { checkNames('1.0.0', 'installed.json'); }, DaemonError, 'COMMAND_INVALID');
    expect(() => { checkNames('v1.2.3-rc.1+build.5', 'agent.cjs'); }).not.toThrow();
  });

  it('cleans staging/ of everything but the update in progress', async () => {
    await writeFile(store.partPath('old'), 'x');
    await mkdir(join(paths.staging, 'old.d'));
    await writeFile(store.partPath('keep'), 'y');
    await store.cleanStaging('keep');
    expect(await readdir(paths.staging)).toEqual(['keep.part']);
  });
});
