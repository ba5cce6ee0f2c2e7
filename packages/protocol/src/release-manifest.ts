import { createHash } from 'node:crypto';
import { toHex } from './bytes.js';
import { limits } from './config.js';
import { signEnvelope, verifyEnvelope } from './dsse.js';
import type { TrustPolicy } from './dsse.js';
import type { Ed25519Signer } from './ed25519.js';
import { ReleaseError } from './errors.js';
import { ReleasePayloadSchema } from './schemas/releases.js';
import type { DsseEnvelope, ReleasePayload } from './schemas/releases.js';
import { describeProblems, schemaProblems } from './validate.js';
import { isUpgrade, parseVersion } from './version.js';

/** The DSSE payload type of a drover release; a signature over any other type never verifies as a release. */
export const RELEASE_PAYLOAD_TYPE = 'application/vnd.drover.release+json';

/** The file a release covers, as its payload states it: bare name, size in bytes, lowercase hex SHA-256. */
export type ReleaseFile = ReleasePayload['file'];

/** What {@link createReleasePayload} builds a release payload from. */
export interface CreateReleaseInput {
  /** `agent` or `daemon` for what droverd installs; any artifact name otherwise. */
  artifact: string;
  /** A semantic version or a commit SHA, kept as given. */
  version: string;
  /** e.g. `linux-x64`. */
  platform: string;
  /** The file the release covers. */
  file: ReleaseFile;
  /** Default `stable`. */
  channel?: string;
  /** The commit the release was built from (6-40 hex). */
  commitSha?: string;
  /** Release notes, one entry a line. */
  changelog?: string;
  /** The lowest droverd version that may install this release. */
  minDaemonVersion?: string;
  /** Default now. */
  createdAt?: Date;
  /** Seconds from `createdAt` until the release expires (default 90 days). */
  expiresInSeconds?: number;
}

/**
 * Builds and checks a release payload; the version is kept as given (after a format check).
 * Throws DataError `VERSION_INVALID` or ReleaseError `RELEASE_MALFORMED`.
 */
export function createReleasePayload(input: CreateReleaseInput): ReleasePayload {
  parseVersion(input.version);
  const createdAt = input.createdAt ?? new Date();
  const expiresAt = new Date(createdAt.getTime() + 1000 * (input.expiresInSeconds ?? limits.releaseDefaultExpirySeconds));
  const payload: ReleasePayload = {
    schema: 'drover.release/v1',
    artifact: input.artifact,
    version: input.version,
    ...(input.commitSha === undefined ? {} : { commitSha: input.commitSha.toLowerCase() }),
    channel: input.channel ?? 'stable',
    platform: input.platform,
    file: { name: input.file.name, size: input.file.size, sha256: input.file.sha256.toLowerCase() },
    createdAt: createdAt.toISOString(),
    expiresAt: expiresAt.toISOString(),
    ...(input.changelog === undefined || input.changelog === '' ? {} : { changelog: input.changelog }),
    ...(input.minDaemonVersion === undefined ? {} : { minDaemonVersion: input.minDaemonVersion }),
  };
  checkPayload(payload);
  return payload;
}

/**
 * Signs a release payload with one or more keys into a DSSE envelope of type
 * {@link RELEASE_PAYLOAD_TYPE}; checks the payload first.
 */
export function signRelease(payload: ReleasePayload, keys: readonly Ed25519Signer[]): DsseEnvelope {
  checkPayload(payload);
  return signEnvelope(RELEASE_PAYLOAD_TYPE, new TextEncoder().encode(JSON.stringify(payload)), keys);
}

function checkPayload(value: unknown): asserts value is ReleasePayload {
  const problems = schemaProblems(ReleasePayloadSchema, value);
  if (problems.length > 0) throw new ReleaseError('RELEASE_MALFORMED', `The release manifest is malformed (${describeProblems(problems)}).`);
  const payload = value as ReleasePayload;
  try {
    parseVersion(payload.version);
  } catch (error) {
    throw new ReleaseError('RELEASE_MALFORMED', `The release version "${payload.version.slice(0, 64)}" is neither a semver nor a commit SHA.`, { cause: error });
  }
  if (Date.parse(payload.expiresAt) <= Date.parse(payload.createdAt)) {
    throw new ReleaseError('RELEASE_MALFORMED', 'The release expires before it was created.');
  }
}

/** What a host expects of a release it is about to install: its own artifact and platform, and what it runs now. */
export interface ReleaseExpectations {
  /** The artifact this host installs from this envelope: `agent` or `daemon`. */
  artifact: string;
  /** This host's platform, e.g. `linux-x64`. */
  platform: string;
  /** The version running now; omit when nothing is installed yet. */
  runningVersion?: string | undefined;
  /** True only when a verified update nonce says this move is a rollback. */
  rollback?: boolean;
  /** The time to check expiry against; default now. */
  now?: Date;
}

/**
 * Verifies a signed release for this host and returns its manifest. Each rule refuses with its
 * own code; the order puts signature checks first so nothing unsigned is ever interpreted.
 *
 * @param policy - the host's trust policy ({@link parseTrustPolicy})
 * @param expect - the host's artifact, platform and running version
 * @returns the verified manifest: install only the file it states, checked with {@link verifyArtifactStream}
 * @throws ReleaseError with the code of the rule that refused (docs/errors.md)
 */
export function verifyRelease(envelope: DsseEnvelope, policy: TrustPolicy, expect: ReleaseExpectations): ReleasePayload {
  // arbitrary installation, key compromise: k distinct trusted keys must have signed.
  const { payload: bytes } = verifyEnvelope(envelope, policy, RELEASE_PAYLOAD_TYPE);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new ReleaseError('RELEASE_MALFORMED', 'The signed release manifest is not UTF-8 JSON.', { cause: error });
  }
  checkPayload(value);
  const manifest = value;
  // mix-and-match: a valid release of another artifact or platform is not this host's release.
  if (manifest.artifact !== expect.artifact) {
    throw new ReleaseError('RELEASE_WRONG_ARTIFACT', `The release is for artifact "${manifest.artifact}", not "${expect.artifact}".`);
  }
  if (manifest.platform !== expect.platform) {
    throw new ReleaseError('RELEASE_WRONG_PLATFORM', `The release is for platform "${manifest.platform}", this host is "${expect.platform}". Publish a build for ${expect.platform}.`);
  }
  // indefinite freeze: an old release an attacker keeps serving stops verifying when it expires.
  const now = expect.now ?? new Date();
  if (now.getTime() >= Date.parse(manifest.expiresAt)) {
    throw new ReleaseError('RELEASE_EXPIRED', `The release expired at ${manifest.expiresAt}. Re-sign it or publish a newer one.`);
  }
  // rollback: refuse a version at or below the running one unless a signed nonce says rollback.
  if (expect.runningVersion !== undefined && expect.rollback !== true && !isUpgrade(expect.runningVersion, manifest.version)) {
    throw new ReleaseError('DOWNGRADE_REFUSED', `Version ${manifest.version} is not above the running ${expect.runningVersion}; only a signed rollback may move to it.`);
  }
  return manifest;
}

/**
 * Checks artifact bytes against a manifest incrementally, as they stream in.
 * endless data: `update` refuses as soon as more than `size` bytes arrive.
 */
export class ArtifactVerifier {
  readonly #file: Pick<ReleaseFile, 'size' | 'sha256'>;
  readonly #hash = createHash('sha256');
  #received = 0;

  /** A verifier for the file a verified manifest states (its `file`, or just `size` and `sha256`). */
  constructor(file: Pick<ReleaseFile, 'size' | 'sha256'>) {
    this.#file = file;
  }

  /** Bytes received so far. */
  get received(): number {
    return this.#received;
  }

  /** Hashes the next chunk; throws ReleaseError `ARTIFACT_TOO_LARGE` as soon as more than `size` bytes arrived. */
  update(chunk: Uint8Array): void {
    this.#received += chunk.length;
    if (this.#received > this.#file.size) {
      throw new ReleaseError('ARTIFACT_TOO_LARGE', `The artifact is longer than the ${this.#file.size} bytes its signed manifest states; the download was stopped.`);
    }
    this.#hash.update(chunk);
  }

  /** Ends the check: the size must be exact and the SHA-256 must match. */
  finish(): void {
    if (this.#received < this.#file.size) {
      throw new ReleaseError('ARTIFACT_TOO_SHORT', `The artifact has ${this.#received} of the ${this.#file.size} bytes its manifest states. Download it again.`);
    }
    const digest = toHex(this.#hash.digest());
    if (digest !== this.#file.sha256.toLowerCase()) {
      throw new ReleaseError('ARTIFACT_DIGEST_MISMATCH', 'The artifact\'s SHA-256 does not match its signed manifest: it was modified or corrupted. Do not install it.');
    }
  }
}

/**
 * Verifies a stream of artifact bytes; stops pulling from the source (calling its `return`) as
 * soon as it has more than `size` bytes, so a hostile server cannot make us read forever.
 */
export async function verifyArtifactStream(source: AsyncIterable<Uint8Array>, file: Pick<ReleaseFile, 'size' | 'sha256'>): Promise<{ bytes: number }> {
  const verifier = new ArtifactVerifier(file);
  for await (const chunk of source) verifier.update(chunk);
  verifier.finish();
  return { bytes: verifier.received };
}
