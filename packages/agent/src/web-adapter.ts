import type { Agent } from './agent.js';
import { readWebBody } from './body.js';
import { limits } from './config.js';
import { errorResponse } from './response.js';
import type { AgentResponse } from './response.js';

/** A Web `Request -> Response` handler (Hono, Bun.serve, Deno.serve, any fetch-style server). */
export type WebHandler = (request: Request) => Promise<Response>;
/** Guards a route of your own: undefined when the service token matches, else the 401 to return. */
export type WebGuard = (request: Request) => Response | undefined;

function pathOf(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return url.split('?', 1)[0] ?? url;
  }
}

// fromEntries defines own properties, so a header named `__proto__` stays a plain header.
function headersOf(request: Request): Record<string, string> {
  return Object.fromEntries(request.headers.entries());
}

function toWebResponse(response: AgentResponse, method: string): Response {
  // A HEAD answer carries the headers of the GET, not its body.
  return new Response(method === 'HEAD' ? null : response.body, { status: response.status, headers: response.headers });
}

/**
 * A Web `Request -> Response` handler for the agent's routes; any other path gets the agent's 404,
 * so mount it on the two routes (or on `/v1/system/*` when nothing else lives there).
 *
 * @example
 * ```ts
 * const drover = createWebHandler(agent)
 * app.on(['GET', 'POST'], ['/v1/system/health', '/v1/system/shutdown'], (c) => drover(c.req.raw)) // Hono
 * Bun.serve({ port: 8080, fetch: drover })                                                        // Bun
 * ```
 */
export function createWebHandler(agent: Agent): WebHandler {
  return async (request) => {
    try {
      const path = pathOf(request.url);
      // An unreadable body (the client went away) reaches the core as none: auth still comes first.
      const read = (await readWebBody(request)) ?? {};
      const response = await agent.handle({ method: request.method, path, headers: headersOf(request), ...read });
      const sent = response.sent;
      // The runtime writes the Response after we return it and does not say when it is done, so
      // the shutdown proceeds after a short grace; `onShutdown` closing the server also waits for
      // in-flight responses.
      if (sent !== undefined) setTimeout(sent, limits.webResponseGraceMs);
      return toWebResponse(response, request.method);
    } catch {
      return toWebResponse(errorResponse('INTERNAL_ERROR', 'The agent failed to handle the request; see its log.'), request.method);
    }
  };
}

/**
 * Requires the agent's service token on a route of your own.
 *
 * @example
 * ```ts
 * const guard = requireServiceTokenWeb(agent)
 * app.post('/admin/reload', (c) => guard(c.req.raw) ?? reload(c)) // Hono
 * ```
 */
export function requireServiceTokenWeb(agent: Agent): WebGuard {
  return (request) => {
    const refused = agent.requireServiceToken({ method: request.method, path: pathOf(request.url), headers: headersOf(request) });
    return refused === undefined ? undefined : toWebResponse(refused, request.method);
  };
}
