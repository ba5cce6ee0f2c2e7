// Type-only imports: users who never mount the plugin need no fastify at run time (an optional peer).
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify';
import type { Agent } from './agent.js';
import { readNodeBody } from './body.js';
import type { BodyRead } from './body.js';
import { HEALTH_PATH, SHUTDOWN_PATH } from './config.js';
import { errorResponse } from './response.js';
import type { AgentResponse } from './response.js';

export interface DroverAgentPluginOptions {
  agent: Agent;
}

const kBody = Symbol('drover.agent.body');
interface TaggedBody {
  [kBody]: BodyRead;
}

function isTagged(value: unknown): value is TaggedBody {
  return typeof value === 'object' && value !== null && kBody in value;
}

function reply(res: FastifyReply, response: AgentResponse): FastifyReply {
  const sent = response.sent;
  if (sent !== undefined) {
    res.raw.once('finish', sent);
    res.raw.once('close', sent);
  }
  return res.code(response.status).headers(response.headers).send(response.body);
}

// The registered route, whatever prefix the plugin was mounted under.
function agentPath(request: FastifyRequest): string {
  const url = request.routeOptions.url ?? request.url;
  return url.endsWith(SHUTDOWN_PATH) ? SHUTDOWN_PATH : url.endsWith(HEALTH_PATH) ? HEALTH_PATH : url;
}

/**
 * A Fastify plugin serving the agent's routes. It replaces Fastify's body parsing inside its own
 * (encapsulated) scope so bodies, limits and error bodies follow drover's contract; your routes
 * keep theirs.
 *
 * @example
 * const app = Fastify()
 * await app.register(droverAgentPlugin, { agent })
 * await app.listen({ port: 8080 })
 */
export function droverAgentPlugin(fastify: FastifyInstance, options: DroverAgentPluginOptions, done: (error?: Error) => void): void {
  const { agent } = options;

  // Every content type (and none) is read the same way, with drover's limit, as raw bytes.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', (request, payload, parsed) => {
    readNodeBody(payload, request.headers['content-length']).then(
      (read) => {
        parsed(null, { [kBody]: read ?? {} } satisfies TaggedBody);
      },
      (error: unknown) => {
        parsed(error as Error, undefined);
      },
    );
  });

  const handler = async (request: FastifyRequest, res: FastifyReply): Promise<FastifyReply> => {
    const read = isTagged(request.body) ? request.body[kBody] : {};
    const response = await agent.handle({ method: request.method, path: agentPath(request), headers: request.headers, remoteAddress: request.ip, ...read });
    return reply(res, response);
  };

  // Fastify's own refusals in this scope (an unparseable Content-Type, say) go through the core as
  // a request without a usable body, so authentication still comes first and the body is drover's.
  fastify.setErrorHandler(async (error: FastifyError, request, res) => {
    // Anything may be thrown, so the code is read as unknown, not trusted to be Fastify's string.
    const code: unknown = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('FST_ERR_CTP_')) {
      const tooLarge = code === 'FST_ERR_CTP_BODY_TOO_LARGE';
      const response = await agent.handle({ method: request.method, path: agentPath(request), headers: request.headers, remoteAddress: request.ip, bodyTooLarge: tooLarge });
      return reply(res, response);
    }
    return reply(res, errorResponse('INTERNAL_ERROR', 'The agent failed to handle the request; see its log.'));
  });

  fastify.all(SHUTDOWN_PATH, handler);
  fastify.all(HEALTH_PATH, handler);
  done();
}

/**
 * Requires the agent's service token on a route of your own, as a Fastify `preHandler`.
 *
 * @example
 * app.post('/admin/reload', { preHandler: requireServiceTokenFastify(agent) }, reload)
 */
export function requireServiceTokenFastify(agent: Agent): preHandlerHookHandler {
  return function guard(request, res, next) {
    const refused = agent.requireServiceToken({ method: request.method, path: request.url.split('?', 1)[0] ?? '', headers: request.headers, remoteAddress: request.ip });
    if (refused === undefined) {
      next();
      return;
    }
    // Replying without calling `next` ends the request here (Fastify's early-response pattern).
    void reply(res, refused);
  };
}
