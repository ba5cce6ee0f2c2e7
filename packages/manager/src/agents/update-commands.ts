import { issueNonce } from '@drover/protocol';
import { AgentIdSchema } from '@drover/protocol/internal';
import type { UpdateCommand } from '@drover/protocol';
import type { Actor, ManagerContext } from '../context.js';
import { managerLimits } from '../config.js';
import { ManagerError } from '../errors.js';
import { echo } from '../presented.js';
import { downloadPath, versionKey } from '../releases/catalog.js';
import { newId } from '../secrets.js';
import type { AgentRecord, NewCommand, NewNonce, PendingAuditRecord, ReleaseRecord } from '../store/records.js';

export interface QueueUpdateInput {
  agentId: string;
  /** The deployment this update belongs to (the rollout engine's id; any id for a manual update). */
  deploymentId: string;
  artifact: 'agent' | 'daemon';
  /** A published version of the artifact. */
  version: string;
  /** Defaults to the agent's own platform. */
  platform?: string | undefined;
  /** True only for a signed rollback: the daemon then accepts a version below the running one. */
  rollback?: boolean | undefined;
  force?: boolean | undefined;
  drainTimeoutSeconds?: number | undefined;
  /** Seconds the daemon has to commit the update (default one hour). */
  deadlineSeconds?: number | undefined;
  /**
   * Seconds the daemon may keep deferring the update for a busy agent, from its first deferral
   * (then it reports failed DEFERRAL_WINDOW_EXPIRED); undefined: bounded by the deadline only.
   */
  deferralWindowSeconds?: number | undefined;
}

/** An update command built and signed, not stored yet: what the rollout engine writes in batches. */
export interface BuiltUpdate {
  command: UpdateCommand;
  record: NewCommand;
  nonce: NewNonce;
  fromVersion: string;
  toVersion: string;
  platform: string;
}

/**
 * Where the command sends the daemon for the bytes. An object store that presigns (S3): a SigV4
 * GET of the blob itself, valid until the command's deadline (the daemon downloads first thing, and
 * an update past its deadline fails anyway), so the bytes never pass through the manager. Else the
 * manager's download route, presigned with its own HMAC when `presignDownloads` is set. Either
 * way the daemon checks length and SHA-256 against the signed manifest, never trusting the URL.
 */
async function commandDownloadUrl(ctx: ManagerContext, release: ReleaseRecord, deadlineSeconds: number, now: Date): Promise<string> {
  if (ctx.blobs.downloadUrl !== undefined) return (await ctx.blobs.downloadUrl(release.file.sha256, { ttlSeconds: deadlineSeconds, now })).url;
  const path = downloadPath(release);
  return ctx.settings.routePrefix + (ctx.settings.presignDownloads ? ctx.urlSigner.presign(path, { ttlSeconds: deadlineSeconds, now }).url : path);
}

/**
 * Builds an update command for one agent, with its update nonce signed by the manager key (bound
 * to this agent, its machine, this deployment and the from/to versions); stores nothing.
 */
export async function buildUpdate(ctx: ManagerContext, input: QueueUpdateInput, known?: { agent?: AgentRecord | undefined; release?: ReleaseRecord | undefined }): Promise<BuiltUpdate> {
  const agent = known?.agent ?? (await ctx.store.getAgent(input.agentId));
  if (agent === undefined) throw new ManagerError('AGENT_NOT_FOUND', `No agent has id ${echo(input.agentId, AgentIdSchema, '(the given id)')}. List the agents with \`drover agents list\`.`);
  const platform = input.platform ?? agent.platform;
  const release = known?.release ?? (await ctx.store.getRelease(input.artifact, versionKey(input.version), platform));
  if (release === undefined) {
    throw new ManagerError('RELEASE_NOT_FOUND', `No ${input.artifact} release ${input.version} for ${platform} is registered. Publish it with \`drover release publish\`.`);
  }
  if (release.state !== 'published') {
    throw new ManagerError('RELEASE_NOT_UPLOADED', `${input.artifact} ${input.version} for ${platform} is registered but its artifact was not uploaded yet. Finish \`drover release publish\`.`);
  }
  const now = ctx.now();
  const deadlineSeconds = input.deadlineSeconds ?? managerLimits.updateDeadlineSeconds;
  const commandId = newId('cmd');
  const fromVersion = input.artifact === 'agent' ? agent.agentVersion : agent.daemonVersion;
  const rollback = input.rollback ?? false;
  // replay, stolen command: the nonce names this agent, machine, deployment and versions, and is single use.
  const { token, payload } = issueNonce(
    {
      agentId: agent.id,
      machineId: agent.machineId,
      deploymentId: input.deploymentId,
      artifact: input.artifact,
      fromVersion,
      toVersion: release.version,
      rollback,
      ttlSeconds: deadlineSeconds + managerLimits.nonceGraceSeconds,
      now,
    },
    ctx.managerKey,
  );
  const url = await commandDownloadUrl(ctx, release, deadlineSeconds, now);
  const command: UpdateCommand = {
    id: commandId,
    type: 'update',
    artifact: input.artifact,
    release: release.envelope as unknown as UpdateCommand['release'],
    url,
    nonce: token,
    force: input.force ?? false,
    drainTimeoutSeconds: input.drainTimeoutSeconds ?? managerLimits.drainTimeoutSeconds,
    deadline: new Date(now.getTime() + deadlineSeconds * 1000).toISOString(),
    // Sent only when set, so a manual update's command is what it was before the field existed.
    ...(input.deferralWindowSeconds === undefined ? {} : { deferralWindowSeconds: input.deferralWindowSeconds }),
  };
  return {
    command,
    record: { id: commandId, agentId: agent.id, type: 'update', deploymentId: input.deploymentId, body: command, createdAt: now },
    nonce: {
      id: payload.nonceId,
      agentId: agent.id,
      machineId: agent.machineId,
      commandId,
      deploymentId: input.deploymentId,
      artifact: input.artifact,
      fromVersion,
      toVersion: release.version,
      rollback,
      token,
      issuedAt: new Date(payload.iat * 1000),
      expiresAt: new Date(payload.exp * 1000),
    },
    fromVersion,
    toVersion: release.version,
    platform,
  };
}

/** The audit record of a queued update command, written with it. */
export function queuedAudit(ctx: ManagerContext, built: BuiltUpdate, actor: Actor): PendingAuditRecord {
  return ctx.audit.entry({
    event: 'command.queued',
    actor: actor.name,
    tokenId: actor.tokenId,
    agentId: built.record.agentId,
    deploymentId: built.nonce.deploymentId,
    outcome: 'success',
    details: {
      commandId: built.record.id,
      type: 'update',
      nonceId: built.nonce.id,
      artifact: built.nonce.artifact,
      fromVersion: built.fromVersion,
      toVersion: built.toVersion,
      rollback: built.nonce.rollback,
      platform: built.platform,
    },
  });
}

/**
 * Queues an update command for one agent: issues an update nonce signed with the manager key
 * (bound to this agent, its machine, this deployment and the from/to versions), stores the
 * command and the nonce together, and audits it. The command is then delivered on every check-in
 * until the daemon acks it.
 */
export async function queueUpdate(ctx: ManagerContext, input: QueueUpdateInput, actor: Actor): Promise<UpdateCommand> {
  const built = await buildUpdate(ctx, input);
  await ctx.store.insertCommand(built.record, built.nonce, [queuedAudit(ctx, built, actor)]);
  await ctx.audit.flush();
  ctx.logger.info({ event: 'command.queued', agentId: built.record.agentId, deploymentId: input.deploymentId, commandId: built.record.id }, 'update command queued');
  return built.command;
}
