// A fingerprint of a directory tree, to assert that a refused command left it byte-identical: every
// path (relative, sorted) with its type, mode, owner and, for a file, the SHA-256 of its content,
// for a symlink its target.
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** One line per entry under `root` (root itself included as "."): `path type mode uid:gid content`. */
export async function treeFingerprint(root: string): Promise<string[]> {
  const lines: string[] = [];
  const visit = async (relative: string): Promise<void> => {
    const path = relative === '.' ? root : join(root, relative);
    const info = await lstat(path);
    const mode = (info.mode & 0o7777).toString(8).padStart(4, '0');
    const owner = `${String(info.uid)}:${String(info.gid)}`;
    if (info.isSymbolicLink()) lines.push(`${relative} link ${mode} ${owner} -> ${await readlink(path)}`);
    else if (info.isFile()) lines.push(`${relative} file ${mode} ${owner} sha256:${createHash('sha256').update(await readFile(path)).digest('hex')}`);
    else if (info.isDirectory()) {
      lines.push(`${relative} dir ${mode} ${owner}`);
      for (const name of (await readdir(path)).sort()) await visit(relative === '.' ? name : join(relative, name));
    } else lines.push(`${relative} other ${mode} ${owner}`);
  };
  await visit('.');
  return lines;
}
