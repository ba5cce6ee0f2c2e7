import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Agent } from './agent.js';
import { readNodeBody } from './body.js';
import type { BodyRead } from './body.js';
import { HEALTH_PATH, SHUTDOWN_PATH } from './config.js';
import { errorResponse } from './response.js';
import type { AgentResponse } from './response.js';

/** The options of {@link droverAgentPlugin}. */
export interface DroverAgentPluginOptions {
  /** The agent whose routes the plugin serves, from {@link createAgent}. */
  agent: Agent;
}

// fastify is an optional peer dependency, so nothing here, and nothing in the emitted .d.ts, imports
// its types: an agent author who compiles without fastify installed (skipLibCheck off) must not get
// "Cannot find module 'fastify'". These are the parts of Fastify (4 and 5) the plugin uses, written
// out structurally; a real FastifyInstance, FastifyRequest and FastifyReply fit them, which
// fastify-plugin.test.ts and test/packaging check by compiling against the real thing.

/** The parts of a Fastify request the plugin reads. */
export interface FastifyRequestLike {
  method: string;
  url: string;
  ip: string;
  headers: IncomingHttpHeaders;
  body: unknown;
  routeOptions: { url?: string | undefined };
}

/** The parts of a Fastify reply the plugin writes to. */
export interface FastifyReplyLike {
  raw: { once(event: 'finish' | 'close', listener: () => void): unknown };
  code(statusCode: number): FastifyReplyLike;
  headers(values: Record<string, string>): FastifyReplyLike;
  send(payload?: unknown): FastifyReplyLike;
}

/** The parts of a Fastify instance the plugin registers itself with. */
export interface FastifyInstanceLike {
  removeAllContentTypeParsers(): unknown;
  addContentTypeParser(
    contentType: string,
    parser: (request: FastifyRequestLike, payload: Readable, done: (error: Error | null, body?: unknown) => void) => void,
  ): unknown;
  setErrorHandler(handler: (error: Error, request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<FastifyReplyLike>): unknown;
  all(path: string, handler: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<FastifyReplyLike>): unknown;
}

/** A Fastify `preHandler` hook (callback style). */
export type FastifyPreHandlerLike = (request: FastifyRequestLike, reply: FastifyReplyLike, done: (error?: Error) => void) => void;

const kBody = Symbol('drover.agent.body');
interface TaggedBody {
  [kBody]: BodyRead;
}

function isTagged(value: unknown): value is TaggedBody {
  return typeof value === 'object' && value !== null && kBody in value;
}

function reply(res: FastifyReplyLike, response: AgentResponse): FastifyReplyLike {
  const sent = response.sent;
  if (sent !== undefined) {
    res.raw.once('finish', sent);
    res.raw.once('close', sent);
  }
  return res.code(response.status).headers(response.headers).send(response.body);
}

// The registered route, whatever prefix the plugin was mounted under.
function agentPath(request: FastifyRequestLike): string {
  const url = request.routeOptions.url ?? request.url;
  return url.endsWith(SHUTDOWN_PATH) ? SHUTDOWN_PATH : url.endsWith(HEALTH_PATH) ? HEALTH_PATH : url;
}

/**
 * A Fastify plugin serving the agent's routes. It replaces Fastify's body parsing inside its own
 * (encapsulated) scope so bodies, limits and error bodies follow drover's contract; your routes
 * keep theirs.
 *
 * @example
 * ```ts
 * const app = Fastify()
 * await app.register(droverAgentPlugin, { agent })
 * await app.listen({ port: 8080 })
 * ```
 */
export function droverAgentPlugin(fastify: FastifyInstanceLike, options: DroverAgentPluginOptions, done: (error?: Error) => void): void {
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

  const handler = async (request: FastifyRequestLike, res: FastifyReplyLike): Promise<FastifyReplyLike> => {
    const read = isTagged(request.body) ? request.body[kBody] : {};
    const response = await agent.handle({ method: request.method, path: agentPath(request), headers: request.headers, remoteAddress: request.ip, ...read });
    return reply(res, response);
  };

  // Fastify's own refusals in this scope (an unparseable Content-Type, say) go through the core as
  // a request without a usable body, so authentication still comes first and the body is drover's.
  fastify.setErrorHandler(async (error, request, res) => {
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
 * ```ts
 * app.post('/admin/reload', { preHandler: requireServiceTokenFastify(agent) }, reload)
 * ```
 */
export function requireServiceTokenFastify(agent: Agent): FastifyPreHandlerLike {
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
