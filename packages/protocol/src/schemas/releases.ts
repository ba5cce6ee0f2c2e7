import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { ArtifactSchema, DownloadUrl, Hex64, KeyId, Name, PlatformSchema, VersionPathSegmentSchema, VersionSchema } from './common.js';

// Releases: the signed release (a DSSE envelope around a release payload), the trust policy that
// says whose signatures count, and the manager's release and download routes.

// DSSE allows either base64 alphabet, standard or URL-safe (decision 0034); verifyEnvelope decodes strictly.
const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/_-]*={0,2}$', maxLength: 1 << 20, description: 'base64, standard or URL-safe alphabet (not both), padding absent or exact' });

/** One DSSE signature: `keyid` is an optional, unauthenticated hint; without it every trusted key is tried. */
export const DsseSignatureSchema = Type.Object({ keyid: Type.Optional(Type.String({ maxLength: 64 })), sig: Base64 }, { additionalProperties: false });
/** A DSSE envelope: the signed release (or any signed payload), its signatures over PAE(payloadType, payload). */
export const DsseEnvelopeSchema = Type.Object(
  {
    payloadType: Type.String({ minLength: 1, maxLength: 256 }),
    payload: Base64,
    signatures: Type.Array(DsseSignatureSchema, { minItems: 1, maxItems: 16 }),
  },
  { additionalProperties: false, $id: 'DsseEnvelope' },
);
/** A DSSE envelope; see {@link DsseEnvelopeSchema}. Nothing in it is trusted until {@link verifyEnvelope} or {@link verifyRelease} accepts it. */
export type DsseEnvelope = Static<typeof DsseEnvelopeSchema>;

export const ReleaseFileSchema = Type.Object(
  {
    // path traversal: a bare file name, never a path, `.` or `..`.
    name: Type.String({ minLength: 1, maxLength: 255, pattern: '^(?!\\.{1,2}$)[^/\\\\\\u0000]+$' }),
    size: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'bytes' }),
    sha256: Hex64,
  },
  { additionalProperties: false },
);

/** The payload of a signed release (`drover.release/v1`): artifact, version, platform, the file's size and SHA-256, expiry. */
export const ReleasePayloadSchema = Type.Object(
  {
    schema: Type.Literal('drover.release/v1'),
    artifact: ArtifactSchema,
    version: VersionSchema,
    commitSha: Type.Optional(Type.String({ pattern: '^[0-9a-f]{6,40}$' })),
    channel: Name,
    platform: PlatformSchema,
    file: ReleaseFileSchema,
    createdAt: Type.String({ format: 'date-time', maxLength: 64 }),
    expiresAt: Type.String({ format: 'date-time', maxLength: 64 }),
    changelog: Type.Optional(Type.String({ maxLength: 65536 })),
    minDaemonVersion: Type.Optional(VersionSchema),
  },
  { additionalProperties: false, $id: 'ReleasePayload' },
);
/** A release manifest; see {@link ReleasePayloadSchema}. {@link verifyRelease} returns one only once its signatures and rules hold. */
export type ReleasePayload = Static<typeof ReleasePayloadSchema>;

export const TrustedKeySchema = Type.Object(
  { keyid: KeyId, publicKey: Type.String({ description: 'base64 of the raw 32-byte Ed25519 key, or an SPKI PEM', maxLength: 4096 }), name: Type.Optional(Type.String({ maxLength: 128 })) },
  { additionalProperties: false },
);
/** trust.json: the keys a host trusts to sign releases, and how many distinct ones must sign. */
export const TrustPolicySchema = Type.Object(
  {
    schema: Type.Optional(Type.Literal('drover.trust/v1')),
    threshold: Type.Integer({ minimum: 1, maximum: 16 }),
    keys: Type.Array(TrustedKeySchema, { minItems: 1, maxItems: 64 }),
  },
  { additionalProperties: false, $id: 'TrustPolicy' },
);
/** trust.json as a document; {@link parseTrustPolicy} turns it into a {@link TrustPolicy}. */
export type TrustPolicyDocument = Static<typeof TrustPolicySchema>;

// ---------------------------------------------------------------------------------------------
// Release and download routes: GET /v1/releases/latest, GET /v1/releases/{artifact}/{version},
// GET /v1/download/{artifact}/{version}/{platform}

/** Query of `GET /v1/releases/latest`. */
export const ReleaseLatestQuerySchema = Type.Object(
  {
    artifact: ArtifactSchema,
    channel: Type.Optional(Name),
    platform: PlatformSchema,
  },
  { $id: 'ReleaseLatestQuery', additionalProperties: false, description: "Query of GET /v1/releases/latest; without channel, the manager's default channel." },
);
/** Query of `GET /v1/releases/latest`; see {@link ReleaseLatestQuerySchema}. */
export type ReleaseLatestQuery = Static<typeof ReleaseLatestQuerySchema>;

/** Path parameters of `GET /v1/releases/{artifact}/{version}`. */
export const ReleaseParamsSchema = Type.Object(
  { artifact: ArtifactSchema, version: VersionPathSegmentSchema },
  { $id: 'ReleaseParams', additionalProperties: false, description: 'Path parameters of GET /v1/releases/{artifact}/{version}.' },
);
/** Path parameters of `GET /v1/releases/{artifact}/{version}`; see {@link ReleaseParamsSchema}. */
export type ReleaseParams = Static<typeof ReleaseParamsSchema>;

/** A release as the manager serves it: the envelope, its manifest decoded for display, and where to download the file. */
export const ReleaseResponseSchema = Type.Object(
  {
    release: DsseEnvelopeSchema,
    manifest: ReleasePayloadSchema,
    url: DownloadUrl,
  },
  {
    $id: 'ReleaseResponse',
    description:
      "GET /v1/releases/latest and GET /v1/releases/{artifact}/{version}. manifest is the envelope's payload decoded, for display only: act only on the payload that verifying release returns.",
  },
);
/** A release as the manager serves it; see {@link ReleaseResponseSchema}. Act only on the payload that verifying `release` returns. */
export type ReleaseResponse = Static<typeof ReleaseResponseSchema>;

/** Path parameters of `GET /v1/download/{artifact}/{version}/{platform}`. */
export const DownloadParamsSchema = Type.Object(
  { artifact: ArtifactSchema, version: VersionPathSegmentSchema, platform: PlatformSchema },
  { $id: 'DownloadParams', additionalProperties: false, description: 'Path parameters of GET /v1/download/{artifact}/{version}/{platform}.' },
);
/** Path parameters of a download; see {@link DownloadParamsSchema}. */
export type DownloadParams = Static<typeof DownloadParamsSchema>;

/** Query of a presigned download (`?expires=&sig=`), both or neither. */
export const DownloadQuerySchema = Type.Object(
  {
    expires: Type.Optional(Type.String({ pattern: '^[0-9]{1,12}$', description: 'seconds since the epoch' })),
    sig: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'hex HMAC-SHA256 of the presigned URL' })),
  },
  {
    $id: 'DownloadQuery',
    additionalProperties: false,
    description: 'Query of a presigned download: both expires and sig, or neither (then an agent credential authorises).',
  },
);
/** Query of a presigned download; see {@link DownloadQuerySchema}. */
export type DownloadQuery = Static<typeof DownloadQuerySchema>;
