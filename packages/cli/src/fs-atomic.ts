import { open, readFile } from 'node:fs/promises';
import { writeFileAtomic as writeDurably } from '@drover/protocol/internal';
import { CliError } from './errors.js';

export interface WriteOptions {
  /** File mode, e.g. 0o600 for a private key. */
  mode?: number;
  /** Refuse to replace an existing file (FILE_EXISTS). */
  exclusive?: boolean;
}

/** protocol's `writeFileAtomic`, with an existing file under `exclusive` reported as FILE_EXISTS. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: WriteOptions = {}): Promise<void> {
  try {
    await writeDurably(path, data, options);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CliError('FILE_EXISTS', `${path} already exists. Remove it or pass --force to replace it.`, { cause: error });
    }
    throw error;
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
