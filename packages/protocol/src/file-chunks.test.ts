import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { ReleaseError } from './errors.js';
import { readFileChunks } from './file-chunks.js';
import { verifyArtifactStream } from './release-manifest.js';

let dir: string;
const bytes = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
const file = { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-chunks-'));
  await writeFile(join(dir, 'exact.bin'), bytes);
  await writeFile(join(dir, 'long.bin'), Buffer.concat([bytes, Buffer.alloc(50_000)]));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readFileChunks', () => {
  it('verifies a file on disk through a small reused buffer', async () => {
    await expect(verifyArtifactStream(readFileChunks(join(dir, 'exact.bin'), { limit: file.size + 1, chunkBytes: 333 }), file)).resolves.toEqual({ bytes: file.size });
  });

  it('reads no more than the limit from a longer file', async () => {
    let read = 0;
    for await (const chunk of readFileChunks(join(dir, 'long.bin'), { limit: file.size + 1, chunkBytes: 4096 })) read += chunk.length;
    expect(read).toBe(file.size + 1);
    await expectRejection(verifyArtifactStream(readFileChunks(join(dir, 'long.bin'), { limit: file.size + 1 }), file), ReleaseError, 'ARTIFACT_TOO_LARGE');
  });

  it('starts at an offset, for resumed downloads', async () => {
    const parts: Buffer[] = [];
    for await (const chunk of readFileChunks(join(dir, 'exact.bin'), { start: 9_000 })) parts.push(Buffer.from(chunk));
    expect(Buffer.concat(parts).equals(bytes.subarray(9_000))).toBe(true);
  });
});
