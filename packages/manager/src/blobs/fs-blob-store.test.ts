import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReleaseError } from '@drover/protocol';
import { expectRejection } from '../../../../test/helpers/expect-error.js';
import { chunks, readAll } from '../../../../test/helpers/streams.js';
import { FsBlobStore } from './fs-blob-store.js';

let root: string;
let blobs: FsBlobStore;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'drover-blobs-'));
  blobs = new FsBlobStore(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const digest = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('FsBlobStore', () => {
  it('stores verified bytes content-addressed and reads them back, whole or by range', async () => {
    const bytes = randomBytes(10_000);
    const info = await blobs.put(chunks(bytes), { size: bytes.length, sha256: digest(bytes) });
    expect(info).toEqual({ size: 10_000, sha256: digest(bytes) });
    expect(await blobs.stat(digest(bytes))).toEqual(info);
    expect((await readAll(await blobs.read(digest(bytes)))).equals(bytes)).toBe(true);
    expect((await readAll(await blobs.read(digest(bytes), { start: 100, end: 199 }))).equals(bytes.subarray(100, 200))).toBe(true);
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
  });

  it('stops reading as soon as more bytes than the manifest size arrive, and keeps nothing', async () => {
    const bytes = randomBytes(10_000);
    let pulled = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const chunk of chunks(bytes)) {
        pulled += 1;
        yield chunk;
      }
    }
    await expectRejection(blobs.put(counted(), { size: 2500, sha256: digest(bytes.subarray(0, 2500)) }), ReleaseError, 'ARTIFACT_TOO_LARGE');
    expect(pulled).toBe(3);
    expect(await blobs.stat(digest(bytes.subarray(0, 2500)))).toBeUndefined();
    expect(await readdir(join(root, 'tmp'))).toEqual([]);
  });

  it('refuses short and modified bytes', async () => {
    const bytes = randomBytes(3000);
    await expectRejection(blobs.put(chunks(bytes.subarray(0, 2999)), { size: 3000, sha256: digest(bytes) }), ReleaseError, 'ARTIFACT_TOO_SHORT');
    const flipped = Buffer.from(bytes);
    flipped[1234] = (flipped[1234] ?? 0) ^ 1;
    await expectRejection(blobs.put(chunks(flipped), { size: 3000, sha256: digest(bytes) }), ReleaseError, 'ARTIFACT_DIGEST_MISMATCH');
    expect(await blobs.stat(digest(bytes))).toBeUndefined();
  });

  it('names blobs only by a SHA-256, so no name can leave the root', async () => {
    await expect(blobs.stat('../../etc/passwd')).rejects.toThrow(RangeError);
  });
});
