import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CliError } from './errors.js';

export interface WriteOptions {
  /** File mode, e.g. 0o600 for a private key. */
  mode?: number;
  /** Refuse to replace an existing file (FILE_EXISTS). */
  exclusive?: boolean;
}

/**
 * Writes a file so that a reader sees either the old content or the whole new content, never a
 * half-written file: a private temp file in the same directory, fsync, rename(2), fsync the directory.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: WriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', options.mode ?? 0o644);
  try {
    await handle.writeFile(data);
    // The mode given to open(2) is masked by the umask; set it exactly.
    if (options.mode !== undefined) await handle.chmod(options.mode);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  if (options.exclusive === true) {
    // link(2) fails with EEXIST if the name exists, atomically: unlike a check then rename(2), a
    // file another writer created in between (a key already handed out) is never replaced.
    try {
      await link(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new CliError('FILE_EXISTS', `${path} already exists. Remove it or pass --force to replace it.`, { cause: error });
      }
      throw error;
    } finally {
      await rm(temp, { force: true });
    }
  } else {
    await rename(temp, path);
  }
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await (await open(path, 'r')).close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** Reads a file named on the command line, with a FILE_NOT_FOUND error that names the option. */
export async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CliError('FILE_NOT_FOUND', `${what} ${path} does not exist. Check the path.`, { cause: error });
    }
    if ((error as NodeJS.ErrnoException).code === 'EISDIR') {
      throw new CliError('USAGE_ERROR', `${what} ${path} is a directory; pass a file.`, { cause: error });
    }
    throw error;
  }
}
