import { open, rm, stat } from 'node:fs/promises';
import { HttpError, deadlineSignal, header, isRetryableStatus } from '@drover/http';
import type { HttpClient, StreamResponse } from '@drover/http';
import { ArtifactVerifier, ReleaseError } from '@drover/protocol';
import { readFileChunks } from '@drover/protocol/internal';
import { limits } from '../config.js';
import { DaemonError } from '../errors.js';
import { isDiskError } from '../host/disk-errors.js';
import type { Logger } from '../logger.js';
import { boundedBackoff, sleep } from '../timing.js';
import { PartWriter } from './part-writer.js';

// Downloads an artifact into a private .part file, resumably: after a cut connection or a restart
// of droverd it asks for the rest with `Range: bytes=<have>-` and goes on hashing from where it
// was. Every byte is counted against the signed manifest's size as it arrives, and hashed as it is
// written (part-writer.ts), so the download ends verified: the size and SHA-256 are checked when the
// last byte is on disk, not by reading the file again.

/** One artifact download ({@link downloadArtifact}): where from, where to, and the size and digest it must match. */
export interface DownloadInput {
  http: HttpClient;
  url: URL;
  /** Sent with every request (the manager credential, only when the URL is the manager's). */
  headers: Record<string, string>;
  partPath: string;
  file: { size: number; sha256: string };
  stallTimeoutMs: number;
  maxAttempts: number;
  maxDurationMs: number;
  signal: AbortSignal;
  logger: Logger;
  random?: () => number;
}

/** A completed, verified download: its size, the attempts it took, where it resumed. */
export interface DownloadOutcome {
  bytes: number; // bytes of the complete file
  attempts: number;
  /** Offsets requests were resumed from (empty: one straight download). */
  resumedFrom: number[];
  /** The .part file whose every byte was hashed and found right, as it was once fsynced. */
  part: PartIdentity;
}

/** Which file a .part was when it was verified: the same inode, size and modification time mean the same file, untouched since. */
export interface PartIdentity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

/** The identity of the file at `path` now ({@link PartIdentity}). */
export async function partIdentity(path: string): Promise<PartIdentity> {
  const stats = await stat(path, { bigint: true });
  return { dev: stats.dev, ino: stats.ino, size: stats.size, mtimeNs: stats.mtimeNs };
}

/** True when both name the same file with the same size and modification time. */
export function samePart(a: PartIdentity, b: PartIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

const STALL_CODES = new Set(['UND_ERR_BODY_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT']);

/** True when the server went silent (a timeout of undici's, or of the whole download's deadline). */
function isStall(error: unknown): boolean {
  if (error instanceof HttpError) return error.code === 'DEADLINE_EXCEEDED' || STALL_CODES.has(String((error.cause as { code?: unknown } | undefined)?.code));
  return STALL_CODES.has(String((error as { code?: unknown } | undefined)?.code));
}

async function partSize(path: string): Promise<number> {
  try {
    const handle = await open(path, 'r');
    try {
      return (await handle.stat()).size;
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

/** Parses `Content-Range: bytes <start>-<end>/<total>`; undefined when malformed. */
function contentRangeStart(value: string | undefined): number | undefined {
  const match = value === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim());
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/**
 * Downloads `url` into `partPath` until it holds exactly `file.size` bytes whose SHA-256 is
 * `file.sha256`. Throws ReleaseError ARTIFACT_TOO_LARGE / ARTIFACT_DIGEST_MISMATCH (the .part is
 * removed), DaemonError DOWNLOAD_STALLED / DOWNLOAD_FAILED (the .part is kept for a resume), or,
 * at once and as it is, a disk error writing the .part (ENOSPC, EDQUOT, EROFS, EIO: host/disk-errors.ts).
 */
export async function downloadArtifact(input: DownloadInput): Promise<DownloadOutcome> {
  const { file } = input;
  const started = Date.now();
  const resumedFrom: number[] = [];
  let lastError: unknown;
  let stalled = false;
  for (let attempt = 1; attempt <= input.maxAttempts; attempt += 1) {
    const remainingMs = input.maxDurationMs - (Date.now() - started);
    if (remainingMs <= 0) break;
    // slow retrieval: the whole download has a deadline, not only each read.
    const deadline = deadlineSignal(remainingMs, input.signal, 'The download');
    try {
      const part = await downloadOnce(input, deadline.signal, resumedFrom);
      if (part !== undefined) return { bytes: file.size, attempts: attempt, resumedFrom, part };
      lastError = undefined;
    } catch (error) {
      if (input.signal.aborted) throw error;
      if (error instanceof ReleaseError) {
        // endless data, or bytes that are not the signed ones: nothing of this download is kept.
        await rm(input.partPath, { force: true });
        throw error;
      }
      if (error instanceof DaemonError) throw error;
      // disk exhaustion: a full or failing disk is not the network; retrying cannot cure it, and
      // each retry would only fill the disk again. The caller names the state directory to free.
      if (isDiskError(error)) throw error;
      lastError = error;
      stalled = isStall(error);
      input.logger.warn({ event: 'download.interrupted', attempt, err: error, stalled }, 'The download was interrupted; it will resume');
    } finally {
      deadline.clear();
    }
    if (attempt < input.maxAttempts) await sleep(boundedBackoff(attempt - 1, 500, 10_000, input.random), input.signal);
  }
  const have = await partSize(input.partPath);
  if (stalled || Date.now() - started >= input.maxDurationMs) {
    // slow retrieval: a server that trickles or stalls cannot hold an update open forever.
    throw new DaemonError(
      'DOWNLOAD_STALLED',
      `The download stalled (no data for ${Math.round(input.stallTimeoutMs / 1000)} s, or over ${Math.round(input.maxDurationMs / 1000)} s in all) at ${have} of ${file.size} bytes. It resumes on the next attempt.`,
      { cause: lastError },
    );
  }
  throw new DaemonError('DOWNLOAD_FAILED', `The download failed after ${input.maxAttempts} attempt(s) at ${have} of ${file.size} bytes. Check the network and the download URL.`, {
    cause: lastError,
  });
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * GET `input.url`, following a few redirects (the manager answers 307 to an object store's
 * presigned URL when artifacts live in S3). Each attempt starts again from the command's URL, so a
 * resume gets a fresh presigned URL rather than an expired one.
 */
async function followRedirects(input: DownloadInput, first: Record<string, string>, signal: AbortSignal): Promise<StreamResponse> {
  let url = input.url;
  let headers = first;
  for (let hop = 0; ; hop += 1) {
    const response = await input.http.stream({ url, headers, signal, bodyTimeoutMs: input.stallTimeoutMs });
    if (!REDIRECTS.has(response.status)) return response;
    await response.body.dump();
    const location = header(response.headers, 'location');
    if (hop >= limits.downloadMaxRedirects || location === undefined) {
      throw new DaemonError('DOWNLOAD_FAILED', `The download server answered ${response.status} ${location === undefined ? 'without a Location' : `more than ${limits.downloadMaxRedirects} times in a row`}. Check the command's URL.`);
    }
    let next: URL;
    try {
      next = new URL(location, url);
    } catch (error) {
      throw new DaemonError('DOWNLOAD_FAILED', 'The download server redirected to something that is not a URL.', { cause: error });
    }
    if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new DaemonError('DOWNLOAD_FAILED', 'The download server redirected to a URL that is not http(s).');
    // The bytes are checked against the signed manifest wherever they come from, but a redirect
    // from https to http would still expose the request (and a presigned URL) on the wire.
    if (url.protocol === 'https:' && next.protocol === 'http:') throw new DaemonError('DOWNLOAD_FAILED', 'The download server redirected from https to plain http; refused.');
    // credential leak: the host's credential never follows a redirect to another origin.
    if (next.origin !== url.origin) headers = Object.fromEntries(Object.entries(headers).filter(([name]) => name !== 'authorization' && name !== 'x-machine-id'));
    url = next;
  }
}

/** One request; the verified file's identity when it is complete and verified, undefined to try again. */
async function downloadOnce(input: DownloadInput, signal: AbortSignal, resumedFrom: number[]): Promise<PartIdentity | undefined> {
  const { file } = input;
  let have = await partSize(input.partPath);
  if (have > file.size) {
    await rm(input.partPath, { force: true });
    have = 0;
  }
  // A resume hashes the bytes already on disk again (read back through one reused buffer) rather
  // than persisting the hash's state between runs: node:crypto cannot export a SHA-256 midstate, a
  // saved state would need its own integrity check, and reading the prefix again proves the hash
  // covers exactly the bytes the file holds. It costs one read of the prefix, only on a resume.
  let verifier = new ArtifactVerifier(file);
  if (have > 0) for await (const chunk of readFileChunks(input.partPath, { limit: have })) verifier.update(chunk);
  if (have === file.size) {
    verifier.finish();
    return partIdentity(input.partPath);
  }

  const headers: Record<string, string> = { ...input.headers, 'accept-encoding': 'identity' };
  if (have > 0) {
    headers['range'] = `bytes=${have}-`;
    resumedFrom.push(have);
  }
  const response = await followRedirects(input, headers, signal);
  let truncate = false;
  if (response.status === 200) {
    truncate = have > 0; // the server ignored the range: start over
    if (truncate) verifier = new ArtifactVerifier(file);
  } else if (response.status === 206) {
    if (contentRangeStart(header(response.headers, 'content-range')) !== have) {
      await response.body.dump();
      await rm(input.partPath, { force: true });
      return undefined;
    }
  } else if (response.status === 416) {
    await response.body.dump();
    await rm(input.partPath, { force: true });
    return undefined;
  } else {
    await response.body.dump();
    if (isRetryableStatus(response.status)) throw Object.assign(new Error(`HTTP ${response.status} from the download server`), { code: `HTTP_${response.status}` });
    throw new DaemonError('DOWNLOAD_FAILED', `The download server answered ${response.status}. Check the command's URL and the host's credential.`);
  }
  const start = truncate ? 0 : have;
  // endless data: a declared length beyond the manifest's size is refused before reading a byte.
  const declared = Number(header(response.headers, 'content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && start + declared > file.size) {
    response.body.destroy();
    throw new ReleaseError('ARTIFACT_TOO_LARGE', `The server announces ${start + declared} bytes, more than the ${file.size} the signed manifest states; nothing was installed.`);
  }

  const handle = await open(input.partPath, truncate ? 'w' : 'a', 0o600);
  const writer = new PartWriter(handle, verifier, { bufferBytes: limits.downloadWriteChunkBytes, syncEveryBytes: limits.downloadSyncEveryBytes });
  let identity: PartIdentity | undefined;
  try {
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        // endless data: the verifier refuses as soon as more than `size` bytes arrived (at size + 1),
        // before anything past the size is written; the stream is then destroyed.
        try {
          await writer.write(chunk);
        } catch (error) {
          response.body.destroy();
          throw error;
        }
        // Caught up with the network: write what is buffered unless a write is still running.
        if (response.body.readableLength === 0) writer.flushIfIdle();
      }
      // The whole response on disk and fsynced before the digest is judged.
      await writer.finish(true);
    } catch (error) {
      // An interrupted request keeps what arrived and was hashed, for the resume (which hashes it
      // again from the file); bytes refused by the verifier are never written, and the .part of a
      // refused download is removed by the caller.
      if (!(error instanceof ReleaseError)) await writer.finish(false).catch(() => undefined);
      await writer.settle();
      throw error;
    }
    if (verifier.received < file.size) {
      // The body ended early without an error (a server closing a chunked response): resume.
      throw Object.assign(new Error(`The response ended at ${verifier.received} of ${file.size} bytes`), { code: 'SHORT_BODY' });
    }
    // endless data, tampering: exactly `size` bytes whose SHA-256 the signed manifest names.
    verifier.finish();
    const stats = await handle.stat({ bigint: true });
    identity = { dev: stats.dev, ino: stats.ino, size: stats.size, mtimeNs: stats.mtimeNs };
  } finally {
    await handle.close();
  }
  return identity;
}

