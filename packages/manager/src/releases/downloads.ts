import type { Readable } from 'node:stream';
import { isDroverError } from '@drover/protocol';
import { authenticateAgent } from '../agents/credentials.js';
import type { ByteRange } from '../blobs/blob-store.js';
import { managerLimits } from '../config.js';
import type { ManagerContext } from '../context.js';
import { ManagerError } from '../errors.js';
import { presentedSha256 } from '../presented.js';
import { downloadPath, versionKey } from './catalog.js';

// GET /v1/download/<artifact>/<version>/<platform>: the artifact's bytes, authorised by an agent
// credential (from the machine it was issued to) or by a presigned URL, with Range (one range;
// 206 or 416), ETag (the SHA-256, strong: the bytes behind a release never change),
// If-None-Match and If-Range. With an object store that presigns (S3), the answer is a 307 to a
// short-lived presigned GET of the blob instead of the bytes.

export interface DownloadRequest {
  artifact: string;
  version: string;
  platform: string;
  expires?: string | undefined;
  sig?: string | undefined;
  authorization?: string | undefined;
  machineId?: string | undefined;
  range?: string | undefined;
  ifRange?: string | undefined;
  ifNoneMatch?: string | undefined;
}

export interface DownloadResponse {
  status: 200 | 206 | 304 | 307;
  headers: Record<string, string>;
  body: Readable | undefined;
}

/**
 * Parses a `Range` header against a size. Undefined means "serve everything": no header, another
 * unit, several ranges, or a malformed one (RFC 9110 lets a server ignore those). 'unsatisfiable'
 * means 416.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    // A suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start) || start >= size) return 'unsatisfiable';
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return undefined;
  return { start, end };
}

// What a refused download asked for: the release, when the catalog has it; else the client's path
// is only its text, and the audit log keeps its SHA-256 (decision 0022).
async function requested(ctx: ManagerContext, request: DownloadRequest): Promise<Record<string, string>> {
  let known = false;
  try {
    known = (await ctx.store.getRelease(request.artifact, versionKey(request.version), request.platform)) !== undefined;
  } catch (error) {
    if (!isDroverError(error) || error.code !== 'VERSION_INVALID') throw error;
  }
  return known ? { artifact: request.artifact, version: request.version, platform: request.platform } : { pathSha256: presentedSha256(downloadPath(request)) };
}

async function refuse(ctx: ManagerContext, request: DownloadRequest, error: ManagerError, agentId?: string): Promise<never> {
  const release = await requested(ctx, request);
  await ctx.audit.append({
    event: 'download.refused',
    actor: agentId === undefined ? 'anonymous' : `agent:${agentId}`,
    agentId,
    outcome: 'denied',
    details: { code: error.code, ...release },
  });
  ctx.logger.info({ event: 'download.refused', code: error.code, ...release }, 'refused a download');
  throw error;
}

async function authorize(ctx: ManagerContext, request: DownloadRequest, path: string): Promise<'presigned' | 'credential'> {
  if (request.expires !== undefined || request.sig !== undefined) {
    if (request.expires === undefined || request.sig === undefined) {
      return refuse(ctx, request, new ManagerError('PRESIGNED_URL_INVALID', 'A presigned download URL carries both expires and sig. Ask the manager for a new URL.'));
    }
    const verdict = ctx.urlSigner.verify(path, request.expires, request.sig, ctx.now());
    if (verdict === 'invalid') return refuse(ctx, request, new ManagerError('PRESIGNED_URL_INVALID', 'The presigned download URL was not signed by this manager, or was altered. Ask the manager for a new URL.'));
    if (verdict === 'expired') return refuse(ctx, request, new ManagerError('PRESIGNED_URL_EXPIRED', 'The presigned download URL has expired. The manager hands out a fresh one with the next command.'));
    return 'presigned';
  }
  if (request.authorization === undefined) {
    return refuse(ctx, request, new ManagerError('DOWNLOAD_UNAUTHORIZED', 'Downloads need an agent credential (`Authorization: Bearer <credential>` with X-Machine-ID) or a presigned URL.'));
  }
  const agent = await authenticateAgent(ctx, request.authorization, undefined, request.machineId);
  // cloned credentials: the credential only works from the machine it was issued to.
  if (request.machineId?.toLowerCase() !== agent.machineId) {
    await ctx.audit.append({
      event: 'agent.machine_id_mismatch',
      actor: `agent:${agent.id}`,
      agentId: agent.id,
      outcome: 'denied',
      // The header is the client's to fill: the chain keeps its SHA-256, never its text (decision 0022).
      details: { route: 'download', enrolledMachineId: agent.machineId, presentedMachineIdSha256: request.machineId === undefined ? null : presentedSha256(request.machineId) },
    });
    throw new ManagerError('MACHINE_ID_MISMATCH', 'This credential was issued to another machine (or X-Machine-ID is missing). Send the X-Machine-ID of the enrolled host.');
  }
  return 'credential';
}

/** Authorises a download and opens the bytes to send (or says 304); throws 4xx ManagerErrors. */
export async function openDownload(ctx: ManagerContext, request: DownloadRequest): Promise<DownloadResponse> {
  const path = downloadPath(request);
  const via = await authorize(ctx, request, path);
  const release = await ctx.store.getRelease(request.artifact, versionKey(request.version), request.platform);
  if (release?.state !== 'published') {
    throw new ManagerError('RELEASE_NOT_FOUND', `No published ${request.artifact} release ${request.version} for ${request.platform}.`);
  }
  if (ctx.blobs.downloadUrl !== undefined) {
    // The bytes come from the object store: 307 (the method and Range are kept) to a presigned GET
    // that lives a few minutes, made for this request only after it was authorised like any other.
    // The client still checks length and SHA-256 against the signed manifest.
    const signed = await ctx.blobs.downloadUrl(release.file.sha256, { ttlSeconds: managerLimits.redirectTtlSeconds, now: ctx.now() });
    return { status: 307, headers: { location: signed.url, 'cache-control': 'no-store' }, body: undefined };
  }
  const blob = await ctx.blobs.stat(release.file.sha256);
  if (blob?.size !== release.file.size) {
    ctx.logger.error({ event: 'blob.missing', artifact: release.artifact, version: release.version, sha256: release.file.sha256 }, 'a published release has no (or a wrong-sized) blob');
    throw new ManagerError('RELEASE_NOT_FOUND', `The artifact of ${request.artifact} ${request.version} is missing from the manager's storage. Publish it again.`);
  }
  const etag = `"${release.file.sha256}"`;
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
    etag,
    // Immutable bytes: a CDN may keep presigned responses; credential responses stay private.
    'cache-control': via === 'presigned' ? 'public, max-age=86400, immutable' : 'private, max-age=86400, immutable',
    'content-disposition': `attachment; filename="${release.file.name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"`,
  };
  if (request.ifNoneMatch !== undefined && request.ifNoneMatch.split(',').some((tag) => tag.trim() === etag || tag.trim() === '*')) {
    return { status: 304, headers: { etag, 'cache-control': headers['cache-control'] ?? '' }, body: undefined };
  }
  const size = release.file.size;
  // If-Range: resume only if the bytes are still the ones the client has the beginning of.
  const rangeHeader = request.ifRange === undefined || request.ifRange.trim() === etag ? request.range : undefined;
  const range = parseRange(rangeHeader, size);
  if (range === 'unsatisfiable') {
    throw new ManagerError('RANGE_NOT_SATISFIABLE', `The requested range is outside the artifact's ${size} bytes.`, { details: { size: String(size) } });
  }
  if (range === undefined) {
    return { status: 200, headers: { ...headers, 'content-length': String(size) }, body: await ctx.blobs.read(release.file.sha256) };
  }
  return {
    status: 206,
    headers: { ...headers, 'content-length': String(range.end - range.start + 1), 'content-range': `bytes ${range.start}-${range.end}/${size}` },
    body: await ctx.blobs.read(release.file.sha256, range),
  };
}
