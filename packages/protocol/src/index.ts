/**
 * `@drover/protocol`: drover's wire protocol, for anyone implementing or verifying it. The message
 * schemas and their types, Ed25519 keys, DSSE envelopes, signed releases and trust policies, update
 * nonces, service tokens, the audit log format, minisign interop, version ordering and the error
 * classes with their stable codes.
 *
 * What drover's own packages share beyond this (byte and file helpers, limits, Fernet, the audit
 * writer) is in `@drover/protocol/internal`, which has no semver guarantee. The rule for what goes
 * where is docs/decisions/0019-protocol-public-surface.md.
 *
 * @packageDocumentation
 */

// Errors: every code a user can see (docs/errors.md).
export {
  DroverError,
  CryptoError,
  ReleaseError,
  NonceError,
  SecretError,
  AuditError,
  MinisignError,
  DataError,
  isDroverError,
  protocolErrorCodes,
  cryptoErrorCodes,
  releaseErrorCodes,
  nonceErrorCodes,
  secretErrorCodes,
  auditErrorCodes,
  minisignErrorCodes,
  dataErrorCodes,
} from './errors.js';
export type {
  ProtocolErrorCode,
  CryptoErrorCode,
  ReleaseErrorCode,
  NonceErrorCode,
  SecretErrorCode,
  AuditErrorCode,
  MinisignErrorCode,
  DataErrorCode,
} from './errors.js';

// Keys and hashes.
export { Ed25519PublicKey, Ed25519PrivateKey } from './ed25519.js';
export type { Ed25519Implementation, Ed25519Signer } from './ed25519.js';
export { sha256Hex } from './hash.js';

// Versions: the order that decides upgrade or rollback.
export { parseVersion, compareVersions, isUpgrade, isBelow } from './version.js';
export type { Version } from './version.js';

// DSSE envelopes and trust policies.
export { pae, signEnvelope, parseEnvelope, verifyEnvelope, parseTrustPolicy, trustPolicyDocument } from './dsse.js';
export type { TrustPolicy, VerifiedEnvelope } from './dsse.js';

// Signed releases and the artifact they cover.
export { RELEASE_PAYLOAD_TYPE, createReleasePayload, signRelease, verifyRelease, verifyArtifactStream, ArtifactVerifier } from './release-manifest.js';
export type { ReleaseFile, CreateReleaseInput, ReleaseExpectations } from './release-manifest.js';

// Update nonces.
export { NONCE_PAYLOAD_TYPE, issueNonce, verifyNonce, readNonceUnverified } from './nonce.js';
export type { IssueNonceInput, NonceExpectations } from './nonce.js';

// Service tokens (manager or daemon -> agent).
export { generateServiceToken, verifyServiceToken, parseBearer, tokenId } from './service-token.js';

// The shutdown reason text (CIRIS-compatible).
export { formatShutdownReason } from './shutdown-reason.js';
export type { ShutdownReasonInput } from './shutdown-reason.js';

// The audit log: its records, who may sign them, and how to verify a log.
export type { AuditRecord, AuditChainHead } from './audit/record.js';
export type { AuditEntry } from './audit/writer.js';
export { ed25519AuditSigner, rsaAuditSigner, hmacAuditSigner, parseAuditSigners, parseAuditHmacKeys, withAuditHmacKeys } from './audit/signers.js';
export type { AuditSigner, AuditSignerKeys } from './audit/signers.js';
export { verifyAuditLog, verifyAuditLogLines } from './audit/verifier.js';
export { auditBreakReasons } from './audit/record.js';
export type { AuditBreakReason } from './audit/record.js';
export { auditAlgorithms, rsaAuditKey, hmacAuditKey, sameAuditKey } from './audit/algorithms.js';
export type { AuditAlgorithm, AuditVerifyKey, Ed25519AuditKey, RsaAuditKey, HmacAuditKey } from './audit/algorithms.js';
export type {
  AuditBreak,
  AuditIntact,
  AuditVerification,
  AuditLogLine,
  VerifyAuditLogOptions,
  VerifyAuditLinesOptions,
} from './audit/verifier.js';
export type { JsonValue, JsonObject } from './canonical-json.js';

// minisign interop (`drover minisign`, `minisign -V`).
export {
  MINISIGN_LEGACY_MAX_BYTES,
  defaultMinisignKeyId,
  formatMinisignKeyId,
  minisignPrehash,
  encodeMinisignPublicKey,
  parseMinisignPublicKey,
  parseMinisignSignature,
  signMinisign,
  verifyMinisign,
  signMinisignStream,
  verifyMinisignStream,
} from './minisign.js';
export type {
  MinisignPublicKey,
  MinisignSignature,
  MinisignVerified,
  MinisignMessage,
  MinisignPublicKeyInput,
  MinisignSignOptions,
  MinisignVerifyOptions,
  MinisignStreamOptions,
} from './minisign.js';

// Wire schemas (TypeBox; JSON Schema files under @drover/protocol/schemas/*.json) and their types.
export { matchesSchema, schemaProblems } from './validate.js';
export type { SchemaProblem } from './validate.js';
export { wireHeaders, ErrorBodySchema } from './schemas/common.js';
export type { ErrorBody } from './schemas/common.js';
export {
  DsseEnvelopeSchema,
  ReleasePayloadSchema,
  TrustPolicySchema,
  ReleaseLatestQuerySchema,
  ReleaseParamsSchema,
  ReleaseResponseSchema,
  DownloadParamsSchema,
  DownloadQuerySchema,
} from './schemas/releases.js';
export type {
  DsseEnvelope,
  ReleasePayload,
  TrustPolicyDocument,
  ReleaseLatestQuery,
  ReleaseParams,
  ReleaseResponse,
  DownloadParams,
  DownloadQuery,
} from './schemas/releases.js';
export {
  NoncePayloadSchema,
  commandOutcomes,
  CommandResultSchema,
  UpdateCommandSchema,
  CommandSchema,
  CommandStubSchema,
} from './schemas/commands.js';
export type { NoncePayload, CommandOutcome, CommandResult, UpdateCommand, Command, CommandStub } from './schemas/commands.js';
export {
  ShutdownRequestSchema,
  ShutdownResponseSchema,
  AgentBusyErrorSchema,
  agentHealthStatuses,
  AgentHealthSchema,
  cirisAgentHealthStatuses,
  CirisAgentHealthSchema,
} from './schemas/agent-endpoints.js';
export { readAgentHealth } from './agent-health.js';
export type { AgentHealthReading } from './agent-health.js';
export type {
  ShutdownRequest,
  ShutdownResponse,
  AgentBusyError,
  AgentHealthStatus,
  AgentHealth,
  CirisAgentHealth,
} from './schemas/agent-endpoints.js';
export { InventorySchema, EnrollRequestSchema, ManagerKeySchema, EnrollResponseSchema, CredentialResponseSchema } from './schemas/enrollment.js';
export type { Inventory, EnrollRequest, ManagerKey, EnrollResponse, CredentialResponse } from './schemas/enrollment.js';
export {
  updateSteps,
  DaemonStateSchema,
  agentHealthReportStatuses,
  AgentHealthReportSchema,
  CheckinRequestSchema,
  CheckinHeadersSchema,
  CheckinParamsSchema,
  CheckinResponseSchema,
  CheckinUpgradeRequiredSchema,
} from './schemas/check-in.js';
export type {
  UpdateStep,
  DaemonState,
  AgentHealthReportStatus,
  AgentHealthReport,
  CheckinRequest,
  CheckinHeaders,
  CheckinParams,
  CheckinResponse,
  CheckinUpgradeRequired,
} from './schemas/check-in.js';
export {
  deploymentStrategies,
  riskLevels,
  deploymentStatuses,
  rolloutTargetStates,
  deploymentActions,
  UpdateNotificationSchema,
  UpdateNotifyResponseSchema,
  DeploymentEventSchema,
  DeploymentTargetSchema,
  DeploymentStatusSchema,
  DeploymentStatusResponseSchema,
  DeploymentStatusQuerySchema,
  DeploymentActionParamsSchema,
  DeploymentActionRequestSchema,
  LatestChangelogResponseSchema,
} from './schemas/deploy.js';
export type {
  DeploymentStrategy,
  RiskLevel,
  DeploymentStatusValue,
  RolloutTargetState,
  DeploymentAction,
  UpdateNotification,
  UpdateNotifyResponse,
  DeploymentEvent,
  DeploymentTarget,
  DeploymentStatus,
  DeploymentStatusResponse,
  DeploymentStatusQuery,
  DeploymentActionParams,
  DeploymentActionRequest,
  LatestChangelogResponse,
} from './schemas/deploy.js';
export { AuditListQuerySchema, AuditListResponseSchema, AuditRecordSchema, AuditSignersSchema, AuditVerifyResponseSchema } from './schemas/audit.js';
export type { AuditListQuery, AuditListResponse, AuditSignersDocument, AuditVerifyResponse } from './schemas/audit.js';
