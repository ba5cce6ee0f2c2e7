import { readlink, rename, rm, symlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDirectory, tempPathFor } from '@drover/protocol/internal';

// The swap: `current/<artifact>` is a symlink, replaced by rename(2) of a fresh symlink over it.
// rename is atomic, so at every instant the link names the old release or the new one, never
// nothing; the directory fsync makes the flip survive a power cut.

/** Points `link` at `target` atomically and durably (idempotent). */
export async function pointSymlink(link: string, target: string): Promise<void> {
  if ((await readSymlink(link)) === target) return;
  const temp = tempPathFor(link);
  await symlink(target, temp);
  try {
    await rename(temp, link);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await fsyncDirectory(dirname(link));
}

/** Where `link` points, or undefined when it does not exist. */
export async function readSymlink(link: string): Promise<string | undefined> {
  try {
    return await readlink(link);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EINVAL') return undefined;
    throw error;
  }
}

/** Removes a symlink durably (idempotent). */
export async function removeSymlink(link: string): Promise<void> {
  if ((await readSymlink(link)) === undefined) return;
  await rm(link, { force: true });
  await fsyncDirectory(dirname(link));
}
