import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { managerLimits } from '../../config.js';
import { ManagerError } from '../../errors.js';
import type { ManagerCore } from '../../server/core.js';
import { operatorAccess } from '../operator-auth.js';
import {
  AgentImportRequestSchema,
  AgentParamsSchema,
  AgentRolloutRequestSchema,
  CreateEnrollmentTokenRequestSchema,
  ListAgentsQuerySchema,
  QueueUpdateRequestSchema,
  TokenIdParamsSchema,
} from '../operator-schemas.js';
import type { AgentView, EnrollmentTokenView, FleetAgentView } from '../operator-schemas.js';
import { newId } from '../../secrets.js';
import type { AgentRecord, EnrollmentTokenRecord } from '../../store/records.js';

/** An agent as the operator API shows it: no credential hash, no service token. */
export function agentView(agent: AgentRecord): AgentView {
  return {
    agentId: agent.id,
    machineId: agent.machineId,
    hostname: agent.hostname,
    platform: agent.platform,
    arch: agent.arch,
    agentVersion: agent.agentVersion,
    daemonVersion: agent.daemonVersion,
    enrolledAt: agent.enrolledAt.toISOString(),
    credentialIssuedAt: agent.credentialIssuedAt.toISOString(),
    lastCheckinAt: agent.lastCheckinAt?.toISOString() ?? null,
    health: agent.health ?? null,
    update: agent.update ?? null,
    revokedAt: agent.revokedAt?.toISOString() ?? null,
  };
}

export function enrollmentTokenView(token: EnrollmentTokenRecord): EnrollmentTokenView {
  return {
    tokenId: token.id,
    seats: token.seats,
    used: token.used,
    createdAt: token.createdAt.toISOString(),
    expiresAt: token.expiresAt.toISOString(),
    revokedAt: token.revokedAt?.toISOString() ?? null,
    createdBy: token.createdBy,
    note: token.note ?? null,
  };
}

/** The operator API: agents (viewer reads; admin removes, regroups, imports, commands) and enrollment tokens (admin). */
export const operatorRoutes: FastifyPluginAsyncTypebox<{ core: ManagerCore }> = (app, { core }) => {
  const { allow, operatorOf } = operatorAccess(core.context);
  const viewer = allow({ role: 'viewer' });
  const admin = allow({ role: 'admin' });

  app.get('/v1/agents', { ...viewer, schema: { querystring: ListAgentsQuerySchema } }, async (request) => {
    const limit = request.query.limit === undefined ? 100 : Math.min(Number(request.query.limit), managerLimits.listAgentsMax);
    const { after, q, group, version, health } = request.query;
    const filter = { q, group, version, health };
    const agents = await core.listAgents({ ...filter, limit: Math.max(1, limit), after });
    const last = agents.at(-1);
    const details = new Map((await core.context.store.listFleetDetails(agents.map((a) => a.id))).map((d) => [d.agentId, d]));
    const listed = agents.map((agent): FleetAgentView => {
      const { group, pendingCommand: command } = details.get(agent.id) ?? {};
      return {
        ...agentView(agent),
        group: group ?? null,
        pendingCommand:
          command === undefined
            ? null
            : { id: command.id, type: command.type, deploymentId: command.deploymentId ?? null, createdAt: command.createdAt.toISOString(), deliveredCount: command.deliveredCount },
      };
    });
    return { agents: listed, next: agents.length === Math.max(1, limit) && last !== undefined ? last.id : null, total: await core.context.store.countAgents(filter) };
  });

  app.get('/v1/agents/:agentId', { ...viewer, schema: { params: AgentParamsSchema } }, async (request) => {
    const agent = await core.getAgent(request.params.agentId);
    if (agent === undefined) throw new ManagerError('AGENT_NOT_FOUND', `No agent has id ${request.params.agentId}. List the agents with \`drover agents list\`.`);
    const commands = await core.listCommands(agent.id);
    const rollout = await core.context.store.getAgentRolloutSettings(agent.id);
    return {
      agent: agentView(agent),
      // Its canary group and push-mode URL (`drover agents set-group`, PUT /v1/agents/{agentId}/rollout).
      rollout: { group: rollout?.group ?? null, pushUrl: rollout?.pushUrl ?? null },
      commands: commands.map((c) => ({
        id: c.id,
        type: c.type,
        deploymentId: c.deploymentId ?? null,
        createdAt: c.createdAt.toISOString(),
        deliveredCount: c.deliveredCount,
        ackedAt: c.ackedAt?.toISOString() ?? null,
        outcome: c.outcome ?? null,
        outcomeDetail: c.outcomeDetail ?? null,
      })),
    };
  });

  // Removes a host: its credential is refused from then on (AGENT_REVOKED). Idempotent.
  app.delete('/v1/agents/:agentId', { ...admin, schema: { params: AgentParamsSchema } }, async (request) => {
    const agent = await core.revokeAgent(request.params.agentId, operatorOf(request));
    return { agent: agentView(agent) };
  });

  app.post(
    '/v1/agents/:agentId/commands',
    { bodyLimit: managerLimits.adminBodyMaxBytes, ...admin, schema: { params: AgentParamsSchema, body: QueueUpdateRequestSchema } },
    async (request, reply) => {
      const command = await core.queueUpdate({ ...request.body, agentId: request.params.agentId, deploymentId: request.body.deploymentId ?? newId('manual') }, operatorOf(request));
      return reply.code(201).send(command);
    },
  );

  // `drover agents import` (decision 0036): every agent or none; the tokens arrive in clear over the
  // operator's connection (TLS in production) and are stored only re-encrypted.
  app.post('/v1/agents/import', { bodyLimit: managerLimits.importBodyMaxBytes, ...admin, schema: { body: AgentImportRequestSchema } }, async (request, reply) => {
    const imported = await core.importAgents(request.body, operatorOf(request));
    return reply.code(201).header('cache-control', 'no-store').send({ imported });
  });

  app.put(
    '/v1/agents/:agentId/rollout',
    { bodyLimit: managerLimits.adminBodyMaxBytes, ...admin, schema: { params: AgentParamsSchema, body: AgentRolloutRequestSchema } },
    async (request) => {
      const current = await core.context.store.getAgentRolloutSettings(request.params.agentId);
      if (current === undefined) throw new ManagerError('AGENT_NOT_FOUND', `No agent has id ${request.params.agentId}. List the agents with \`drover agents list\`.`);
      const group = request.body.group === undefined ? current.group : (request.body.group ?? undefined);
      const pushUrl = request.body.pushUrl === undefined ? current.pushUrl : (request.body.pushUrl ?? undefined);
      await core.setAgentRollout(request.params.agentId, { group, pushUrl }, operatorOf(request));
      return { agentId: request.params.agentId, group: group ?? null, pushUrl: pushUrl ?? null };
    },
  );

  app.post(
    '/v1/enrollment-tokens',
    { bodyLimit: managerLimits.adminBodyMaxBytes, ...admin, schema: { body: CreateEnrollmentTokenRequestSchema } },
    async (request, reply) => {
      const { token, record } = await core.createEnrollmentToken(request.body, operatorOf(request));
      return reply.code(201).header('cache-control', 'no-store').send({ token, ...enrollmentTokenView(record) });
    },
  );

  app.get('/v1/enrollment-tokens', { ...admin }, async () => ({ tokens: (await core.listEnrollmentTokens()).map(enrollmentTokenView) }));

  app.delete('/v1/enrollment-tokens/:tokenId', { ...admin, schema: { params: TokenIdParamsSchema } }, async (request, reply) => {
    await core.revokeEnrollmentToken(request.params.tokenId, operatorOf(request));
    return reply.code(204).send();
  });
  return Promise.resolve();
};
