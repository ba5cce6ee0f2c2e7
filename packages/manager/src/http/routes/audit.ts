import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AuditListQuerySchema } from '@drover/protocol';
import type { AuditListResponse, AuditVerifyResponse } from '@drover/protocol';
import type { ManagerCore } from '../../server/core.js';
import { operatorAccess } from '../operator-auth.js';

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;

/**
 * The audit read API (the web console's audit and host pages): recent records and the chain's
 * verdict. The operator role, not viewer: the records hold no secret (the writer's rule), but they
 * name people, their tokens' ids and every refusal, which a read-only dashboard does not need; and
 * verifying the whole chain is CPU work (one signature check per record) a viewer should not be
 * able to start at will. Operators steer rollouts and need to see who did what to one.
 */
export const auditRoutes: FastifyPluginAsyncTypebox<{ core: ManagerCore }> = (app, { core }) => {
  const { allow } = operatorAccess(core.context);
  const operator = allow({ role: 'operator' });
  const reader = core.context.audit.reader;

  app.get('/manager/v1/audit', { ...operator, schema: { querystring: AuditListQuerySchema } }, async (request, reply) => {
    const { limit, before, agent_id: agentId, actor, event } = request.query;
    const page = await reader.page({
      limit: Math.min(limit === undefined ? DEFAULT_LIMIT : Number(limit), MAX_LIMIT),
      before: before === undefined ? undefined : Number(before),
      filter: { agentId, actor, event },
    });
    return reply.header('cache-control', 'no-store').send(page satisfies AuditListResponse);
  });

  app.get('/manager/v1/audit/verify', { ...operator }, async (_request, reply) =>
    reply.header('cache-control', 'no-store').send((await reader.verify()) satisfies AuditVerifyResponse),
  );
  return Promise.resolve();
};
