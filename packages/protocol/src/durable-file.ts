import { randomBytes } from 'node:crypto';
import { link, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

// Crash safety on disk rests on three system calls: write a private temp file and fsync it,
// rename(2) it over the target (atomic within one file system), then fsync the directory so the
// rename itself survives a power cut. A reader sees the old file or the whole new one, never half.
// Shared by the CLI, the manager and the daemon (docs/decisions/0003).

export interface AtomicWriteOptions {
  /** File mode, e.g. 0o600 for a secret; exact, whatever the umask (default 0o644). */
  mode?: number;
  /** Never replace an existing file: fails with the `EEXIST` error of link(2). */
  exclusive?: boolean;
}

/** fsyncs a directory, so the entries created, renamed or removed in it are durable. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A temp name beside `path`, private to this writer (same directory, so rename(2) is atomic). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Writes `data` to `path` atomically and durably: temp + fsync + rename + directory fsync. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o644;
  const temp = tempPathFor(path);
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(data);
    // open(2)'s mode is masked by the umask: set it exactly (0600 must mean 0600).
    await handle.chmod(mode);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    // link(2) fails with EEXIST atomically: unlike a check then rename(2), a file another writer
    // created in between (a key already handed out) is never replaced.
    if (options.exclusive === true) await link(temp, path);
    else await rename(temp, path);
  } finally {
    await rm(temp, { force: true });
  }
  await fsyncDirectory(dirname(path));
}
