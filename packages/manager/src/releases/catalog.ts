import { ReleaseError, compareVersions, parseEnvelope, parseVersion, verifyRelease } from '@drover/protocol';
import { canonicalize } from '@drover/protocol/internal';
import type { DsseEnvelope, JsonObject, ReleasePayload } from '@drover/protocol';
import type { Actor, ManagerContext } from '../context.js';
import { managerLimits } from '../config.js';
import { ManagerError } from '../errors.js';
import type { ReleaseRecord } from '../store/records.js';

// The release catalog: publishing is two steps, so an artifact of any size streams straight to
// disk and is never held in memory or base64-inflated:
//   1. POST /v1/releases {"release": <DSSE envelope>}: the envelope is verified against the
//      manager's trust policy; the release is registered `pending` (or `published` at once when
//      the blob store already holds bytes with that SHA-256 and size).
//   2. PUT /v1/releases/<artifact>/<version>/<platform>/artifact, body = the raw bytes
//      (application/octet-stream): streamed through the size and SHA-256 checks of the signed
//      manifest into the blob store; only bytes that match are kept, then the release is published.
// See docs/decisions/0007-manager-release-publishing.md.

/** The catalog key of a version: `v1.2.3` and `1.2.3` name one release, a SHA is lowercased. */
export function versionKey(version: string): string {
  return parseVersion(version).value;
}

/** The manager's canonical download path of a release (without any mount prefix). */
export function downloadPath(release: Pick<ReleaseRecord, 'artifact' | 'version' | 'platform'>): string {
  return `/v1/download/${encodeURIComponent(release.artifact)}/${encodeURIComponent(release.version)}/${encodeURIComponent(release.platform)}`;
}

/** Where the artifact of a registered release is uploaded (without any mount prefix). */
export function uploadPath(release: Pick<ReleaseRecord, 'artifact' | 'version' | 'platform'>): string {
  return `/v1/releases/${encodeURIComponent(release.artifact)}/${encodeURIComponent(release.version)}/${encodeURIComponent(release.platform)}/artifact`;
}

export interface RegisteredRelease {
  release: ReleaseRecord;
  /** False when the very same envelope was registered before (a retried publish). */
  created: boolean;
}

// What an envelope claims before it is verified: only used to tell verifyRelease what to expect,
// so that the signature, checked first, is what decides.
function claims(envelope: DsseEnvelope): { artifact: string; platform: string } {
  try {
    const value = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as Record<string, unknown>;
    return { artifact: typeof value['artifact'] === 'string' ? value['artifact'] : '', platform: typeof value['platform'] === 'string' ? value['platform'] : '' };
  } catch {
    return { artifact: '', platform: '' };
  }
}

function auditActor(actor: Actor): { actor: string; tokenId?: string } {
  return actor.tokenId === undefined ? { actor: actor.name } : { actor: actor.name, tokenId: actor.tokenId };
}

/**
 * Step 1 of publishing: verifies the envelope against the manager's own trust policy (threshold,
 * signatures, manifest, expiry) and registers the release. Anything that does not verify is
 * refused with the protocol's code, and audited.
 */
export async function registerRelease(ctx: ManagerContext, input: unknown, actor: Actor): Promise<RegisteredRelease> {
  const policy = ctx.trustPolicy;
  if (policy === undefined) {
    throw new ManagerError('TRUST_POLICY_MISSING', 'This manager has no release trust policy, so it accepts no release. Put trust.json (from `drover trust create`) in the manager directory and restart it.');
  }
  let manifest: ReleasePayload;
  let envelope: DsseEnvelope;
  try {
    envelope = parseEnvelope(input);
    const claimed = claims(envelope);
    // arbitrary installation: only releases signed by the manager's trusted keys enter the catalog.
    manifest = verifyRelease(envelope, policy, { ...claimed, now: ctx.now() });
  } catch (error) {
    if (error instanceof ReleaseError) {
      await ctx.audit.append({ event: 'release.refused', ...auditActor(actor), outcome: 'denied', details: { code: error.code, step: 'envelope' } });
      ctx.logger.info({ event: 'release.refused', code: error.code }, 'refused a release');
    }
    throw error;
  }
  if (manifest.file.size > managerLimits.artifactMaxBytes) {
    throw new ReleaseError('ARTIFACT_TOO_LARGE', `The release declares ${manifest.file.size} bytes; this manager accepts artifacts up to ${managerLimits.artifactMaxBytes} bytes.`);
  }
  const key = versionKey(manifest.version);
  const existing = await ctx.store.getRelease(manifest.artifact, key, manifest.platform);
  if (existing !== undefined) {
    // A retried publish of the very same envelope is not an error; anything else is a second,
    // different release under one name, which daemons could not tell apart.
    if (canonicalize(existing.envelope) === canonicalize(envelope)) return { release: existing, created: false };
    throw new ManagerError('RELEASE_EXISTS', `${manifest.artifact} ${manifest.version} for ${manifest.platform} is already published with another envelope. Publish a new version instead.`);
  }
  const now = ctx.now();
  // Content-addressed: bytes with this digest already verified once need not be uploaded again.
  const blob = await ctx.blobs.stat(manifest.file.sha256);
  const present = blob?.size === manifest.file.size;
  const release: ReleaseRecord = {
    artifact: manifest.artifact,
    version: manifest.version,
    versionKey: key,
    platform: manifest.platform,
    channel: manifest.channel,
    file: { name: manifest.file.name, size: manifest.file.size, sha256: manifest.file.sha256 },
    envelope: envelope,
    manifest: manifest,
    createdAt: new Date(manifest.createdAt),
    expiresAt: new Date(manifest.expiresAt),
    state: present ? 'published' : 'pending',
    registeredAt: now,
    publishedAt: present ? now : undefined,
    publishedBy: actor.name,
  };
  const audit = ctx.audit.entry({ event: present ? 'release.published' : 'release.registered', ...auditActor(actor), outcome: 'success', details: releaseDetails(ctx, release) });
  if ((await ctx.store.insertRelease(release, [audit])) === 'exists') {
    // Lost a race with an identical registration: report what is stored.
    const stored = await ctx.store.getRelease(manifest.artifact, key, manifest.platform);
    if (stored !== undefined && canonicalize(stored.envelope) === canonicalize(release.envelope)) return { release: stored, created: false };
    throw new ManagerError('RELEASE_EXISTS', `${manifest.artifact} ${manifest.version} for ${manifest.platform} was just published with another envelope.`);
  }
  await ctx.audit.flush();
  ctx.logger.info({ event: present ? 'release.published' : 'release.registered', artifact: release.artifact, version: release.version, platform: release.platform }, 'release registered');
  return { release, created: true };
}

// The envelope's signatures name their keys in text the publisher chose (only the signed payload
// is the release's): the audit record lists the keys the trust policy knows.
function releaseDetails(ctx: ManagerContext, release: ReleaseRecord): JsonObject {
  return {
    artifact: release.artifact,
    version: release.version,
    platform: release.platform,
    channel: release.channel,
    sha256: release.file.sha256,
    size: release.file.size,
    keyids: ((release.envelope['signatures'] ?? []) as { keyid: string }[]).map((s) => s.keyid).filter((keyid) => ctx.trustPolicy?.keys.has(keyid) === true),
  };
}

/**
 * Step 2 of publishing: streams the artifact into the blob store through the signed manifest's
 * checks (size, SHA-256) and publishes the release. Bytes that do not match are refused and not kept.
 */
export async function uploadArtifact(ctx: ManagerContext, params: { artifact: string; version: string; platform: string }, source: AsyncIterable<Uint8Array>, actor: Actor): Promise<ReleaseRecord> {
  const key = versionKey(params.version);
  const release = await ctx.store.getRelease(params.artifact, key, params.platform);
  if (release === undefined) {
    throw new ManagerError('RELEASE_NOT_FOUND', `No release ${params.artifact} ${params.version} for ${params.platform} is registered. POST its envelope to /v1/releases first.`);
  }
  if (release.state === 'published') {
    throw new ManagerError('UPLOAD_NOT_EXPECTED', `${params.artifact} ${params.version} for ${params.platform} is already published; its bytes cannot be replaced.`);
  }
  try {
    await ctx.blobs.put(source, { size: release.file.size, sha256: release.file.sha256 });
  } catch (error) {
    if (error instanceof ReleaseError) {
      await ctx.audit.append({ event: 'release.refused', ...auditActor(actor), outcome: 'denied', details: { ...releaseDetails(ctx, release), code: error.code, step: 'artifact' } });
      ctx.logger.info({ event: 'release.refused', code: error.code, artifact: release.artifact, version: release.version }, 'refused an artifact upload');
    }
    throw error;
  }
  const at = ctx.now();
  const audit = ctx.audit.entry({ event: 'release.published', ...auditActor(actor), outcome: 'success', details: releaseDetails(ctx, release) });
  if (await ctx.store.markReleasePublished(release.artifact, key, release.platform, at, [audit])) {
    await ctx.audit.flush();
    ctx.logger.info({ event: 'release.published', artifact: release.artifact, version: release.version, platform: release.platform }, 'release published');
  }
  return { ...release, state: 'published', publishedAt: at };
}

/**
 * The newest published, unexpired release of an artifact for a platform and channel: the highest
 * semantic version; a channel holding only commit builds (which have no order) gives the one
 * published last.
 */
export async function latestRelease(ctx: ManagerContext, query: { artifact: string; platform: string; channel?: string | undefined }): Promise<ReleaseRecord> {
  const channel = query.channel ?? ctx.settings.defaultChannel;
  const now = ctx.now().getTime();
  const releases = (await ctx.store.listReleases({ artifact: query.artifact, platform: query.platform, channel, state: 'published' })).filter((r) => r.expiresAt.getTime() > now);
  let best: ReleaseRecord | undefined;
  for (const release of releases) {
    if (best === undefined) {
      best = release;
      continue;
    }
    const order = compareVersions(release.versionKey, best.versionKey);
    const releaseIsSemver = parseVersion(release.versionKey).kind === 'semver';
    const bestIsSemver = parseVersion(best.versionKey).kind === 'semver';
    if (order === 1 || (order === undefined && releaseIsSemver && !bestIsSemver)) best = release;
    else if (order === undefined && !releaseIsSemver && !bestIsSemver && (release.publishedAt?.getTime() ?? 0) >= (best.publishedAt?.getTime() ?? 0)) best = release;
  }
  if (best === undefined) {
    throw new ManagerError('RELEASE_NOT_FOUND', `No unexpired ${query.artifact} release for ${query.platform} is published on channel ${channel}.`);
  }
  return best;
}

/** A published release by version; `platform` may be left out when the version has one platform only. */
export async function findRelease(ctx: ManagerContext, query: { artifact: string; version: string; platform?: string | undefined }): Promise<ReleaseRecord> {
  const key = versionKey(query.version);
  const matching = (await ctx.store.listReleases({ artifact: query.artifact, platform: query.platform, state: 'published' })).filter((r) => r.versionKey === key);
  const [first, second] = matching;
  if (first === undefined) {
    throw new ManagerError('RELEASE_NOT_FOUND', `No published ${query.artifact} release ${query.version}${query.platform === undefined ? '' : ` for ${query.platform}`}.`);
  }
  if (second !== undefined) {
    throw new ManagerError('PLATFORM_REQUIRED', `${query.artifact} ${query.version} is published for several platforms (${matching.map((r) => r.platform).join(', ')}): add ?platform=.`);
  }
  return first;
}
