import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Agent } from './agent.js';
import { readNodeBody } from './body.js';
import type { BodyRead } from './body.js';
import { limits } from './config.js';
import { errorResponse } from './response.js';
import type { AgentResponse } from './response.js';

/** Answers the agent's routes; returns false, without touching the request, for any other path. */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => boolean;
/** Connect/Express-style middleware: the agent's routes are answered, anything else goes to `next`. */
export type NodeMiddleware = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;
/** Guards a route of your own: true when the service token matches (and `next` is called), else a 401 is written. */
export type NodeGuard = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => boolean;

/** The options of {@link createNodeHandler}. */
export interface NodeHandlerOptions {
  /** true (default): other paths return false, for your own routes. false: they get the agent's 404. */
  fallthrough?: boolean | undefined;
}

// An absolute-form target (`GET http://host/path`, as sent to proxies) names its path after the authority.
function pathOf(url: string | undefined): string {
  const target = url ?? '/';
  if (target.startsWith('/')) return target.split('?', 1)[0] ?? '/';
  try {
    return new URL(target).pathname;
  } catch {
    return target;
  }
}

// Writes a core response; `sent` fires once the bytes are handed to the socket, or the socket is gone.
export function writeNodeResponse(res: ServerResponse, response: AgentResponse): void {
  const sent = response.sent;
  if (res.headersSent || res.destroyed) {
    sent?.();
    return;
  }
  if (sent !== undefined) {
    res.once('finish', sent);
    res.once('close', sent);
  }
  res.writeHead(response.status, { ...response.headers, 'content-length': String(Buffer.byteLength(response.body)) });
  res.end(response.body);
}

// Express and similar frameworks may have read the body already; what they parsed is used then.
function alreadyRead(req: IncomingMessage): BodyRead | undefined {
  if (!req.readableEnded) return undefined;
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  if (parsed === undefined || parsed === null) return {};
  // JSON.stringify gives undefined for a value JSON cannot hold (a function): no usable body then.
  const body = typeof parsed === 'string' || parsed instanceof Uint8Array ? parsed : (JSON.stringify(parsed) as string | undefined);
  if (body === undefined) return {};
  // endless data: a framework's parser has its own, larger limit (express.json: 100 kB); drover's holds.
  const bytes = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  return bytes > limits.maxBodyBytes ? { bodyTooLarge: true } : { body };
}

async function serve(agent: Agent, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  try {
    const read = alreadyRead(req) ?? (await readNodeBody(req, req.headers['content-length']));
    if (read === undefined) return; // the client went away mid-body: nobody to answer
    const response = await agent.handle({ method: req.method ?? '', path, headers: req.headers, remoteAddress: req.socket.remoteAddress, ...read });
    writeNodeResponse(res, response);
  } catch {
    // agent.handle never throws; this stops a transport failure from becoming an unhandled rejection.
    writeNodeResponse(res, errorResponse('INTERNAL_ERROR', 'The agent failed to handle the request; see its log.'));
  }
}

/**
 * A `node:http` request handler for the agent's routes. Returns true when it took the request
 * (it answers asynchronously), false when the path is not the agent's so you can route it.
 *
 * @example
 * ```ts
 * const drover = createNodeHandler(agent)
 * http.createServer((req, res) => {
 *   if (drover(req, res)) return
 *   res.writeHead(404).end()
 * }).listen(8080)
 * ```
 */
export function createNodeHandler(agent: Agent, options: NodeHandlerOptions = {}): NodeHandler {
  const fallthrough = options.fallthrough ?? true;
  return (req, res) => {
    const path = pathOf(req.url);
    if (fallthrough && !agent.handles(path)) return false;
    void serve(agent, req, res, path);
    return true;
  };
}

/**
 * The same handler as Connect/Express middleware. Mount it before any body parser (if one ran
 * first, what it parsed is used).
 *
 * @example
 * ```ts
 * app.use(createNodeMiddleware(agent))
 * ```
 */
export function createNodeMiddleware(agent: Agent): NodeMiddleware {
  const handler = createNodeHandler(agent);
  return (req, res, next) => {
    if (!handler(req, res)) next();
  };
}

/**
 * Requires the agent's service token on a route of your own (`node:http` or Connect/Express).
 *
 * @example
 * ```ts
 * const guard = requireServiceTokenNode(agent)
 * app.post('/admin/reload', guard, reload)               // as middleware
 * if (!guard(req, res)) return                           // or inline: a 401 was written
 * ```
 */
export function requireServiceTokenNode(agent: Agent): NodeGuard {
  return (req, res, next) => {
    const refused = agent.requireServiceToken({ method: req.method ?? '', path: pathOf(req.url), headers: req.headers, remoteAddress: req.socket.remoteAddress });
    if (refused !== undefined) {
      writeNodeResponse(res, refused);
      return false;
    }
    next?.();
    return true;
  };
}
