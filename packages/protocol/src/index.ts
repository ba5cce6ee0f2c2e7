export { toBase64, toBase64Url, fromBase64, fromBase64Url, toHex, fromHex, utf8, concatBytes } from './bytes.js';
export { sha256, sha256Hex, shortId } from './hash.js';
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
  brandError,
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
export {
  Ed25519PublicKey,
  Ed25519PrivateKey,
  nativeEd25519,
  tweetnaclEd25519,
  defaultEd25519,
  keyIdOf,
  SEED_LENGTH,
  PUBLIC_KEY_LENGTH,
  SIGNATURE_LENGTH,
} from './ed25519.js';
export type { Ed25519Implementation } from './ed25519.js';
export { generateServiceToken, verifyServiceToken, tokenId, parseBearer, SERVICE_TOKEN_BYTES } from './service-token.js';
export { formatShutdownReason, sanitizeReason } from './shutdown-reason.js';
export type { ShutdownReasonInput } from './shutdown-reason.js';
export { parseSemver, isCommitSha, parseVersion, compareVersions, isUpgrade, isBelow } from './version.js';
export type { Version } from './version.js';
export { limits } from './config.js';
export { pae, signEnvelope, parseEnvelope, parseTrustPolicy, trustPolicyDocument, verifyEnvelope } from './dsse.js';
export type { TrustPolicy, VerifiedEnvelope } from './dsse.js';
export {
  RELEASE_PAYLOAD_TYPE,
  createReleasePayload,
  signRelease,
  verifyRelease,
  verifyArtifactStream,
  ArtifactVerifier,
} from './release-manifest.js';
export type { ReleaseFile, CreateReleaseInput, ReleaseExpectations } from './release-manifest.js';
export { NONCE_PAYLOAD_TYPE, issueNonce, verifyNonce, readNonceUnverified } from './nonce.js';
export type { IssueNonceInput, NonceExpectations } from './nonce.js';
export { schemaProblems, matchesSchema, describeProblems } from './validate.js';
export type { SchemaProblem } from './validate.js';
export { readFileChunks, FILE_CHUNK_BYTES } from './file-chunks.js';
export {
  MINISIGN_KEY_ID_LENGTH,
  MINISIGN_PREHASH_LENGTH,
  MINISIGN_LEGACY_MAX_BYTES,
  MINISIGN_TRUSTED_COMMENT_MAX_BYTES,
  MINISIGN_UNTRUSTED_COMMENT_MAX_BYTES,
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
export { Fernet, generateFernetKey, isFernetKey, FERNET_VERSION, FERNET_KEY_BYTES, FERNET_MAX_CLOCK_SKEW_SECONDS } from './fernet.js';
export type { FernetEncryptOptions, FernetDecryptOptions } from './fernet.js';
export { deriveCirisEncryptionKey, resolveEncryptionKey, CIRIS_PBKDF2_ITERATIONS, CIRIS_MIN_SALT_LENGTH } from './encryption-key.js';
export type { EncryptionKeySource, ResolvedEncryptionKey } from './encryption-key.js';
export { canonicalize, CANONICAL_JSON_MAX_DEPTH } from './canonical-json.js';
export type { JsonValue, JsonObject } from './canonical-json.js';
export { auditRecordHash, AUDIT_GENESIS_HASH, AUDIT_FIRST_SEQ, AUDIT_LINE_MAX_LENGTH } from './audit/record.js';
export type { AuditRecord, AuditChainHead } from './audit/record.js';
export { ed25519AuditSigner, parseAuditSigners, buildAuditSigners } from './audit/signers.js';
export type { AuditSigner, AuditSignerEntry, AuditSignersDocument, AuditSignerKeys } from './audit/signers.js';
export { AuditChain } from './audit/writer.js';
export type { AuditEntry, AppendedAuditRecord, AuditChainOptions } from './audit/writer.js';
export { AuditLogVerifier, verifyAuditLog, verifyAuditLogLines, auditBreakReasons } from './audit/verifier.js';
export type {
  AuditBreakReason,
  AuditBreak,
  AuditIntact,
  AuditVerification,
  AuditLogLine,
  VerifyAuditLogOptions,
  VerifyAuditLinesOptions,
} from './audit/verifier.js';
export {
  ArtifactSchema,
  PlatformSchema,
  VersionSchema,
  AgentIdSchema,
  DeploymentIdSchema,
  CommandIdSchema,
  MachineIdSchema,
  ErrorCodeSchema,
  VersionPathSegmentSchema,
  wireHeaders,
  ErrorDetailSchema,
  ErrorBodySchema,
} from './schemas/common.js';
export type { ErrorDetail, ErrorBody } from './schemas/common.js';
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
  NonceTokenSchema,
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
} from './schemas/agent-endpoints.js';
export type {
  ShutdownRequest,
  ShutdownResponse,
  AgentBusyError,
  AgentHealthStatus,
  AgentHealth,
} from './schemas/agent-endpoints.js';
export { InventorySchema, EnrollRequestSchema, ManagerKeySchema, EnrollResponseSchema } from './schemas/enrollment.js';
export type { Inventory, EnrollRequest, ManagerKey, EnrollResponse } from './schemas/enrollment.js';
export {
  updateSteps,
  UpdateProgressSchema,
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
  UpdateProgress,
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
  UpdateNotificationSchema,
  UpdateNotifyResponseSchema,
  DeploymentEventSchema,
  DeploymentTargetSchema,
  DeploymentStatusSchema,
  DeploymentStatusResponseSchema,
  DeploymentStatusQuerySchema,
  deploymentActions,
  DeploymentActionParamsSchema,
  DeploymentActionRequestSchema,
  LatestChangelogResponseSchema,
} from './schemas/deploy.js';
export type {
  DeploymentStrategy,
  RiskLevel,
  DeploymentStatusValue,
  RolloutTargetState,
  UpdateNotification,
  UpdateNotifyResponse,
  DeploymentEvent,
  DeploymentTarget,
  DeploymentStatus,
  DeploymentStatusResponse,
  DeploymentStatusQuery,
  DeploymentAction,
  DeploymentActionParams,
  DeploymentActionRequest,
  LatestChangelogResponse,
} from './schemas/deploy.js';
export { AuditRecordSchema, AuditSignersSchema } from './schemas/audit.js';
export type { AuditLogRecord, AuditSignersFile } from './schemas/audit.js';
export { wireSchemas } from './schemas/wire-schemas.js';
export { writeFileAtomic, fsyncDirectory, tempPathFor } from './durable-file.js';
export type { AtomicWriteOptions } from './durable-file.js';
