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
      // Held only with nothing to report (a report is answered at once), and only while the host is there.
      const idle = request.body.acks.length === 0 && request.body.results.length === 0;
      const gone = new AbortController();
      const onClose = (): void => {
        gone.abort();
      };
      reply.raw.once('close', onClose);
      // Taken before the commands are read: a command written from now on ends the hold at once.
      const ticket = channel && idle ? core.commandSignals.ticket(agent.id) : undefined;
      try {
        let outcome = await core.checkIn(agent, checkin, request.body);
        if (ticket !== undefined && outcome.status === 200 && outcome.newCommands === 0) {
          // No new command (none, or only ones delivered before and not taken yet): held until one
          // is written, the wait ends, or the host goes away; then answered with what is pending.
          const started = Date.now();
          const held = core.holdForCommands(ticket, wait ?? 0, gone.signal);
          // Not held (full, or stopping): no header, so the daemon waits its interval.
          if (held !== undefined) {
            if ((await held) === 'signalled') outcome = await core.checkIn(agent, checkin, request.body);
            void reply.header(wireHeaders.wait, String(Math.round((Date.now() - started) / 1000)));
          }
        } else {
          ticket?.release();
          // Answered at once with a new command or a report: the channel is on, check in again now.
          if (channel && outcome.status === 200) void reply.header(wireHeaders.wait, '0');
        }
        return await reply.code(outcome.status).header('cache-control', 'no-store').send(outcome.body);
      } finally {
        ticket?.release();
        reply.raw.off('close', onClose);
      }
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
