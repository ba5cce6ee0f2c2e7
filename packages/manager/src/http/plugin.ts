import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { ManagerError } from '../errors.js';
import { installErrorHandling, sendError } from './errors.js';
import type { ManagerCore } from '../server/core.js';
import { agentRoutes } from './routes/agents.js';
import { deployRoutes } from '../deploy/routes.js';
import { operatorRoutes } from './routes/operator.js';
import { releaseRoutes } from './routes/releases.js';

/** The plugin's own option; where it is mounted is Fastify's `prefix` register option. */
export interface ManagerPluginOptions {
  /** The manager to serve, from `openManagerCore`; closed when the server closes. */
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
 * The manager's routes as a Fastify plugin, to mount in your own server. Give Fastify's `prefix`
 * register option the same path as the core's `settings.routePrefix`, so the URLs the manager hands
 * out (downloads, uploads) match where it is mounted. The plugin brings its own validation, error
 * and not-found handling, scoped to its prefix: mount it under one in an app with routes of its own,
 * since at the root its not-found handler would answer every 404 of the app (and the app's own
 * `setNotFoundHandler` would be refused).
 *
 * The manager stops with the server: from `preClose`, new requests to its routes get 503
 * SHUTTING_DOWN while in-flight ones finish (give the app's Fastify `return503OnClosing: false`,
 * or Fastify answers them 503 itself, in its own shape); `onClose` then closes the core
 * (`manager.stopped` audited, audit log and store closed). Register one core in one server.
 *
 * @example
 * const core = await openManagerCore({ dataDir, adminTokens: [token], settings: { routePrefix: '/fleet' } })
 * await app.register(managerPlugin, { core, prefix: '/fleet' })
 * await app.listen({ port: 8080 })
 * // later: app.close() stops the manager too
 */
export const managerPlugin: FastifyPluginAsyncTypebox<ManagerPluginOptions> = async (app, { core }) => {
  installErrorHandling(app);
  // Stopping: new requests get a 503 in the manager's error shape while in-flight ones finish.
  app.addHook('onRequest', (_request, _reply, done) => {
    done(core.closing ? new ManagerError('SHUTTING_DOWN', 'The manager is shutting down; retry in a few seconds (against another replica, if any).') : undefined);
  });
  // Application hooks, run by the root server's close() even from this encapsulated plugin:
  // preClose before the server stops accepting, onClose once it has (in-flight requests done).
  app.addHook('preClose', (done) => {
    core.beginShutdown();
    done();
  });
  app.addHook('onClose', () => core.close());
  healthRoutes(app, core);
  await app.register(agentRoutes, { core });
  await app.register(releaseRoutes, { core });
  await app.register(operatorRoutes, { core });
  await app.register(deployRoutes, { core });
};
