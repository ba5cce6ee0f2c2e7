import { CheckinHeadersSchema, CheckinParamsSchema, CheckinRequestSchema, EnrollRequestSchema, matchesSchema, wireHeaders } from '@drover/protocol';
import { AgentIdSchema, MachineIdSchema } from '@drover/protocol/internal';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { managerLimits } from '../../config.js';
import { ManagerError } from '../../errors.js';
import type { ManagerCore } from '../../server/core.js';
import type { AgentIdentity } from '../../store/records.js';

// What a 503 CHANNEL_FULL asks the daemon to wait before holding a check-in again.
const CHANNEL_RETRY_SECONDS = 30;

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
      const checkin = { machineId: headers[wireHeaders.machineId], agentVersion: headers[wireHeaders.agentVersion], daemonVersion: headers[wireHeaders.daemonVersion] };
      const wait = headers[wireHeaders.wait] === undefined ? undefined : Number(headers[wireHeaders.wait]);
      const channel = wait !== undefined && core.context.settings.channelMaxHeld > 0;
      // The channel is full: refused before anything is recorded, so the daemon checks in again,
      // without waiting, after Retry-After (decision 0041).
      if (channel && core.commandSignals.full && !core.closing) {
        void reply.header(wireHeaders.retryAfter, String(CHANNEL_RETRY_SECONDS));
        throw new ManagerError('CHANNEL_FULL', `This manager holds ${core.commandSignals.maxHeld} check-ins already: check in without ${wireHeaders.wait} until Retry-After has passed.`);
      }
      let outcome = await core.checkIn(agent, checkin, request.body);
      if (channel && outcome.status === 200 && outcome.body.commands.length === 0) {
        // No command yet: held until one may be waiting, the wait ends, or the host goes away.
        const gone = new AbortController();
        const onClose = (): void => {
          gone.abort();
        };
        reply.raw.once('close', onClose);
        const started = Date.now();
        const held = core.holdForCommands(agent.id, wait, gone.signal);
        if (held !== undefined) {
          const end = await held;
          reply.raw.off('close', onClose);
          if (end === 'signalled') outcome = await core.checkIn(agent, checkin, { ...request.body, acks: [], results: [] });
          reply.header(wireHeaders.wait, String(Math.round((Date.now() - started) / 1000)));
        } else reply.raw.off('close', onClose);
      }
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
