import type { Logger } from 'pino';
import { managerLimits } from '../config.js';
import { createManager } from './create.js';
import type { ManagerServer } from './create.js';
import { readManagerDirectory } from './directory.js';

export interface StartManagerOptions {
  /** The manager directory (`drover manager init --dir`). */
  dir: string;
  /** Override manager.json's listen address. */
  host?: string | undefined;
  port?: number | undefined;
  /** Read for the encryption key (DROVER_ENCRYPTION_KEY, ...) and DEV_ALLOW_EPHEMERAL; default process.env. */
  env?: Record<string, string | undefined> | undefined;
  logger?: Logger | undefined;
  /** Stop gracefully on SIGTERM and SIGINT (default true). */
  handleSignals?: boolean | undefined;
}

export interface RunningManager {
  app: ManagerServer;
  /** `http://host:port`, with the port actually bound. */
  url: string;
  /** Stops accepting, lets in-flight requests finish (up to shutdownGraceMs), then closes everything. */
  close(): Promise<void>;
  /** Settles once the manager has stopped, whatever stopped it. */
  closed: Promise<void>;
}

/**
 * The ready server: reads the manager directory (`readManagerDirectory`), opens the manager
 * (SQLite under the directory), listens, and stops gracefully on SIGTERM. The encryption key comes
 * from the environment (DROVER_ENCRYPTION_KEY, CIRIS_ENCRYPTION_KEY, or MANAGER_JWT_SECRET +
 * CIRIS_ENCRYPTION_SALT) or, when none is set, from the key file `drover manager init` wrote.
 *
 * @example
 * const running = await startManager({ dir: '/var/lib/drover-manager' })
 * await running.closed
 */
export async function startManager(options: StartManagerOptions): Promise<RunningManager> {
  const { config, options: managerOptions } = await readManagerDirectory(options.dir, { env: options.env, logger: options.logger });
  const { logger } = managerOptions;
  const app = await createManager(managerOptions);
  let address: string;
  try {
    address = await app.listen({ host: options.host ?? config.listen.host, port: options.port ?? config.listen.port });
  } catch (error) {
    await app.close();
    throw error;
  }

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
        resolveClosed();
      }
    })();
    return closing;
  };
  if (options.handleSignals !== false) {
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
  return { app, url: address, close, closed };
}
