import type * as fsPromises from 'node:fs/promises';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { CliError } from './errors.js';
import { writeFileAtomic } from './fs-atomic.js';

// A hook run just before the temp file is committed to its final name (by rename or link): the
// moment another writer can win a race against the check for an existing file.
const race: { beforeCommit?: (target: string) => Promise<void> } = {};

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof fsPromises>();
  return {
    ...actual,
    rename: vi.fn(async (from: string, to: string) => {
      await race.beforeCommit?.(to);
      return actual.rename(from, to);
    }),
    link: vi.fn(async (from: string, to: string) => {
      await race.beforeCommit?.(to);
      return actual.link(from, to);
    }),
  };
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-fs-atomic-'));
});
afterEach(async () => {
  delete race.beforeCommit;
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('writes the whole file with the exact mode and leaves no temp file', async () => {
    const path = join(dir, 'k.key');
    await writeFileAtomic(path, 'secret', { mode: 0o600, exclusive: true });
    expect(await readFile(path, 'utf8')).toBe('secret');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['k.key']);
  });

  it('replaces an existing file unless exclusive', async () => {
    const path = join(dir, 'f');
    await writeFile(path, 'old');
    await writeFileAtomic(path, 'new');
    expect(await readFile(path, 'utf8')).toBe('new');
    await expectRejection(writeFileAtomic(path, 'newer', { exclusive: true }), CliError, 'FILE_EXISTS');
    expect(await readFile(path, 'utf8')).toBe('new');
    expect(await readdir(dir)).toEqual(['f']);
  });

  // A key written by another process between the existence check and the commit (two `drover
  // keygen` runs, say) must not be silently replaced: that key may already be in a trust policy.
  it('exclusive: a file created by someone else just before the commit is kept, FILE_EXISTS', async () => {
    const path = join(dir, 'release.key');
    race.beforeCommit = async (target) => {
      if (target === path) await writeFile(path, 'the other writer', { flag: 'wx' });
    };
    await expectRejection(writeFileAtomic(path, 'mine', { mode: 0o600, exclusive: true }), CliError, 'FILE_EXISTS');
    expect(await readFile(path, 'utf8')).toBe('the other writer');
    expect(await readdir(dir)).toEqual(['release.key']);
  });
});
