export { ManagerError, managerErrorCodes, managerRequestErrorCodes, managerStartupErrorCodes, managerRolloutCodes } from './errors.js';
export type { ManagerErrorCode, ManagerRequestErrorCode, ManagerStartupErrorCode, ManagerRolloutCode } from './errors.js';
export { managerLimits, managerLayout } from './config.js';
export type {
  Store,
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
} from './store.js';
export { SqliteStore, migrate } from './sqlite-store.js';
export type { SqliteStoreOptions } from './sqlite-store.js';
export { sqliteMigrations } from './sqlite-migrations.js';
export type { Migration } from './sqlite-migrations.js';
export type { BlobStore, BlobInfo, ByteRange } from './blob-store.js';
export { FsBlobStore } from './fs-blob-store.js';
export { AuditLog } from './audit-log.js';
export type { AuditLogOptions, AuditSignerWithKey } from './audit-log.js';
export { loadSigningKey, readSecretFile, ephemeralKeysAllowed } from './keys.js';
export type { LoadedKey } from './keys.js';
export { newSecret, hashSecret, secretId } from './secrets.js';
export { UrlSigner } from './presign.js';
export type { PresignVerdict } from './presign.js';
export { createManagerLogger, silentLogger, redactPaths, COMPONENT } from './logger.js';
export type { ManagerLoggerOptions } from './logger.js';
export type { ManagerContext, ManagerSettings, Actor } from './context.js';
export { systemActor } from './context.js';
export type { OperatorRole, OperatorIdentity } from './operator-auth.js';
export type { CheckinHeaders, CheckinOutcome } from './check-in.js';
export type { QueueUpdateInput, BuiltUpdate } from './update-commands.js';
export type { CreateEnrollmentTokenInput, CreatedEnrollmentToken } from './enrollment-tokens.js';
export type { RegisteredRelease } from './release-catalog.js';
export { versionKey, downloadPath, uploadPath } from './release-catalog.js';
export { parseRange } from './downloads.js';
export type { DownloadRequest, DownloadResponse } from './downloads.js';
export { ManagerCore, openManagerCore } from './manager-core.js';
export type { ManagerOptions } from './manager-core.js';
export { statusOf } from './http-status.js';
export { describeHttpError, errorBody } from './http-errors.js';
export type { HttpError } from './http-errors.js';
export { managerPlugin } from './plugin.js';
export type { ManagerPluginOptions } from './plugin.js';
export { createManager } from './create-manager.js';
export type { CreateManagerOptions, ManagerServer } from './create-manager.js';
export {
  PublishReleaseRequestSchema,
  PublishReleaseResponseSchema,
  CreateEnrollmentTokenRequestSchema,
  QueueUpdateRequestSchema,
  AgentViewSchema,
  EnrollmentTokenSchema,
} from './operator-schemas.js';
export type { PublishReleaseRequest, PublishReleaseResponse, CreateEnrollmentTokenRequest, QueueUpdateRequest, AgentView, EnrollmentTokenView } from './operator-schemas.js';
export { ManagerConfigSchema, defaultManagerConfig, readManagerConfig, resolvePath } from './manager-config.js';
export type { ManagerConfig } from './manager-config.js';
export { initManagerDirectory } from './init-manager.js';
export type { InitManagerOptions, InitializedManager } from './init-manager.js';
export { readManagerDirectory } from './manager-directory.js';
export type { ReadManagerDirectoryOptions, ManagerDirectory } from './manager-directory.js';
export { startManager } from './start-manager.js';
export type { StartManagerOptions, RunningManager } from './start-manager.js';
export { RolloutEngine } from './rollout-engine.js';
export type { RolloutEngineOptions } from './rollout-engine.js';
export { rolloutGroups } from './rollout-records.js';
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
} from './rollout-records.js';
export { defaultRolloutOptions, resolveRolloutOptions, RolloutOptionsSchema } from './rollout-options.js';
export type { RolloutOptionsInput } from './rollout-options.js';
export { planPhases, canaryRank } from './rollout-phases.js';
export type { PhasePlan } from './rollout-phases.js';
export { evaluateGate } from './rollout-gate.js';
export type { GateVerdict } from './rollout-gate.js';
export { summaryOf } from './deployment-status.js';
export type { DeploymentSummary } from './deployment-status.js';
export { shutdownReason, SHUTDOWN_REASON_MAX_CHARS } from './push-client.js';
export { activeDeploymentStatuses } from './sqlite-rollouts.js';
export { AgentRolloutRequestSchema, DeploymentEventsQuerySchema } from './operator-schemas.js';
export type { AgentRolloutRequest } from './operator-schemas.js';
