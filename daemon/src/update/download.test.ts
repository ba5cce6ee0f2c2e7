import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ReleaseError } from '@drover/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { limits } from '../config.js';
import { DaemonError } from '../errors.js';
import { downloadArtifact, partIdentity, samePart } from './download.js';
import type { DownloadInput } from './download.js';
import { HttpClient } from '@drover/http';
import { silentLogger } from '../logger.js';

const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251));
const file = { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };

describe('downloadArtifact', () => {
  let dir: string;
  let server: Server | undefined;
  let http: HttpClient;
  const ranges: (string | undefined)[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-download-'));
    http = new HttpClient({ userAgent: 'droverd/test', proxy: false });
    ranges.length = 0;
  });
  afterEach(async () => {
    await http.close();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => {
      if (server === undefined) resolve();
      else server.close(() => {
        resolve();
      });
    });
    await rm(dir, { recursive: true, force: true });
  });

  async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<URL> {
    server = createServer((req, res) => {
      ranges.push(req.headers.range);
      handler(req, res);
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    return new URL(`http://127.0.0.1:${address.port}/artifact`);
  }

  const input = (url: URL, extra: Partial<DownloadInput> = {}): DownloadInput => ({
    http,
    url,
    headers: {},
    partPath: join(dir, 'x.part'),
    file,
    stallTimeoutMs: 500,
    maxAttempts: 2,
    maxDurationMs: 10_000,
    signal: new AbortController().signal,
    logger: silentLogger,
    random: () => 0,
    ...extra,
  });

  /** Sends the first `n` bytes, then cuts the connection once the client has them in its .part file: it must resume from exactly there. */
  const cutAfter = (res: ServerResponse, n: number, body: Buffer = bytes): void => {
    res.write(body.subarray(0, n), () => {
      void (async () => {
        while (!res.destroyed && (await stat(join(dir, 'x.part')).catch(() => undefined))?.size !== n) await new Promise((resolve) => setTimeout(resolve, 5));
        res.socket?.destroy();
      })();
    });
  };

  const ranged = (req: IncomingMessage, res: ServerResponse): void => {
    const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
    if (start > 0) res.writeHead(206, { 'content-length': String(bytes.length - start), 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` });
    else res.writeHead(200, { 'content-length': String(bytes.length) });
    res.end(bytes.subarray(start));
  };

  it('downloads, hashing as it streams, into the .part file', async () => {
    const url = await serve(ranged);
    const outcome = await downloadArtifact(input(url));
    expect(outcome).toMatchObject({ bytes: bytes.length, attempts: 1, resumedFrom: [] });
    expect(await readFile(join(dir, 'x.part'))).toEqual(bytes);
  });

  it('resumes a .part left by an earlier run with Range, and verifies the whole', async () => {
    await writeFile(join(dir, 'x.part'), bytes.subarray(0, 123_456));
    const url = await serve(ranged);
    const outcome = await downloadArtifact(input(url));
    expect(outcome.resumedFrom).toEqual([123_456]);
    expect(ranges).toEqual(['bytes=123456-']);
    expect(await readFile(join(dir, 'x.part'))).toEqual(bytes);
  });

  it('starts over when the server ignores the Range (200)', async () => {
    await writeFile(join(dir, 'x.part'), bytes.subarray(0, 1000));
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(bytes.length) }).end(bytes);
    });
    await downloadArtifact(input(url));
    expect(await readFile(join(dir, 'x.part'))).toEqual(bytes);
  });

  it('resumes after a connection cut half-way', async () => {
    let first = true;
    const url = await serve((req, res) => {
      if (first) {
        first = false;
        res.writeHead(200, { 'content-length': String(bytes.length) });
        cutAfter(res, 100_000);
        return;
      }
      ranged(req, res);
    });
    const outcome = await downloadArtifact(input(url));
    expect(outcome.attempts).toBe(2);
    expect(outcome.resumedFrom).toEqual([100_000]);
    expect(await readFile(join(dir, 'x.part'))).toEqual(bytes);
  });

  it('stops at size + 1 when a server streams more than the signed size, and removes the .part (ARTIFACT_TOO_LARGE)', async () => {
    let sent = 0;
    const url = await serve((_req, res) => {
      res.writeHead(200); // chunked: no length announced
      const chunk = Buffer.alloc(16 * 1024, 1);
      const pump = (): void => {
        while (!res.destroyed && sent < 64 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    await expectRejection(downloadArtifact(input(url)), ReleaseError, 'ARTIFACT_TOO_LARGE');
    await expect(stat(join(dir, 'x.part'))).rejects.toThrow();
    expect(sent).toBeLessThan(16 * 1024 * 1024);
  });

  it('refuses a declared Content-Length above the size before reading (ARTIFACT_TOO_LARGE)', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(bytes.length + 1) }).end(Buffer.concat([bytes, Buffer.from([0])]));
    });
    await expectRejection(downloadArtifact(input(url)), ReleaseError, 'ARTIFACT_TOO_LARGE');
  });

  it('refuses other bytes than the signed ones and removes the .part (ARTIFACT_DIGEST_MISMATCH)', async () => {
    const flipped = Buffer.from(bytes);
    flipped[10] = (flipped[10] ?? 0) ^ 1;
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(flipped.length) }).end(flipped);
    });
    await expectRejection(downloadArtifact(input(url)), ReleaseError, 'ARTIFACT_DIGEST_MISMATCH');
    await expect(stat(join(dir, 'x.part'))).rejects.toThrow();
  });

  it('gives up on a server that stalls, keeping the .part to resume (DOWNLOAD_STALLED)', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(bytes.length) });
      res.write(bytes.subarray(0, 50_000));
    });
    const started = Date.now();
    await expectRejection(downloadArtifact(input(url)), DaemonError, 'DOWNLOAD_STALLED');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await stat(join(dir, 'x.part'))).size).toBe(50_000);
  });

  it('keeps its overall deadline through garbage collections: a 1-byte-per-400 ms trickle ends at the deadline (DOWNLOAD_STALLED)', async () => {
    // Node 20 could collect a deadline made by AbortSignal.any([signal, AbortSignal.timeout(ms)])
    // and never fire it (issue 18); collections are forced all through the download here.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(bytes.length) });
      let sent = 0;
      const timer = setInterval(() => {
        if (res.destroyed) clearInterval(timer);
        else res.write(bytes.subarray(sent, ++sent));
      }, 400);
      res.once('close', () => {
        clearInterval(timer);
      });
    });
    const maxDurationMs = 2_000;
    const collector = setInterval(gc, 50);
    const started = Date.now();
    try {
      // Bytes keep coming within the stall timeout: only the overall deadline can end this.
      await expectRejection(downloadArtifact(input(url, { maxDurationMs, stallTimeoutMs: 5_000, maxAttempts: 1 })), DaemonError, 'DOWNLOAD_STALLED');
    } finally {
      clearInterval(collector);
    }
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(maxDurationMs - 50);
    expect(elapsed).toBeLessThan(maxDurationMs + 750);
    expect((await stat(join(dir, 'x.part'))).size).toBeGreaterThan(0); // it was trickling, not stalled
  });

  it.skipIf(!existsSync('/dev/full'))('gives up at once, without a retry, when the disk refuses the .part (ENOSPC is not a network error)', async () => {
    const url = await serve(ranged);
    // /dev/full takes the open and fails every write with ENOSPC, as a full disk does.
    await expect(downloadArtifact(input(url, { partPath: '/dev/full', maxAttempts: 3 }))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(ranges).toEqual([undefined]);
  });

  // Issue 16: the download is verified as it is written, with no second pass over the file. These
  // pin down that the digest covers exactly the bytes the .part holds: across the two write buffers,
  // the background fdatasyncs and a resume.
  describe('verifies exactly the bytes it writes', () => {
    // Past both write buffers and the first background fdatasync, and not a multiple of either.
    const big = Buffer.from(Array.from({ length: limits.downloadSyncEveryBytes + 2 * limits.downloadWriteChunkBytes + 12_345 }, (_, i) => (i * 31 + (i >> 13)) % 256));
    const bigFile = { size: big.length, sha256: createHash('sha256').update(big).digest('hex') };
    const serveBig = (body: Buffer, cutAt?: number): Promise<URL> => {
      let cut = cutAt;
      return serve((req, res) => {
        const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
        if (start > 0) res.writeHead(206, { 'content-length': String(body.length - start), 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
        else res.writeHead(200, { 'content-length': String(body.length) });
        if (cut === undefined) {
          res.end(body.subarray(start));
          return;
        }
        cutAfter(res, cut, body);
        cut = undefined;
      });
    };

    it('a large artifact arrives whole, and the outcome names the very file that was verified', async () => {
      const url = await serveBig(big);
      const outcome = await downloadArtifact(input(url, { file: bigFile }));
      expect(outcome).toMatchObject({ bytes: big.length, attempts: 1, resumedFrom: [] });
      expect((await readFile(join(dir, 'x.part'))).equals(big)).toBe(true);
      expect(samePart(outcome.part, await partIdentity(join(dir, 'x.part')))).toBe(true);
      // Any later write to the file changes what the machine compares before it skips the second hash.
      await writeFile(join(dir, 'x.part'), big);
      expect(samePart(outcome.part, await partIdentity(join(dir, 'x.part')))).toBe(false);
    });

    it('a byte flipped past the first buffers and the first fdatasync is refused, and the .part removed (ARTIFACT_DIGEST_MISMATCH)', async () => {
      const flipped = Buffer.from(big);
      const at = big.length - 1000;
      flipped[at] = (flipped[at] ?? 0) ^ 0x80;
      const url = await serveBig(flipped);
      await expectRejection(downloadArtifact(input(url, { file: bigFile })), ReleaseError, 'ARTIFACT_DIGEST_MISMATCH');
      await expect(stat(join(dir, 'x.part'))).rejects.toThrow();
    });

    it('a resume after a cut mid-buffer ends with the whole file verified, prefix included', async () => {
      const cutAt = limits.downloadWriteChunkBytes + 777;
      const url = await serveBig(big, cutAt);
      const outcome = await downloadArtifact(input(url, { file: bigFile, stallTimeoutMs: 5_000 }));
      expect(outcome.resumedFrom).toEqual([cutAt]);
      expect(ranges).toEqual([undefined, `bytes=${cutAt}-`]);
      expect((await readFile(join(dir, 'x.part'))).equals(big)).toBe(true);
      expect(samePart(outcome.part, await partIdentity(join(dir, 'x.part')))).toBe(true);
    });

    it('a resume hashes the prefix on disk again: one altered on disk is refused though every byte sent is right (ARTIFACT_DIGEST_MISMATCH)', async () => {
      const prefix = Buffer.from(big.subarray(0, 3 * limits.downloadWriteChunkBytes + 5));
      prefix[4242] = (prefix[4242] ?? 0) ^ 1;
      await writeFile(join(dir, 'x.part'), prefix);
      const url = await serveBig(big);
      await expectRejection(downloadArtifact(input(url, { file: bigFile })), ReleaseError, 'ARTIFACT_DIGEST_MISMATCH');
      expect(ranges).toEqual([`bytes=${prefix.length}-`]);
      await expect(stat(join(dir, 'x.part'))).rejects.toThrow();
    });

    it('a complete .part left by an earlier run is hashed again, not trusted: a flipped byte is refused before any request', async () => {
      const altered = Buffer.from(big);
      altered[7] = (altered[7] ?? 0) ^ 1;
      await writeFile(join(dir, 'x.part'), altered);
      const url = await serveBig(big);
      await expectRejection(downloadArtifact(input(url, { file: bigFile })), ReleaseError, 'ARTIFACT_DIGEST_MISMATCH');
      expect(ranges).toEqual([]);
    });
  });

  it('fails on a 404 without retrying (DOWNLOAD_FAILED)', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(404).end();
    });
    await expectRejection(downloadArtifact(input(url)), DaemonError, 'DOWNLOAD_FAILED');
    expect(ranges.length).toBe(1);
  });
  it('follows the manager\'s 307 to another origin without the credential, resumes from the first URL, and verifies the bytes', async () => {
    const seen: { path: string; host: string; authorization: string | undefined; machineId: string | undefined; range: string | undefined }[] = [];
    let cut = true;
    const url = await serve((req, res) => {
      seen.push({ path: (req.url ?? '').split('?')[0] ?? '', host: req.headers.host ?? '', authorization: req.headers.authorization, machineId: req.headers['x-machine-id'] as string | undefined, range: req.headers.range });
      if (req.url === '/artifact') {
        // The manager: another origin (localhost, not 127.0.0.1) holding the bytes, by a presigned URL.
        res.writeHead(307, { location: `http://localhost:${url.port}/bucket/blob?X-Amz-Signature=abc` }).end();
        return;
      }
      if (cut) {
        // The first GET of the object store is cut half-way: the resume starts again at the manager.
        cut = false;
        res.writeHead(200, { 'content-length': String(bytes.length) });
        cutAfter(res, 100_000);
        return;
      }
      ranged(req, res);
    });
    const outcome = await downloadArtifact(input(url, { headers: { authorization: 'Bearer cred-secret', 'x-machine-id': 'm'.repeat(64) }, maxAttempts: 3 }));
    expect(outcome.bytes).toBe(bytes.length);
    expect((await readFile(join(dir, 'x.part'))).equals(bytes)).toBe(true);
    expect(seen.map((r) => [r.path, r.host.split(':')[0]])).toEqual([
      ['/artifact', '127.0.0.1'],
      ['/bucket/blob', 'localhost'],
      ['/artifact', '127.0.0.1'],
      ['/bucket/blob', 'localhost'],
    ]);
    // credential leak: the credential and machine id went to the manager's origin only.
    expect(seen.filter((r) => r.path === '/artifact').every((r) => r.authorization === 'Bearer cred-secret' && r.machineId !== undefined)).toBe(true);
    expect(seen.filter((r) => r.path === '/bucket/blob').every((r) => r.authorization === undefined && r.machineId === undefined)).toBe(true);
    // The Range goes with the request and its redirect: the object store serves the rest.
    expect(seen.slice(2).map((r) => r.range)).toEqual(['bytes=100000-', 'bytes=100000-']);
    expect(outcome.resumedFrom).toEqual([100_000]);
  });

  it('refuses a redirect loop and a redirect without a Location (DOWNLOAD_FAILED)', async () => {
    let hops = 0;
    const url = await serve((_req, res) => {
      hops += 1;
      res.writeHead(302, { location: '/artifact' }).end();
    });
    await expectRejection(downloadArtifact(input(url, { maxAttempts: 1 })), DaemonError, 'DOWNLOAD_FAILED');
    expect(hops).toBe(4); // the request and 3 redirects
    server?.close();
    const bare = await serve((_req, res) => {
      res.writeHead(307).end();
    });
    await expectRejection(downloadArtifact(input(bare, { maxAttempts: 1 })), DaemonError, 'DOWNLOAD_FAILED');
  });
});
