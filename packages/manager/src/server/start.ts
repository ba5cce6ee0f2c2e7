import type { FastifyInstance } from 'fastify';
import { managerLimits } from '../config.js';
import { createManagerLogger } from '../logger.js';
import { createManager } from './create.js';
import { removePidFile, writePidFile } from './pid-file.js';
import { loadManagerTls } from './tls.js';
import type { ManagerServerOptions } from './create.js';
import { resolveManagerSource } from './directory.js';
import type { ManagerSource } from './directory.js';

/** How {@link startManager} finds its manager (a directory, options, or both) and serves it. */
export interface StartManagerOptions extends ManagerSource, ManagerServerOptions {
  /** The address to listen on: default manager.json's `listen.host`, else `127.0.0.1`. */
  host?: string | undefined;
  /** The port to listen on, 0 for a free one: default manager.json's `listen.port`, else 8443. */
  port?: number | undefined;
  /** Serve HTTPS: a PEM certificate chain and its key (0600), both checked first (TLS_INVALID). Default: HTTP. */
  tlsFiles?: { certFile: string; keyFile: string } | undefined;
  /** Stop gracefully on SIGTERM and SIGINT (default true). */
  handleSignals?: boolean | undefined;
}

/** A manager that {@link startManager} started: where it listens, and how to stop it. */
export interface RunningManager {
  /** The Fastify server, for `inject` in tests or hooks of your own. */
  app: FastifyInstance;
  /** `http://host:port`, with the port actually bound. */
  url: string;
  /** Stops accepting, lets in-flight requests finish (up to 10 s), then closes everything. */
  close(): Promise<void>;
  /** Settles once the manager has stopped, whatever stopped it. */
  closed: Promise<void>;
}

/**
 * Runs a manager in this process, the way `drover manager start` does: opens it (SQLite and blobs
 * under its directory, unless given a store), listens, logs JSON lines (unless given a logger), and
 * on SIGTERM or SIGINT stops gracefully: new requests get 503 SHUTTING_DOWN, in-flight ones finish,
 * `manager.stopped` is audited. The encryption key comes from the environment
 * (DROVER_ENCRYPTION_KEY, CIRIS_ENCRYPTION_KEY, or MANAGER_JWT_SECRET with CIRIS_ENCRYPTION_SALT)
 * or, when none is set, from the key file in the directory.
 *
 * @param options - A manager directory (`dir`), options, or both; where to listen.
 * @returns Once the manager listens: its URL, and how to stop it.
 * @throws {@link ManagerError} `CONFIG_INVALID`, `KEY_FILE_MISSING`, `ENCRYPTION_KEY_MISMATCH` and the
 * other startup codes, when it cannot open.
 *
 * @example
 * From a directory made by `drover manager init` (or {@link initManagerDirectory}):
 * ```ts
 * const manager = await startManager({ dir: '/var/lib/drover-manager', port: 8443 });
 * console.log(`manager listening on ${manager.url}`);
 * await manager.closed; // until SIGTERM
 * ```
 *
 * @example
 * The same directory with options on top: a {@link Store} of your own, behind a proxy that sets
 * X-Forwarded-For:
 * ```ts
 * const manager = await startManager({ dir: '/var/lib/drover-manager', store: myStore, trustProxy: true });
 * ```
 */
export async function startManager(options: StartManagerOptions): Promise<RunningManager> {
  const { host, port, handleSignals, tlsFiles, tls: tlsGiven, ...source } = options;
  const tls = tlsFiles === undefined ? tlsGiven : await loadManagerTls(tlsFiles.certFile, tlsFiles.keyFile);
  const { config, options: managerOptions } = await resolveManagerSource(source);
  // A ready server logs: JSON lines on stdout at manager.json's level, unless given a logger.
  const logger = managerOptions.logger ?? createManagerLogger();
  const app = await createManager({ ...managerOptions, logger, admission: { ...config?.admission, ...managerOptions.admission }, ...(tls === undefined ? {} : { tls }) });
  let address: string;
  try {
    const listening = await app.listen({
      host: host ?? config?.listen.host ?? '127.0.0.1',
      port: port ?? config?.listen.port ?? 8443,
      // A fleet reconnecting at once must wait in the kernel's queue, not be dropped from it.
      backlog: config?.listen.backlog ?? managerLimits.listenBacklog,
    });
    // Fastify names the scheme from its own options; the server behind serverFactory is the one that knows.
    address = tls === undefined ? listening : listening.replace(/^http:/, 'https:');
  } catch (error) {
    await app.close();
    throw error;
  }

  // DIR/manager.pid says a manager runs from this directory (migrate-store refuses to move it meanwhile).
  const dir = source.dir;
  if (dir !== undefined) await writePidFile(dir);

  let resolveClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  let closing: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ event: 'manager.signal', signal }, `received ${signal}: stopping`);
    void close().catch((error: unknown) => {
      logger.error({ event: 'manager.stop_failed', err: error }, 'failed to stop cleanly');
      process.exitCode = 1;
    });
  };
  const close = (): Promise<void> => {
    closing ??= (async () => {
      // In-flight requests get a grace period; after it, the connections still open are cut.
      const timer = setTimeout(() => {
        logger.warn({ event: 'manager.shutdown_forced', graceMs: managerLimits.shutdownGraceMs }, 'requests still running after the grace period: closing their connections');
        app.server.closeAllConnections();
      }, managerLimits.shutdownGraceMs);
      timer.unref();
      try {
        await app.close();
      } finally {
        clearTimeout(timer);
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        if (dir !== undefined) await removePidFile(dir).catch(() => undefined);
        resolveClosed();
      }
    })();
    return closing;
  };
  if (handleSignals !== false) {
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
  return { app, url: address, close, closed };
}
