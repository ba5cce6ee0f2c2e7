import { issueNonce } from '@drover/protocol';
import type { UpdateCommand } from '@drover/protocol';
import type { Actor, ManagerContext } from './context.js';
import { managerLimits } from './config.js';
import { ManagerError } from './errors.js';
import { downloadPath, versionKey } from './release-catalog.js';
import { newId } from './secrets.js';

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
}

/**
 * Queues an update command for one agent: issues an update nonce signed with the manager key
 * (bound to this agent, its machine, this deployment and the from/to versions), stores the
 * command and the nonce together, and audits it. The command is then delivered on every check-in
 * until the daemon acks it.
 */
export async function queueUpdate(ctx: ManagerContext, input: QueueUpdateInput, actor: Actor): Promise<UpdateCommand> {
  const agent = await ctx.store.getAgent(input.agentId);
  if (agent === undefined) throw new ManagerError('AGENT_NOT_FOUND', `No agent has id ${input.agentId.slice(0, 128)}. List the agents with \`drover agents list\`.`);
  const platform = input.platform ?? agent.platform;
  const release = await ctx.store.getRelease(input.artifact, versionKey(input.version), platform);
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
  const path = downloadPath(release);
  const url = ctx.settings.routePrefix + (ctx.settings.presignDownloads ? ctx.urlSigner.presign(path, { ttlSeconds: deadlineSeconds, now }).url : path);
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
  };
  await ctx.store.insertCommand(
    { id: commandId, agentId: agent.id, type: 'update', deploymentId: input.deploymentId, body: command, createdAt: now },
    {
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
  );
  await ctx.audit.append({
    event: 'command.queued',
    actor: actor.name,
    tokenId: actor.tokenId,
    agentId: agent.id,
    deploymentId: input.deploymentId,
    outcome: 'success',
    details: { commandId, type: 'update', nonceId: payload.nonceId, artifact: input.artifact, fromVersion, toVersion: release.version, rollback, platform },
  });
  ctx.logger.info({ event: 'command.queued', agentId: agent.id, deploymentId: input.deploymentId, commandId }, 'update command queued');
  return command;
}
