export { ManagerError, managerErrorCodes, managerRequestErrorCodes, managerStartupErrorCodes, managerRolloutCodes } from './errors.js';
export type { ManagerErrorCode, ManagerRequestErrorCode, ManagerStartupErrorCode, ManagerRolloutCode } from './errors.js';
export { managerLimits, managerLayout } from './config.js';
export type { Store } from './store/store.js';
export type {
  AgentRecord,
  AgentIdentity,
  EnrollmentTokenRecord,
  NewEnrollmentToken,
  EnrollAgentInput,
  EnrollAgentResult,
  EnrollRefusal,
  CommandRecord,
  NewCommand,
  NonceRecord,
  NewNonce,
  CheckinWrite,
  CheckinResultWrite,
  CheckinWriteResult,
  ReleaseRecord,
  NewRelease,
  ReleaseState,
  ReleaseQuery,
  ListAgentsOptions,
} from './store/records.js';
export { SqliteStore } from './store/sqlite/store.js';
export { migrate } from './store/sqlite/migrate.js';
export type { SqliteStoreOptions } from './store/sqlite/store.js';
export { sqliteMigrations } from './store/sqlite/migrations.js';
export type { Migration } from './store/sqlite/migrations.js';
export type { BlobStore, BlobInfo, ByteRange } from './blobs/blob-store.js';
export { FsBlobStore } from './blobs/fs-blob-store.js';
export { AuditLog } from './audit/log.js';
export type { AuditLogOptions, AuditSignerWithKey } from './audit/log.js';
export { loadSigningKey, readSecretFile, ephemeralKeysAllowed } from './keys.js';
export type { LoadedKey } from './keys.js';
export { newSecret, hashSecret, secretId } from './secrets.js';
export { UrlSigner } from './releases/presign.js';
export type { PresignVerdict } from './releases/presign.js';
export { createManagerLogger, silentLogger, redactPaths, COMPONENT } from './logger.js';
export type { ManagerLoggerOptions } from './logger.js';
export type { ManagerContext, ManagerSettings, Actor } from './context.js';
export { systemActor } from './context.js';
export type { OperatorRole, OperatorIdentity } from './http/operator-auth.js';
export type { CheckinHeaders, CheckinOutcome } from './agents/check-in.js';
export type { QueueUpdateInput, BuiltUpdate } from './agents/update-commands.js';
export type { CreateEnrollmentTokenInput, CreatedEnrollmentToken } from './agents/enrollment-tokens.js';
export type { RegisteredRelease } from './releases/catalog.js';
export { versionKey, downloadPath, uploadPath } from './releases/catalog.js';
export { parseRange } from './releases/downloads.js';
export type { DownloadRequest, DownloadResponse } from './releases/downloads.js';
export { ManagerCore, openManagerCore } from './server/core.js';
export type { ManagerOptions } from './server/core.js';
export { statusOf } from './http/status.js';
export { describeHttpError, errorBody } from './http/errors.js';
export type { HttpError } from './http/errors.js';
export { managerPlugin } from './http/plugin.js';
export type { ManagerPluginOptions } from './http/plugin.js';
export { createManager } from './server/create.js';
export type { CreateManagerOptions, ManagerServer } from './server/create.js';
export {
  PublishReleaseRequestSchema,
  PublishReleaseResponseSchema,
  CreateEnrollmentTokenRequestSchema,
  QueueUpdateRequestSchema,
  AgentViewSchema,
  EnrollmentTokenSchema,
} from './http/operator-schemas.js';
export type { PublishReleaseRequest, PublishReleaseResponse, CreateEnrollmentTokenRequest, QueueUpdateRequest, AgentView, EnrollmentTokenView } from './http/operator-schemas.js';
export { ManagerConfigSchema, defaultManagerConfig, readManagerConfig, resolvePath } from './server/config-file.js';
export type { ManagerConfig } from './server/config-file.js';
export { initManagerDirectory } from './server/init.js';
export type { InitManagerOptions, InitializedManager } from './server/init.js';
export { readManagerDirectory } from './server/directory.js';
export type { ReadManagerDirectoryOptions, ManagerDirectory } from './server/directory.js';
export { startManager } from './server/start.js';
export type { StartManagerOptions, RunningManager } from './server/start.js';
export { RolloutEngine } from './rollouts/engine.js';
export type { RolloutEngineOptions } from './rollouts/engine.js';
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
export { defaultRolloutOptions, resolveRolloutOptions, RolloutOptionsSchema } from './rollouts/options.js';
export type { RolloutOptionsInput } from './rollouts/options.js';
export { planPhases, canaryRank } from './rollouts/phases.js';
export type { PhasePlan } from './rollouts/phases.js';
export { evaluateGate } from './rollouts/gate.js';
export type { GateVerdict } from './rollouts/gate.js';
export { summaryOf } from './deploy/status.js';
export type { DeploymentSummary } from './deploy/status.js';
export { shutdownReason, SHUTDOWN_REASON_MAX_CHARS } from './rollouts/push-client.js';
export { activeDeploymentStatuses } from './rollouts/records.js';
export { AgentRolloutRequestSchema, DeploymentEventsQuerySchema } from './http/operator-schemas.js';
export type { AgentRolloutRequest } from './http/operator-schemas.js';
