import { readFile } from 'node:fs/promises';
import { isDroverError } from '@drover/protocol';
import { resolveEncryptionKey } from '@drover/protocol/internal';
import type { TrustPolicyDocument } from '@drover/protocol';
import type { Logger } from 'pino';
import { resolveBlobStoreConfig } from '../blobs/s3-config.js';
import { ManagerError } from '../errors.js';
import { isExternalKeyName, readSecretFile } from '../keys.js';
import { managerLayout } from '../config.js';
import { createManagerLogger } from '../logger.js';
import type { ManagerOptions } from './core.js';
import { readManagerConfig, resolvePath } from './config-file.js';
import type { ManagerConfig } from './config-file.js';
import { resolveDatabaseConfig } from './database.js';
import { resolveOidcConfig } from '../oidc/oidc-config.js';

export interface ReadManagerDirectoryOptions {
  /** Read for the encryption key (DROVER_ENCRYPTION_KEY, ...) and DEV_ALLOW_EPHEMERAL; default process.env. */
  env?: Record<string, string | undefined> | undefined;
  /** Default: a JSON logger at manager.json's `logLevel`. */
  logger?: Logger | undefined;
}

/** A manager directory, read: its manager.json, and the options that open the manager it holds. */
export interface ManagerDirectory {
  config: ManagerConfig;
  /** For `openManagerCore` or `createManager`: paths, tokens, trust policy, encryption key, settings, logger, env. */
  options: ManagerOptions & { logger: Logger };
}

/**
 * Where a manager's configuration comes from: a manager directory, options, or both. Beside `dir`,
 * each option given replaces the directory's value of the same name; `settings` and `rollout`
 * replace it key by key, so `{ dir, settings: { presignDownloads: true } }` keeps the rest of
 * manager.json's settings.
 */
export interface ManagerSource extends ManagerOptions {
  /**
   * A manager directory made by {@link initManagerDirectory} (or `drover manager init`): manager.json,
   * the key files, the admin and deploy tokens, the trust policy and the encryption key, read the way
   * `drover manager start` reads them. Without it, the options alone describe the manager.
   */
  dir?: string | undefined;
}

async function readTokens(path: string, what: string, logger: Logger, optional = false): Promise<string[]> {
  try {
    // One token a line: several lines let a new token overlap the old one during a rotation.
    return ((await readSecretFile(path, what)) ?? '').split('\n').map((line) => line.trim()).filter((line) => line !== '');
  } catch (error) {
    if (!isDroverError(error, 'KEY_FILE_MISSING')) throw error;
    if (optional) return [];
    logger.warn({ event: 'config.token_file_missing', what, path }, `no ${what} file: those requests will be refused`);
    return [];
  }
}

async function readTrustPolicy(path: string): Promise<TrustPolicyDocument | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    // No trust policy: the manager runs, and refuses every release publication.
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
 * Reads a directory made by `drover manager init` the way `drover manager start` does: manager.json
 * (its blob store overridden by DROVER_BLOB_STORE and DROVER_S3_*, its oidc by DROVER_OIDC_*), the key files, the admin, deploy and metrics tokens (one a line), the trust policy, and the encryption key
 * (from the environment: DROVER_ENCRYPTION_KEY, CIRIS_ENCRYPTION_KEY or MANAGER_JWT_SECRET +
 * CIRIS_ENCRYPTION_SALT; when none is set, from the key file init wrote). Opens nothing: the
 * options it returns are for `openManagerCore` or `createManager`.
 */
export async function readManagerDirectory(dir: string, options: ReadManagerDirectoryOptions = {}): Promise<ManagerDirectory> {
  const env = options.env ?? process.env;
  const config = await readManagerConfig(dir);
  const logger = options.logger ?? createManagerLogger({ level: config.logLevel ?? 'info' });
  const path = (name: Exclude<keyof ManagerConfig['paths'], 'metricsTokens'>): string => resolvePath(dir, config.paths[name]);

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
  return {
    config,
    options: {
      databasePath: path('database'),
      // DROVER_DATABASE_URL over manager.json's database; neither: SQLite at paths.database.
      database: await resolveDatabaseConfig(dir, config, env),
      blobDir: path('blobs'),
      // DROVER_BLOB_STORE and DROVER_S3_* over manager.json's blobStore; neither: the directory.
      blobStore: resolveBlobStoreConfig(config.blobStore, env),
      auditLogPath: path('auditLog'),
      auditSignersPath: path('auditSigners'),
      // A key in an HSM or KMS is named by its pkcs11: URI or awskms: name in manager.json: no file to resolve.
      managerKeyPath: isExternalKeyName(config.paths.managerKey) ? config.paths.managerKey : path('managerKey'),
      auditKeyPath: isExternalKeyName(config.paths.auditKey) ? config.paths.auditKey : path('auditKey'),
      adminTokens: await readTokens(path('adminTokens'), 'admin token', logger),
      deployTokens: await readTokens(path('deployTokens'), 'deploy token', logger),
      // The metrics token (GET /metrics); a directory from before metrics has none: the admin token still reads them.
      metricsTokens: await readTokens(resolvePath(dir, config.paths.metricsTokens ?? managerLayout.metricsToken), 'metrics token', logger, true),
      encryptionKey,
      trustPolicy: await readTrustPolicy(path('trustPolicy')),
      // DROVER_OIDC_* over manager.json's oidc; neither: static tokens only.
      oidc: await resolveOidcConfig(config.oidc, env, async (file) => (await readSecretFile(resolvePath(dir, file), 'OIDC client secret')) ?? ''),
      settings: config.settings,
      rollout: { tickMs: config.settings.rolloutTickMs, defaults: config.settings.rollout },
      logger,
      env,
    },
  };
}

/** Only the members that are set: an option left undefined does not hide the directory's value. */
function defined<T extends object>(value: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, member]) => member !== undefined)) as Partial<T>;
}

/**
 * The options that open the manager a source describes, and the directory's manager.json when it
 * names one. Extra members of `source` (a server's own options) pass through.
 */
export async function resolveManagerSource<T extends ManagerSource>(source: T): Promise<{ config: ManagerConfig | undefined; options: Omit<T, 'dir'> }> {
  const { dir, ...given } = source;
  if (dir === undefined) return { config: undefined, options: given };
  const read = await readManagerDirectory(dir, { env: given.env, logger: given.logger });
  return {
    config: read.config,
    options: {
      ...read.options,
      ...defined(given),
      settings: { ...read.options.settings, ...defined(given.settings) },
      rollout: { ...read.options.rollout, ...defined(given.rollout) },
    } as Omit<T, 'dir'>,
  };
}
