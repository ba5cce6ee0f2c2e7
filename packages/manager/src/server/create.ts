import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { managerLimits } from '../config.js';
import { frameworkErrors, installErrorHandling } from '../http/errors.js';
import { ManagerLogController, lazyRequestLogger, serializeRequest, silentLogger } from '../logger.js';
import { admittingServer, defaultAdmission } from './admission.js';
import type { AdmissionOptions, ManagerTls } from './admission.js';
import { openManagerCore } from './core.js';
import type { ManagerCore, ManagerOptions } from './core.js';
import { managerCorePlugin } from '../http/plugin.js';

/** How the manager's own HTTP server serves: request logs, proxies, request time. */
export interface ManagerServerOptions {
  /** Log every request (method, path without query, status, time); default true. */
  requestLogging?: boolean | undefined;
  /** Trust X-Forwarded-For from these proxies (Fastify's `trustProxy`); default false. */
  trustProxy?: boolean | string | string[] | undefined;
  /** Milliseconds to receive a whole request (an artifact upload included); default 15 minutes. */
  requestTimeoutMs?: number | undefined;
  /**
   * When to answer 503 OVERLOADED with a Retry-After instead of queueing (docs/decisions/0027):
   * default {@link defaultAdmission}.
   */
  admission?: Partial<AdmissionOptions> | undefined;
  /** Serve HTTPS with this certificate and key (PEM) instead of HTTP (`startManager`'s `tlsFiles` reads and checks them from files). */
  tls?: ManagerTls | undefined;
}

export interface CreateManagerOptions extends ManagerOptions, ManagerServerOptions {}

/** A ready manager server: a Fastify instance with the manager's operations at `.manager`. */
export type ManagerServer = FastifyInstance & { readonly manager: ManagerCore };

/**
 * Opens a manager and returns a ready Fastify server for it; call `listen` on it. Closing the
 * server closes the manager (audit record, audit log, store). Internal: `startManager` is the
 * public way to run one; the tests and the benchmarks use this for `app.manager`.
 */
export async function createManager(options: CreateManagerOptions): Promise<ManagerServer> {
  const logger: Logger = options.logger ?? silentLogger();
  const core = await openManagerCore({ ...options, logger });
  let app: FastifyInstance;
  const admission = { ...defaultAdmission, ...options.admission };
  const keepAliveTimeout = 72_000;
  const requestTimeout = options.requestTimeoutMs ?? 15 * 60_000;
  try {
    app = Fastify({
      serverFactory: (handler) => {
        const { server } = admittingServer(handler, admission, logger, undefined, options.tls);
        // What Fastify sets on a server it makes itself.
        server.keepAliveTimeout = keepAliveTimeout;
        server.requestTimeout = requestTimeout;
        server.setTimeout(0);
        return server;
      },
      loggerInstance: logger,
      childLoggerFactory: lazyRequestLogger,
      // The request line goes through the manager's request serializer whatever logger was given
      // (a plain pino() has none, and would write the whole request: headers, body, query).
      logController: new ManagerLogController(logger.child({}, { serializers: { req: serializeRequest } }), { disableRequestLogging: options.requestLogging === false }),
      bodyLimit: managerLimits.adminBodyMaxBytes,
      // The manager answers 503 itself while stopping, in its own error shape.
      return503OnClosing: false,
      forceCloseConnections: 'idle',
      trustProxy: options.trustProxy ?? false,
      requestTimeout,
      connectionTimeout: 0,
      keepAliveTimeout,
      // Ids and versions are up to 128 characters; a longer segment matches no route.
      routerOptions: { maxParamLength: 256 },
      frameworkErrors,
    }) as unknown as FastifyInstance;
    app.decorate('manager', core);
    const prefix = core.context.settings.routePrefix;
    // Under a prefix, the rest of the server is ours too: its 404s and errors keep the manager's shape.
    if (prefix !== '') installErrorHandling(app);
    // The plugin stops the manager with the server (preClose: 503 SHUTTING_DOWN; onClose: core.close()).
    await app.register(managerCorePlugin, { core, prefix });
    await app.ready();
  } catch (error) {
    await core.close();
    throw error;
  }
  return app as ManagerServer;
}
