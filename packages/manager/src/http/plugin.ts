import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { ManagerError } from '../errors.js';
import { installErrorHandling, sendError } from './errors.js';
import { openManagerCore } from '../server/core.js';
import type { ManagerCore } from '../server/core.js';
import { resolveManagerSource } from '../server/directory.js';
import type { ManagerSource } from '../server/directory.js';
import { agentRoutes } from './routes/agents.js';
import { deployRoutes } from '../deploy/routes.js';
import { operatorRoutes } from './routes/operator.js';
import { auditRoutes } from './routes/audit.js';
import { consoleRoutes } from './console/routes.js';
import { releaseRoutes } from './routes/releases.js';
import { metricsRoutes } from '../metrics/routes.js';
import { authConfigRoute } from './routes/auth.js';

/**
 * The options of {@link managerPlugin}: the manager to open and serve (a directory, options, or
 * both). Where it is served is Fastify's own `prefix` register option.
 */
export type ManagerPluginOptions = ManagerSource;

/** The options of the internal plugin that serves a manager already open. */
export interface ManagerCorePluginOptions {
  /** The manager to serve, from `openManagerCore`; closed when the server closes. */
  core: ManagerCore;
}

// What /readyz answers with its own code (503); any other failure is the store's: NOT_READY.
const READINESS_CODES: ReadonlySet<string> = new Set(['SHUTTING_DOWN', 'AUDIT_UNAVAILABLE', 'BLOB_STORE_UNREACHABLE', 'BLOB_STORE_BUCKET_NOT_FOUND', 'BLOB_STORE_ACCESS_DENIED', 'STORE_UNAVAILABLE']);

/** GET /healthz (the process is up) and GET /readyz (it can serve: store and bucket reachable, audit log writable, not stopping). */
function healthRoutes(app: FastifyInstance, core: ManagerCore): void {
  app.get('/healthz', (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    try {
      await core.ready();
    } catch (error) {
      if (error instanceof ManagerError && READINESS_CODES.has(error.code)) return sendError(request, reply, error);
      return sendError(request, reply, new ManagerError('NOT_READY', 'The manager cannot reach its store; see its log.', { cause: error }));
    }
    return reply.header('cache-control', 'no-store').send({ status: 'ready' });
  });
}

/**
 * A manager already open, served as a Fastify plugin: what {@link managerPlugin} and the ready server
 * (`createManager`) register. The core's `settings.routePrefix` must be the prefix it is mounted
 * under. The manager stops with the server: from `preClose`, new requests to its routes get 503
 * SHUTTING_DOWN while in-flight ones finish; `onClose` then closes the core (`manager.stopped`
 * audited, audit log and store closed). Internal: the tests mount a core of their own with it.
 */
export const managerCorePlugin: FastifyPluginAsyncTypebox<ManagerCorePluginOptions> = async (app, { core }) => {
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
  metricsRoutes(app, core);
  authConfigRoute(app, core);
  await app.register(agentRoutes, { core });
  await app.register(releaseRoutes, { core });
  await app.register(operatorRoutes, { core });
  await app.register(deployRoutes, { core });
  await app.register(auditRoutes, { core });
  consoleRoutes(app, core);
};

/**
 * Mounts a manager in your own Fastify app: opens it (from a manager directory, options, or both)
 * and serves every route of it under the prefix it is registered with. The URLs the manager hands
 * out (downloads, uploads) carry that prefix, whatever `settings.routePrefix` says; daemons,
 * operators and CI then use the app's URL with the prefix as the manager URL.
 *
 * Register it under a prefix: it brings its own validation, error and not-found handling, scoped to
 * that prefix, and at the root its not-found handler would answer every 404 of the app. Give the
 * app `return503OnClosing: false` and `routerOptions: { maxParamLength: 256 }`: while the app
 * stops, new requests to the manager then get its own 503 SHUTTING_DOWN while in-flight ones finish,
 * and ids of up to 128 characters fit a route. Closing the app stops the manager (`manager.stopped`
 * audited, audit log and store closed). Register it once per app.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import { createManagerLogger, managerPlugin } from '@drover/manager';
 *
 * const logger = createManagerLogger();
 * const app = Fastify({ loggerInstance: logger, return503OnClosing: false, routerOptions: { maxParamLength: 256 } });
 * app.get('/', () => ({ app: 'mine' }));
 * await app.register(managerPlugin, { dir: '/var/lib/drover-manager', logger, prefix: '/drover' });
 * await app.listen({ port: 8080 }); // the manager is http://HOST:8080/drover
 * process.on('SIGTERM', () => void app.close()); // stops the manager too
 * ```
 */
export const managerPlugin: FastifyPluginAsyncTypebox<ManagerPluginOptions> = async (app, options) => {
  const { options: opened } = await resolveManagerSource(options);
  const core = await openManagerCore({ ...opened, settings: { ...opened.settings, routePrefix: app.prefix } });
  try {
    await managerCorePlugin(app, { core });
  } catch (error) {
    await core.close();
    throw error;
  }
};
