import { statfs } from 'node:fs/promises';
import { DaemonError } from '../errors.js';

// A write under the state directory that the disk refuses is not a network problem, nor a bug:
// it gets a code of its own and a message that says which directory needs attention, so the
// manager's operator frees space instead of checking the download URL (issue 18). Retrying the
// download cannot help either, so download.ts gives these up at once.

// disk exhaustion: the volume is full (ENOSPC) or the user's quota is spent (EDQUOT).
const FULL = new Set(['ENOSPC', 'EDQUOT']);
// A volume that takes no writes at all: mounted (or remounted by the kernel) read-only, or failing.
const BROKEN = new Set(['EROFS', 'EIO']);

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True for an error of the file system itself (ENOSPC, EDQUOT, EROFS, EIO), which no retry can cure. */
export function isDiskError(error: unknown): boolean {
  const code = errnoOf(error);
  return code !== undefined && (FULL.has(code) || BROKEN.has(code));
}

/**
 * The DaemonError a disk error means for droverd writing under `stateDir`: DISK_FULL for a full
 * volume or a spent quota, IO_ERROR for a read-only or failing one. Undefined for any other error.
 */
export function diskError(error: unknown, stateDir: string): DaemonError | undefined {
  if (error instanceof DaemonError || !isDiskError(error)) return undefined;
  const code = errnoOf(error) ?? '';
  // The file being written: `dest` for a symlink or a rename (their `path` is the source), else `path`.
  const { path, dest } = error as { path?: unknown; dest?: unknown };
  const file = typeof dest === 'string' ? dest : path;
  const where = `${code}${typeof file === 'string' ? ` writing ${file}` : ''}`;
  switch (code) {
    case 'ENOSPC':
      return new DaemonError('DISK_FULL', `The disk holding ${stateDir} is full (${where}). Free space in ${stateDir} or on its volume (or enlarge it), then send the update again.`, { cause: error });
    case 'EDQUOT':
      return new DaemonError('DISK_FULL', `The disk quota of ${stateDir} is used up (${where}). Free space in ${stateDir} or raise the quota, then send the update again.`, { cause: error });
    case 'EROFS':
      return new DaemonError('IO_ERROR', `${stateDir} is on a read-only file system (${where}). Remount it read-write (under systemd: StateDirectory= makes it writable), then send the update again.`, {
        cause: error,
      });
    default:
      return new DaemonError('IO_ERROR', `The disk holding ${stateDir} failed a write (${where}). Check the disk (dmesg, SMART) before sending the update again.`, { cause: error });
  }
}

/**
 * Throws DaemonError DISK_FULL unless at least `minBytes` are free to droverd on the file system of
 * `stateDir`: checked before the agent is stopped, so that what follows can always be written.
 */
export async function ensureRoom(stateDir: string, minBytes: number): Promise<void> {
  const stats = await statfs(stateDir);
  const free = stats.bavail * stats.bsize;
  if (free >= minBytes) return;
  throw new DaemonError(
    'DISK_FULL',
    `Only ${free} bytes are free in ${stateDir}, below the ${minBytes} droverd keeps before it stops the agent (the swap, the journal and a rollback must fit); the agent was not stopped. Free space in ${stateDir} or on its volume, then send the update again.`,
  );
}
