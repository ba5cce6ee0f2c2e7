import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { ManagerError } from './errors.js';
import { installErrorHandling, sendError } from './http-errors.js';
import type { ManagerCore } from './manager-core.js';
import { agentRoutes } from './routes-agents.js';
import { deployRoutes } from './routes-deploy.js';
import { operatorRoutes } from './routes-operator.js';
import { releaseRoutes } from './routes-releases.js';

export interface ManagerPluginOptions {
  /** The manager to serve, from `openManagerCore`. */
  core: ManagerCore;
}

/** GET /healthz (the process is up) and GET /readyz (it can serve: store reachable, not stopping). */
function healthRoutes(app: FastifyInstance, core: ManagerCore): void {
  app.get('/healthz', (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    try {
      await core.ready();
    } catch (error) {
      if (error instanceof ManagerError && error.code === 'SHUTTING_DOWN') return sendError(request, reply, error);
      return sendError(request, reply, new ManagerError('NOT_READY', 'The manager cannot reach its store; see its log.', { cause: error }));
    }
    return reply.header('cache-control', 'no-store').send({ status: 'ready' });
  });
}

/**
 * The manager's routes as a Fastify plugin, to mount in your own server (under a prefix if you
 * like: pass the same prefix as `settings.routePrefix` so the URLs the manager hands out match).
 * It brings its own validation, error and not-found handling, scoped to its routes.
 *
 * @example
 * const core = await openManagerCore({ dataDir, adminTokens: [token] })
 * await app.register(managerPlugin, { core, prefix: '/fleet' })
 * app.addHook('onClose', () => core.close())
 */
export const managerPlugin: FastifyPluginAsyncTypebox<ManagerPluginOptions> = async (app, { core }) => {
  installErrorHandling(app);
  // Stopping: new requests get a 503 in the manager's error shape while in-flight ones finish.
  app.addHook('onRequest', (_request, _reply, done) => {
    done(core.closing ? new ManagerError('SHUTTING_DOWN', 'The manager is shutting down; retry in a few seconds (against another replica, if any).') : undefined);
  });
  healthRoutes(app, core);
  await app.register(agentRoutes, { core });
  await app.register(releaseRoutes, { core });
  await app.register(operatorRoutes, { core });
  await app.register(deployRoutes, { core });
};
