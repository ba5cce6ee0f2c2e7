import { readFile } from 'node:fs/promises';
import { isDroverError, resolveEncryptionKey } from '@drover/protocol';
import type { TrustPolicyDocument } from '@drover/protocol';
import type { Logger } from 'pino';
import { managerLimits } from './config.js';
import { createManager } from './create-manager.js';
import type { ManagerServer } from './create-manager.js';
import { ManagerError } from './errors.js';
import { readSecretFile } from './keys.js';
import { createManagerLogger } from './logger.js';
import { readManagerConfig, resolvePath } from './manager-config.js';

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

async function readTokens(path: string, what: string, logger: Logger): Promise<string[]> {
  try {
    // One token a line: several lines let a new token overlap the old one during a rotation.
    return ((await readSecretFile(path, what)) ?? '').split('\n').map((line) => line.trim()).filter((line) => line !== '');
  } catch (error) {
    if (!isDroverError(error, 'KEY_FILE_MISSING')) throw error;
    logger.warn({ event: 'config.token_file_missing', what, path }, `no ${what} file: those requests will be refused`);
    return [];
  }
}

async function readTrustPolicy(path: string): Promise<TrustPolicyDocument | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as TrustPolicyDocument;
  } catch (error) {
    throw new ManagerError('CONFIG_INVALID', `The trust policy ${path} is not JSON. Recreate it with \`drover trust create\`.`, { cause: error });
  }
}

/**
 * The ready server: reads `<dir>/manager.json`, opens the manager (SQLite under the directory),
 * listens, and stops gracefully on SIGTERM. The encryption key comes from the environment
 * (DROVER_ENCRYPTION_KEY, CIRIS_ENCRYPTION_KEY, or MANAGER_JWT_SECRET + CIRIS_ENCRYPTION_SALT)
 * or, when none is set, from the key file `drover manager init` wrote.
 *
 * @example
 * const running = await startManager({ dir: '/var/lib/drover-manager' })
 * await running.closed
 */
export async function startManager(options: StartManagerOptions): Promise<RunningManager> {
  const env = options.env ?? process.env;
  const config = await readManagerConfig(options.dir);
  const logger = options.logger ?? createManagerLogger({ level: config.logLevel ?? 'info' });
  const path = (name: keyof typeof config.paths): string => resolvePath(options.dir, config.paths[name]);

  let encryptionKey: string | undefined;
  try {
    resolveEncryptionKey(env);
  } catch (error) {
    if (!isDroverError(error, 'ENCRYPTION_KEY_MISSING')) throw error;
    encryptionKey = await readSecretFile(path('encryptionKey'), 'encryption key').catch((cause: unknown) => {
      // Neither the environment nor the file: the protocol's own error says which variables to set.
      throw isDroverError(cause, 'KEY_FILE_MISSING') ? error : cause;
    });
  }
  const app = await createManager({
    databasePath: path('database'),
    blobDir: path('blobs'),
    auditLogPath: path('auditLog'),
    auditSignersPath: path('auditSigners'),
    managerKeyPath: path('managerKey'),
    auditKeyPath: path('auditKey'),
    adminTokens: await readTokens(path('adminTokens'), 'admin token', logger),
    deployTokens: await readTokens(path('deployTokens'), 'deploy token', logger),
    encryptionKey,
    trustPolicy: await readTrustPolicy(path('trustPolicy')),
    settings: config.settings,
    rollout: { tickMs: config.settings.rolloutTickMs, defaults: config.settings.rollout },
    logger,
    env,
  });
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
