import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ArtifactVerifier } from '@drover/protocol';
import type { BlobInfo, BlobStore, ByteRange } from './blob-store.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;

async function syncDir(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeAll(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

/**
 * The filesystem {@link BlobStore}: `<root>/sha256/<first 2 hex>/<sha256>`, each blob written to a
 * private temp file under `<root>/tmp`, verified, fsynced and renamed into place, so a reader never
 * sees a partial or unverified blob, even after a crash.
 *
 * @example
 * ```ts
 * const blobs = new FsBlobStore(join(dir, 'blobs'))
 * ```
 */
export class FsBlobStore implements BlobStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  #path(sha256: string): string {
    // The digest names a path: anything but 64 hex could climb out of the root.
    if (!SHA256_HEX.test(sha256)) throw new RangeError('a blob is named by 64 lowercase hex characters');
    return join(this.root, 'sha256', sha256.slice(0, 2), sha256);
  }

  async put(source: AsyncIterable<Uint8Array>, expect: BlobInfo): Promise<BlobInfo> {
    const target = this.#path(expect.sha256);
    const tmpDir = join(this.root, 'tmp');
    await mkdir(tmpDir, { recursive: true });
    const temp = join(tmpDir, `${randomBytes(12).toString('hex')}.part`);
    const handle = await open(temp, 'wx', 0o644);
    let moved = false;
    try {
      // endless data: the verifier throws as soon as more than `size` bytes arrive.
      const verifier = new ArtifactVerifier(expect);
      for await (const chunk of source) {
        verifier.update(chunk);
        await writeAll(handle, chunk);
      }
      verifier.finish();
      await handle.sync();
      await handle.close();
      const dir = join(this.root, 'sha256', expect.sha256.slice(0, 2));
      await mkdir(dir, { recursive: true });
      // The bytes verified are the bytes stored: the same temp file is renamed, never rewritten.
      await rename(temp, target);
      moved = true;
      await syncDir(dir);
      return { sha256: expect.sha256, size: expect.size };
    } finally {
      if (!moved) {
        await handle.close().catch(() => undefined);
        await rm(temp, { force: true });
      }
    }
  }

  async stat(sha256: string): Promise<BlobInfo | undefined> {
    try {
      const info = await stat(this.#path(sha256));
      return info.isFile() ? { sha256, size: info.size } : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async read(sha256: string, range?: ByteRange): Promise<Readable> {
    const path = this.#path(sha256);
    // Open first, so a missing blob rejects here rather than erroring the response stream later.
    const handle = await open(path, 'r');
    return createReadStream('', { fd: handle, ...(range === undefined ? {} : { start: range.start, end: range.end }) });
  }

  async delete(sha256: string): Promise<void> {
    await rm(this.#path(sha256), { force: true });
  }
}
