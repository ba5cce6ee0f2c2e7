import { chmod, lstat, mkdir, open } from 'node:fs/promises';
import { fsyncDirectory, writeFileAtomic } from '@drover/protocol/internal';

// The daemon's file helpers. Durable writes are protocol's one implementation (temp + fsync +
// rename + directory fsync, docs/decisions/0003): a reader of journal.json, credentials.json or
// installed.json sees the old file or the whole new one, never half.

export { writeFileAtomic };

/** fsync a directory, so the entries created, renamed or removed in it are durable. */
export const fsyncDir = fsyncDirectory;

/** Writes JSON (two-space indented, newline-terminated) atomically and durably. */
export async function writeJsonAtomic(path: string, value: unknown, options: { mode?: number } = {}): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, options);
}

/** Reads and parses a JSON file; undefined when it does not exist. Refuses files above `maxBytes`. */
export async function readJsonFile(path: string, maxBytes: number): Promise<unknown> {
  let text: Buffer;
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) throw new RangeError(`${path} is ${size} bytes, more than the ${maxBytes} allowed`);
      text = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return JSON.parse(text.toString('utf8')) as unknown;
}

/** True when `path` exists (any type; symlinks are not followed). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** mkdir -p with a mode for the directories it creates. */
export async function ensureDir(path: string, mode = 0o755): Promise<void> {
  await mkdir(path, { recursive: true, mode });
  // Explicitly: mkdir's mode passes through the umask (the unit's UMask=0077 would make 0755 a
  // 0700, which an agent running as its own user could not enter: decision 0030).
  await chmod(path, mode);
}
