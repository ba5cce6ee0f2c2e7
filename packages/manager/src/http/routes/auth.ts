import type { FastifyInstance } from 'fastify';
import type { ManagerCore } from '../../server/core.js';

/**
 * GET /manager/v1/auth/config: how people log in to this manager, for `drover login` (and the
 * console): the OIDC issuer and the client id, or `oidc: null`. Unauthenticated, and it holds
 * nothing secret: both are in every ID token the issuer hands out.
 */
export function authConfigRoute(app: FastifyInstance, core: ManagerCore): void {
  app.get('/manager/v1/auth/config', (_request, reply) => {
    const oidc = core.context.oidc?.config;
    return reply.header('cache-control', 'no-store').send({ oidc: oidc === undefined ? null : { issuer: oidc.issuer, clientId: oidc.audience, groupsClaim: oidc.groupsClaim } });
  });
}
