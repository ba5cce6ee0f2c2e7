import type { TSchema } from '@sinclair/typebox';
import { AgentBusyErrorSchema, AgentHealthSchema, CirisAgentHealthSchema, ShutdownRequestSchema, ShutdownResponseSchema } from './agent-endpoints.js';
import { AuditListQuerySchema, AuditListResponseSchema, AuditRecordSchema, AuditSignersSchema, AuditVerifyResponseSchema } from './audit.js';
import { AgentHealthReportSchema, CheckinHeadersSchema, CheckinParamsSchema, CheckinRequestSchema, CheckinResponseSchema, CheckinUpgradeRequiredSchema, DaemonStateSchema } from './check-in.js';
import { CommandResultSchema, CommandSchema, NoncePayloadSchema, UpdateCommandSchema } from './commands.js';
import { ErrorBodySchema } from './common.js';
import { DeploymentActionParamsSchema, DeploymentActionRequestSchema, DeploymentEventSchema, DeploymentStatusQuerySchema, DeploymentStatusResponseSchema, DeploymentStatusSchema, DeploymentTargetSchema, LatestChangelogResponseSchema, UpdateNotificationSchema, UpdateNotifyResponseSchema } from './deploy.js';
import { CredentialResponseSchema, EnrollRequestSchema, EnrollResponseSchema, InventorySchema } from './enrollment.js';
import { DownloadParamsSchema, DownloadQuerySchema, DsseEnvelopeSchema, ReleaseLatestQuerySchema, ReleaseParamsSchema, ReleasePayloadSchema, ReleaseResponseSchema, TrustPolicySchema } from './releases.js';

/** Every wire schema by name, for the JSON Schema files and the protocol reference. */
export const wireSchemas: Record<string, TSchema> = {
  DsseEnvelope: DsseEnvelopeSchema,
  ReleasePayload: ReleasePayloadSchema,
  TrustPolicy: TrustPolicySchema,
  NoncePayload: NoncePayloadSchema,
  ErrorBody: ErrorBodySchema,
  ShutdownRequest: ShutdownRequestSchema,
  ShutdownResponse: ShutdownResponseSchema,
  AgentBusyError: AgentBusyErrorSchema,
  AgentHealth: AgentHealthSchema,
  CirisAgentHealth: CirisAgentHealthSchema,
  Inventory: InventorySchema,
  EnrollRequest: EnrollRequestSchema,
  EnrollResponse: EnrollResponseSchema,
  CredentialResponse: CredentialResponseSchema,
  DaemonState: DaemonStateSchema,
  AgentHealthReport: AgentHealthReportSchema,
  CommandResult: CommandResultSchema,
  CheckinRequest: CheckinRequestSchema,
  CheckinHeaders: CheckinHeadersSchema,
  CheckinParams: CheckinParamsSchema,
  UpdateCommand: UpdateCommandSchema,
  Command: CommandSchema,
  CheckinResponse: CheckinResponseSchema,
  CheckinUpgradeRequired: CheckinUpgradeRequiredSchema,
  ReleaseLatestQuery: ReleaseLatestQuerySchema,
  ReleaseParams: ReleaseParamsSchema,
  ReleaseResponse: ReleaseResponseSchema,
  DownloadParams: DownloadParamsSchema,
  DownloadQuery: DownloadQuerySchema,
  UpdateNotification: UpdateNotificationSchema,
  UpdateNotifyResponse: UpdateNotifyResponseSchema,
  DeploymentEvent: DeploymentEventSchema,
  DeploymentTarget: DeploymentTargetSchema,
  DeploymentStatus: DeploymentStatusSchema,
  DeploymentStatusResponse: DeploymentStatusResponseSchema,
  DeploymentStatusQuery: DeploymentStatusQuerySchema,
  DeploymentActionParams: DeploymentActionParamsSchema,
  DeploymentActionRequest: DeploymentActionRequestSchema,
  LatestChangelogResponse: LatestChangelogResponseSchema,
  AuditRecord: AuditRecordSchema,
  AuditSigners: AuditSignersSchema,
  AuditListQuery: AuditListQuerySchema,
  AuditListResponse: AuditListResponseSchema,
  AuditVerifyResponse: AuditVerifyResponseSchema,
};
