import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { DaemonError } from '../errors.js';
import { diskError, ensureRoom, isDiskError } from './disk-errors.js';

const errno = (code: string, path?: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: failed`), { code, ...(path === undefined ? {} : { path }) });

describe('diskError', () => {
  it('maps a full disk or a spent quota to DISK_FULL, naming the state directory to free and the file it was writing', () => {
    for (const code of ['ENOSPC', 'EDQUOT']) {
      const cause = errno(code, '/var/lib/drover/staging/cmd-1.part');
      const error = diskError(cause, '/var/lib/drover');
      expect(error).toBeInstanceOf(DaemonError);
      expect(error?.code).toBe('DISK_FULL');
      expect(error?.cause).toBe(cause);
      expect(error?.message).toContain(`Free space in /var/lib/drover`);
      expect(error?.message).toContain(`${code} writing /var/lib/drover/staging/cmd-1.part`);
      expect(error?.message).not.toMatch(/network/i);
    }
  });

  it('names the file written, not the source, for a symlink or a rename', () => {
    const cause = Object.assign(errno('ENOSPC', '../releases/agent/2.0.0'), { dest: '/s/current/.agent.tmp' });
    expect(diskError(cause, '/s')?.message).toContain('ENOSPC writing /s/current/.agent.tmp');
  });

  it('maps a read-only or failing disk to IO_ERROR, saying what to check', () => {
    expect(diskError(errno('EROFS'), '/s')).toMatchObject({ code: 'IO_ERROR', message: expect.stringContaining('read-only') as unknown });
    expect(diskError(errno('EIO'), '/s')).toMatchObject({ code: 'IO_ERROR', message: expect.stringContaining('Check the disk') as unknown });
  });

  it('leaves every other error alone: network errors, droverd\'s own, anything without an errno', () => {
    for (const error of [errno('ECONNRESET'), errno('ENOENT'), new DaemonError('DOWNLOAD_FAILED', 'x'), new Error('plain'), undefined, null, 'ENOSPC']) {
      expect(diskError(error, '/s')).toBeUndefined();
    }
    expect(isDiskError(errno('ENOSPC'))).toBe(true);
    expect(isDiskError(errno('EPIPE'))).toBe(false);
  });
});

describe('ensureRoom', () => {
  it('passes with the room asked for, and is DISK_FULL without it, naming the directory', async () => {
    await ensureRoom(tmpdir(), 0);
    await expectRejection(ensureRoom(tmpdir(), Number.MAX_SAFE_INTEGER), DaemonError, 'DISK_FULL');
    await expect(ensureRoom(tmpdir(), Number.MAX_SAFE_INTEGER)).rejects.toThrow(`Free space in ${tmpdir()}`);
  });
});
