import { parseBearer, tokenId, verifyServiceToken } from '@drover/protocol';
import type { FastifyInstance } from 'fastify';
import { ManagerError } from '../errors.js';
import type { ManagerCore } from '../server/core.js';
import { checkinOutcome, statusClass } from './manager-metrics.js';

const CHECKIN_ROUTE = '/v1/agents/:agentId/checkin';

function anyMatches(presented: string, tokens: readonly string[]): boolean {
  // timing: every configured token is compared, in constant time, whichever matches.
  let found = false;
  for (const token of tokens) found = verifyServiceToken(presented, token) || found;
  return found;
}

/**
 * GET /metrics (Prometheus text format), for the metrics token or an admin token; and the hook
 * that times every request of the manager's routes. A refused token is audited by its id, as on
 * the operator routes; a scrape is not (one every few seconds would bury the audit log).
 */
export function metricsRoutes(app: FastifyInstance, core: ManagerCore): void {
  const metrics = core.metrics;
  app.addHook('onResponse', (request, reply, done) => {
    // The route template, never the URL: no host id, deployment id or query string in a label.
    const template = request.routeOptions.url;
    const route = template === undefined ? 'unmatched' : template;
    metrics.httpRequest.observe({ route, method: request.method, status_class: statusClass(reply.statusCode) }, reply.elapsedTime / 1000);
    if (template !== undefined && template.endsWith(CHECKIN_ROUTE) && request.method === 'POST') metrics.checkins.inc({ outcome: checkinOutcome(reply.statusCode) });
    done();
  });

  app.get('/metrics', async (request, reply) => {
    const presented = parseBearer(request.headers.authorization, '');
    if (presented === undefined || presented === '') {
      throw new ManagerError('METRICS_AUTH_REQUIRED', 'This route needs the metrics token: send `Authorization: Bearer <token>` with secrets/metrics.token (or the admin token).');
    }
    const context = core.context;
    const isMetrics = anyMatches(presented, core.metricsTokens);
    const isAdmin = anyMatches(presented, context.adminTokens);
    if (!isMetrics && !isAdmin) {
      const id = tokenId(presented);
      await context.audit.append({ event: 'token.rejected', actor: 'anonymous', tokenId: id, outcome: 'denied', details: { route: 'GET /metrics', reason: 'not a metrics or admin token of this manager' } });
      throw new ManagerError('METRICS_AUTH_INVALID', `Token ${id} is not a metrics or admin token of this manager. Use secrets/metrics.token from \`drover manager init\`.`);
    }
    const text = await metrics.scrape();
    return reply.header('cache-control', 'no-store').type(metrics.registry.contentType).send(text);
  });
}
