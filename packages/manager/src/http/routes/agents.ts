import { CheckinHeadersSchema, CheckinParamsSchema, CheckinRequestSchema, EnrollRequestSchema, matchesSchema, wireHeaders } from '@drover/protocol';
import { AgentIdSchema, MachineIdSchema } from '@drover/protocol/internal';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { managerLimits } from '../../config.js';
import type { ManagerCore } from '../../server/core.js';
import type { AgentIdentity } from '../../store/records.js';

const CredentialHeadersSchema = Type.Object({ [wireHeaders.machineId]: MachineIdSchema });

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** The daemon-facing routes: enrollment and check-in. */
export const agentRoutes: FastifyPluginAsyncTypebox<{ core: ManagerCore }> = (app, { core }) => {
  app.post(
    '/v1/agents/enroll',
    { bodyLimit: managerLimits.enrollBodyMaxBytes, schema: { body: EnrollRequestSchema } },
    async (request, reply) => {
      const response = await core.enroll(request.body, header(request, wireHeaders.machineId));
      return reply.code(200).header('cache-control', 'no-store').send(response);
    },
  );

  // The agent the credential authenticated, per request; a WeakMap keeps it off the request type.
  const authenticated = new WeakMap<FastifyRequest, AgentIdentity>();
  // Authenticate before the body is even read: an unauthenticated peer costs no parsing. The path
  // is not validated yet: only a well-formed id is held against the credential (and a misuse
  // audited); validation refuses any other before the handler runs.
  const authenticate = async (request: FastifyRequest): Promise<void> => {
    const { agentId } = request.params as { agentId?: unknown };
    authenticated.set(request, await core.authenticateAgent(request.headers.authorization, matchesSchema(AgentIdSchema, agentId) ? agentId : undefined, header(request, wireHeaders.machineId)));
  };
  app.post(
    '/v1/agents/:agentId/checkin',
    {
      bodyLimit: managerLimits.checkinBodyMaxBytes,
      schema: { params: CheckinParamsSchema, headers: CheckinHeadersSchema, body: CheckinRequestSchema },
      onRequest: authenticate,
    },
    async (request, reply) => {
      const agent = authenticated.get(request);
      if (agent === undefined) throw new Error('check-in reached its handler unauthenticated');
      const headers = request.headers;
      const outcome = await core.checkIn(
        agent,
        { machineId: headers[wireHeaders.machineId], agentVersion: headers[wireHeaders.agentVersion], daemonVersion: headers[wireHeaders.daemonVersion] },
        request.body,
      );
      return reply.code(outcome.status).header('cache-control', 'no-store').send(outcome.body);
    },
  );

  // Credential rotation (decision 0032): the host's current credential, from its machine, gets a
  // new one, pending until its first use. No body.
  app.post(
    '/v1/agents/:agentId/credential',
    {
      bodyLimit: 1024,
      schema: { params: CheckinParamsSchema, headers: CredentialHeadersSchema },
      onRequest: authenticate,
    },
    async (request, reply) => {
      const agent = authenticated.get(request);
      if (agent === undefined) throw new Error('credential rotation reached its handler unauthenticated');
      const issued = await core.issueCredential(agent, request.headers[wireHeaders.machineId]);
      return reply.code(200).header('cache-control', 'no-store').send(issued);
    },
  );
  return Promise.resolve();
};
