import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArtifactVerifier, ReleaseError } from '@drover/protocol';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { PartWriter } from './part-writer.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** `bytes` cut at `cuts` (offsets, any order, duplicates allowed) into fresh chunks. */
function chunked(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const to of [...at, bytes.length]) {
    chunks.push(Buffer.from(bytes.subarray(from, to)));
    from = to;
  }
  return chunks;
}

describe('PartWriter', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-part-writer-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes `chunks` as a download would, clobbering each chunk once the writer returned (a network buffer reused). */
  async function writeAll(path: string, chunks: Buffer[], file: { size: number; sha256: string }, options: { bufferBytes: number; syncEveryBytes: number; idle: boolean[] }): Promise<ArtifactVerifier> {
    const verifier = new ArtifactVerifier(file);
    const handle = await open(path, 'w', 0o600);
    try {
      const writer = new PartWriter(handle, verifier, options);
      for (const [i, chunk] of chunks.entries()) {
        await writer.write(chunk);
        chunk.fill(0x5a);
        if (options.idle[i % Math.max(1, options.idle.length)] === true) writer.flushIfIdle();
      }
      await writer.finish(true);
    } finally {
      await handle.close();
    }
    return verifier;
  }

  it('writes exactly the bytes it hashed, however they are chunked and buffered, even when the caller reuses its buffers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 0, maxLength: 4096 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.array(fc.boolean(), { maxLength: 8 }),
        async (raw, cuts, bufferBytes, syncEveryBytes, idle) => {
          const bytes = Buffer.from(raw);
          const path = join(dir, 'p.part');
          const verifier = await writeAll(path, chunked(bytes, cuts), { size: bytes.length, sha256: sha256(bytes) }, { bufferBytes, syncEveryBytes, idle });
          expect(verifier.received).toBe(bytes.length);
          verifier.finish(); // size and digest match
          expect(await readFile(path)).toEqual(bytes);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('any byte flipped in what arrives is refused (ARTIFACT_DIGEST_MISMATCH), and the file holds the bytes that were hashed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 4096 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.integer({ min: 1, max: 300 }),
        async (raw, where, mask, cuts, bufferBytes) => {
          const signed = Buffer.from(raw);
          const arrived = Buffer.from(signed);
          const at = where % arrived.length;
          arrived[at] = (arrived[at] ?? 0) ^ mask;
          const path = join(dir, 'p.part');
          const verifier = await writeAll(path, chunked(arrived, cuts), { size: signed.length, sha256: sha256(signed) }, { bufferBytes, syncEveryBytes: 97, idle: [true, false] });
          expect(() => {
            verifier.finish();
          }).toThrow(expect.objectContaining({ code: 'ARTIFACT_DIGEST_MISMATCH' }) as Error);
          expect(await readFile(path)).toEqual(arrived);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('refuses a byte past the signed size before it is written (ARTIFACT_TOO_LARGE)', async () => {
    const signed = Buffer.from('0123456789');
    const path = join(dir, 'p.part');
    const handle = await open(path, 'w', 0o600);
    const writer = new PartWriter(handle, new ArtifactVerifier({ size: signed.length, sha256: sha256(signed) }), { bufferBytes: 4, syncEveryBytes: 4 });
    try {
      await writer.write(signed.subarray(0, 6));
      await expectRejection(writer.write(Buffer.from('6789X')), ReleaseError, 'ARTIFACT_TOO_LARGE');
      await writer.finish(false);
    } finally {
      await handle.close();
    }
    const written = await readFile(path);
    expect(written.length).toBeLessThanOrEqual(signed.length);
    expect(signed.subarray(0, written.length)).toEqual(written);
  });

  it.skipIf(!existsSync('/dev/full'))('reports a write the disk refused (ENOSPC) from finish, not as an unhandled rejection', async () => {
    const handle = await open('/dev/full', 'a');
    const bytes = Buffer.alloc(100, 1);
    const writer = new PartWriter(handle, new ArtifactVerifier({ size: bytes.length, sha256: sha256(bytes) }), { bufferBytes: 16, syncEveryBytes: 1024 });
    try {
      // The first full buffer's write fails in the background; the next call or finish reports it.
      await expect((async () => {
        await writer.write(bytes);
        await writer.finish(true);
      })()).rejects.toMatchObject({ code: 'ENOSPC' });
      await writer.settle();
    } finally {
      await handle.close();
    }
  });
});
