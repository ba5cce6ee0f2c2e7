// @drover/manager's public surface (docs/decisions/0018-public-api-surface.md): one way to run a
// manager in-process (startManager), one to mount it in a Fastify app (managerPlugin), the
// directory both read (initManagerDirectory), and the types a user configures them with or
// implements (Store, BlobStore). Everything else is internal; the project's own tests reach it by path.

// Run it, mount it, set it up.
export { startManager } from './server/start.js';
export type { StartManagerOptions, RunningManager } from './server/start.js';
export { managerPlugin } from './http/plugin.js';
export type { ManagerPluginOptions } from './http/plugin.js';
export type { ManagerSource } from './server/directory.js';
export type { ManagerOptions } from './server/core.js';
export type { ManagerServerOptions } from './server/create.js';
export { defaultAdmission } from './server/admission.js';
export type { AdmissionOptions, ManagerTls } from './server/admission.js';
export type { ManagerSettings } from './context.js';
export { parseGroupRoles } from './oidc/oidc-config.js';
export type { OidcConfig, PersonRole } from './oidc/oidc-config.js';
export { initManagerDirectory } from './server/init.js';
export { managerAuditChain, migrateManagerDatabase } from './server/database.js';
export { verifyAuditLogFile } from './audit/read.js';
export { migrateStoreToPostgres } from './server/migrate-store.js';
export type { MigrateStoreReport, MigrateStoreTarget } from './server/migrate-store.js';
export type { DatabaseConfig, ManagerAuditChain, MigrationReport } from './server/database.js';
export type { InitManagerOptions, InitializedManager } from './server/init.js';
export { createManagerLogger } from './logger.js';
export type { ManagerLoggerOptions } from './logger.js';
export { managerLimits } from './config.js';

// Errors.
export { ManagerError, managerErrorCodes, managerRequestErrorCodes, managerStartupErrorCodes, managerPkcs11ErrorCodes, managerKmsErrorCodes, managerRolloutCodes } from './errors.js';
export type { ManagerErrorCode, ManagerRequestErrorCode, ManagerStartupErrorCode, ManagerPkcs11ErrorCode, ManagerKmsErrorCode, ManagerRolloutCode } from './errors.js';

// Keys in an HSM or token (PKCS#11, RFC 7512 URIs): signers for releases, nonces and audit records.
export { openPkcs11Signer, generatePkcs11Key } from './pkcs11/ed25519-key.js';
export type { Pkcs11Signer, Pkcs11KeyOptions } from './pkcs11/ed25519-key.js';
export { isPkcs11Uri } from './pkcs11/uri.js';
// Keys in AWS KMS (`awskms:` names, Ed25519 keys of spec ECC_NIST_EDWARDS25519).
export { openKmsSigner } from './kms/ed25519-key.js';
export type { KmsSigner, KmsKeyOptions } from './kms/ed25519-key.js';
export { isKmsKeyName } from './kms/key-name.js';
// Audit keys of every algorithm of the audit log (decision 0046) in AWS KMS or a PKCS#11 token.
export { openKmsAuditMacKey, openKmsAuditSigner } from './kms/audit-key.js';
export type { ExternalAuditSigner, KmsAuditKeyOptions, ExternalAuditMacKey } from './kms/audit-key.js';
export { openPkcs11AuditSigner, openPkcs11AuditMacKey, generatePkcs11RsaKey, generatePkcs11HmacKey } from './pkcs11/audit-key.js';
export type { Pkcs11AuditKeyOptions } from './pkcs11/audit-key.js';
// The seed's audit signer settings (AUDIT_SIGNING_*), REQUIRE_KMS, and keys fetched from a pinned HTTPS URL.
export { auditSignerFromEnv, requireExternalKey, fetchPinned, auditKeySources } from './audit/signer-config.js';
export type { AuditKeySource } from './audit/signer-config.js';

// Rollouts: the options a deployment runs with (the deploy API's metadata.rollout) and their defaults.
export { defaultRolloutOptions, RolloutOptionsSchema } from './rollouts/options.js';
export type { RolloutOptionsInput } from './rollouts/options.js';
export type { RolloutEngineOptions } from './rollouts/engine.js';

// What a store of your own implements (ManagerOptions.store, .blobs, .auditSigner), and the records it keeps.
export type { Store } from './store/store.js';
export type {
  AgentRecord,
  AgentIdentity,
  EnrollmentTokenRecord,
  NewEnrollmentToken,
  EnrollAgentInput,
  EnrollAgentResult,
  EnrollRefusal,
  ImportAgentInput,
  ImportAgentsResult,
  CommandRecord,
  NewCommand,
  NonceRecord,
  NewNonce,
  CheckinWrite,
  PendingAuditRecord,
  AuditOutboxRow,
  CheckinResultWrite,
  CheckinWriteResult,
  ReleaseRecord,
  NewRelease,
  ReleaseState,
  ReleaseQuery,
  ListAgentsOptions,
  AgentFilter,
  FleetDetails,
  AuditChainBuilder,
  AuditChainLine,
  Lease,
  LeaseFence,
  LeaseOptions,
} from './store/records.js';
export { rolloutGroups } from './rollouts/records.js';
export type {
  RolloutGroup,
  RolloutOptions,
  RolloutPhase,
  PhaseState,
  DeploymentRecord,
  TargetRecord,
  TargetView,
  TargetRollbackState,
  DeploymentEventRecord,
  NewDeploymentEvent,
  AgentRolloutSettings,
  RolloutCandidate,
  RolloutWrite,
  TargetCounts,
} from './rollouts/records.js';
export type { BlobStore, BlobInfo, ByteRange, BlobDownloadUrl } from './blobs/blob-store.js';
// Artifacts in an S3-compatible bucket (ManagerOptions.blobStore, or a store made here and passed as .blobs).
export { S3BlobStore } from './blobs/s3-blob-store.js';
export type { S3BlobStoreOptions } from './blobs/s3-blob-store.js';
export type { S3BlobStoreConfig } from './blobs/s3-config.js';
export type { AuditSignerWithKey } from './audit/log.js';
