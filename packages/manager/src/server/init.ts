import { access, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Ed25519PrivateKey, ed25519AuditSigner, generateServiceToken, isDroverError, parseTrustPolicy } from '@drover/protocol';
import { generateFernetKey, resolveEncryptionKey, writeFileAtomic } from '@drover/protocol/internal';
import type { Ed25519Signer, TrustPolicyDocument } from '@drover/protocol';
import { S3BlobStore } from '../blobs/s3-blob-store.js';
import { checkS3Config } from '../blobs/s3-config.js';
import type { S3BlobStoreConfig } from '../blobs/s3-config.js';
import { managerLayout } from '../config.js';
import { ManagerError } from '../errors.js';
import { isExternalKeyName, openExternalSigner } from '../keys.js';
import type { ExternalSigner } from '../keys.js';
import { defaultManagerConfig, resolvePath } from './config-file.js';
import type { ManagerConfig } from './config-file.js';
import { openManagerCore } from './core.js';
import { openPostgresStore, splitDatabasePassword } from './database.js';
import type { DatabaseConfig } from './database.js';
import type { PostgresStore } from '../store/postgres/store.js';
import { checkOidcConfig, oidcConfigForFile } from '../oidc/oidc-config.js';
import type { OidcConfig } from '../oidc/oidc-config.js';

/** What {@link initManagerDirectory} creates: where, the listen address it writes, the first enrollment token. */
export interface InitManagerOptions {
  /** The manager directory: created if missing; must not hold a manager yet. */
  dir: string;
  /** manager.json's `listen.host` (default `127.0.0.1`). */
  host?: string | undefined;
  /** manager.json's `listen.port` (default 8443). */
  port?: number | undefined;
  /** Seats of the first enrollment token (default 1). */
  seats?: number | undefined;
  /** Seconds until the first enrollment token expires (default 24 h). */
  expiresInSeconds?: number | undefined;
  /** The keys releases must be signed with; without one, the manager accepts no release until trust.json exists. */
  trustPolicy?: TrustPolicyDocument | undefined;
  /**
   * Artifacts in an S3-compatible bucket (`s3://bucket/prefix`, endpoint, region, path style,
   * download endpoint) instead of `<dir>/blobs`: checked (HeadBucket, with the AWS credentials of
   * `env` or the AWS chain) before anything is written, then kept in manager.json without credentials.
   */
  blobStore?: S3BlobStoreConfig | undefined;
  /**
   * The state in PostgreSQL instead of `<dir>/manager.db`: `{ url: 'postgres://user:password@host/db' }`.
   * Checked (connected and migrated) before anything is written; manager.json keeps the URL without
   * its password, which goes to `secrets/database.password` (0600).
   */
  database?: DatabaseConfig | undefined;
  /**
   * The manager signing key (update nonces) as the `pkcs11:` URI of an Ed25519 key already in an HSM
   * (`drover keygen --pkcs11`), or the `awskms:` name of an Ed25519 key in AWS KMS
   * (`ECC_NIST_EDWARDS25519`): manager.json names it and no private key file is written. A token's
   * PIN comes from the URI's `pin-source=` or DROVER_PKCS11_PIN, KMS credentials from the AWS
   * SDK's usual sources, at init and at every start.
   */
  managerKey?: string | undefined;
  /** The audit key as a `pkcs11:` URI or an `awskms:` name, as {@link InitManagerOptions.managerKey}. */
  auditKey?: string | undefined;
  /** OpenID Connect for people (manager.json's `oidc`): the issuer, the client id, the groups claim and the group-to-role map (decision 0042). */
  oidc?: OidcConfig | undefined;
  /** Read for an existing encryption key (DROVER_ENCRYPTION_KEY, ...), DEV_ALLOW_EPHEMERAL, the AWS credentials and the PKCS#11 PIN and module. */
  env?: Record<string, string | undefined> | undefined;
}

/** What `initManagerDirectory` created; the secrets are shown once. */
export interface InitializedManager {
  dir: string;
  config: string;
  /** Secrets: the operator keeps these (they are also in the 0600 files named in `files`). */
  adminToken: string;
  deployToken: string;
  enrollmentToken: string;
  enrollmentTokenId: string;
  enrollmentTokenSeats: number;
  enrollmentTokenExpiresAt: string;
  managerKeyId: string;
  auditKeyId: string;
  /** Where artifacts are kept: `fs` (the directory's blobs/) or the `s3://` URL. */
  blobStore: string;
  /** Where the encryption key is: the file written, or the environment variable already set. */
  encryptionKeySource: string;
  files: Record<string, string>;
  trustPolicy: boolean;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function writeSecret(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  // 0600 from the first byte: never readable by others, even for an instant.
  await writeFileAtomic(path, text, { mode: 0o600 });
}

/**
 * Creates a manager directory, as `drover manager init` does: manager.json, the manager's signing
 * key and audit key, admin and deploy tokens, a Fernet key (unless the environment already names
 * one), the database with a first enrollment token, the audit log and signers.json. Secret files
 * are 0600. {@link startManager} and {@link managerPlugin} then run the manager it holds.
 *
 * @returns The tokens (shown once; the admin and deploy tokens are also in their files), the key ids
 * and the paths of the files written.
 * @throws {@link ManagerError} `CONFIG_INVALID` when the directory already holds a manager;
 * `BLOB_STORE_INVALID`, `BLOB_STORE_BUCKET_NOT_FOUND`, `BLOB_STORE_ACCESS_DENIED` or
 * `BLOB_STORE_UNREACHABLE` when `blobStore` cannot be used (nothing is written then).
 *
 * @example
 * ```ts
 * const created = await initManagerDirectory({ dir: '/var/lib/drover-manager', seats: 10 });
 * console.log(`enroll hosts with ${created.enrollmentToken}`);
 * ```
 */
export async function initManagerDirectory(options: InitManagerOptions): Promise<InitializedManager> {
  const dir = options.dir;
  const env = options.env ?? {};
  const configPath = join(dir, managerLayout.config);
  if (await exists(configPath)) {
    throw new ManagerError('CONFIG_INVALID', `${configPath} already exists: this directory holds a manager. Start it with \`drover manager start --dir ${dir}\`, or choose another directory.`);
  }
  if (options.trustPolicy !== undefined) parseTrustPolicy(options.trustPolicy);
  // Keys in an HSM are opened first: a wrong PIN or a missing key stops init before anything is written.
  const tokenKeys: TokenKeys = {};
  try {
    for (const which of ['managerKey', 'auditKey'] as const) {
      const uri = options[which];
      if (uri === undefined) continue;
      if (!isExternalKeyName(uri)) {
        throw new ManagerError('PKCS11_URI_INVALID', `The ${which === 'managerKey' ? 'manager signing key' : 'audit key'} must be given as the pkcs11: URI of a key in an HSM or the awskms: name of a key in AWS KMS; without one, init writes a key file.`);
      }
      tokenKeys[which] = openExternalSigner(uri, env);
    }
    return await initChecked(options, dir, configPath, env, tokenKeys);
  } finally {
    tokenKeys.managerKey?.close();
    tokenKeys.auditKey?.close();
  }
}

/** The keys `initManagerDirectory` was given in an HSM, open for the first audit record. */
interface TokenKeys {
  managerKey?: ExternalSigner;
  auditKey?: ExternalSigner;
}

async function initChecked(options: InitManagerOptions, dir: string, configPath: string, env: Record<string, string | undefined>, tokenKeys: TokenKeys): Promise<InitializedManager> {
  let blobStore: S3BlobStoreConfig | undefined;
  if (options.blobStore !== undefined) {
    const { url, endpoint, region, pathStyle, downloadEndpoint } = checkS3Config(options.blobStore);
    blobStore = { url, ...(endpoint === undefined ? {} : { endpoint }), ...(region === undefined ? {} : { region }), ...(pathStyle === undefined ? {} : { pathStyle }), ...(downloadEndpoint === undefined ? {} : { downloadEndpoint }) };
    // A bucket that is missing or refuses the credentials is found now, not at the first release.
    const bucket = new S3BlobStore({ ...blobStore, env });
    try {
      await bucket.ping();
    } finally {
      bucket.close();
    }
  }
  // A database that is unreachable or refuses the credentials is found now, before anything is written.
  let database: ManagerConfig['database'];
  let databasePassword: string | undefined;
  let store: PostgresStore | undefined;
  if (options.database !== undefined) {
    const split = splitDatabasePassword(options.database.url);
    databasePassword = options.database.password ?? split.password;
    database = {
      url: split.url,
      ...(databasePassword === undefined ? {} : { passwordFile: managerLayout.databasePassword }),
      ...(options.database.poolSize === undefined ? {} : { poolSize: options.database.poolSize }),
      ...(options.database.statementTimeoutMs === undefined ? {} : { statementTimeoutMs: options.database.statementTimeoutMs }),
    };
    store = await openPostgresStore({ ...options.database, url: split.url, password: databasePassword });
  }
  try {
    return await initDirectory(options, dir, configPath, blobStore, database, databasePassword, store, tokenKeys);
  } finally {
    await store?.close();
  }
}

async function initDirectory(
  options: InitManagerOptions,
  dir: string,
  configPath: string,
  blobStore: S3BlobStoreConfig | undefined,
  database: ManagerConfig['database'],
  databasePassword: string | undefined,
  store: PostgresStore | undefined,
  tokenKeys: TokenKeys,
): Promise<InitializedManager> {
  const env = options.env ?? {};
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const defaults = defaultManagerConfig({ host: options.host ?? '127.0.0.1', port: options.port ?? 8443 });
  const config: ManagerConfig = {
    ...defaults,
    // A key in an HSM: manager.json names its URI, which `drover manager start` opens.
    paths: { ...defaults.paths, ...(options.managerKey === undefined ? {} : { managerKey: options.managerKey }), ...(options.auditKey === undefined ? {} : { auditKey: options.auditKey }) },
    ...(blobStore === undefined ? {} : { blobStore }),
    ...(database === undefined ? {} : { database }),
    // leak: a client secret never lands in manager.json (clientSecretFile names where it is).
    ...(options.oidc === undefined ? {} : { oidc: oidcConfigForFile(checkOidcConfig(options.oidc)) }),
  };
  const path = (name: Exclude<keyof ManagerConfig['paths'], 'metricsTokens'>): string => resolvePath(dir, config.paths[name]);
  if (databasePassword !== undefined) await writeSecret(resolvePath(dir, managerLayout.databasePassword), `${databasePassword}\n`);

  // No private key file for a key in an HSM: it never leaves the token.
  const managerKey: Ed25519Signer = tokenKeys.managerKey ?? Ed25519PrivateKey.generate();
  const auditKey: Ed25519Signer = tokenKeys.auditKey ?? Ed25519PrivateKey.generate();
  const adminToken = generateServiceToken();
  const deployToken = generateServiceToken();
  const metricsToken = generateServiceToken();
  if (managerKey instanceof Ed25519PrivateKey) await writeSecret(path('managerKey'), managerKey.toPem());
  if (auditKey instanceof Ed25519PrivateKey) await writeSecret(path('auditKey'), auditKey.toPem());
  // The public half hosts pin sits at keys/manager.key.pub whether the key is a file or in an HSM.
  const managerPublicKeyPath = `${resolvePath(dir, tokenKeys.managerKey === undefined ? config.paths.managerKey : managerLayout.managerKey)}.pub`;
  await mkdir(dirname(managerPublicKeyPath), { recursive: true, mode: 0o700 });
  await writeSecret(path('adminTokens'), `${adminToken}\n`);
  await writeSecret(path('deployTokens'), `${deployToken}\n`);
  await writeSecret(resolvePath(dir, config.paths.metricsTokens ?? managerLayout.metricsToken), `${metricsToken}\n`);
  await writeFile(managerPublicKeyPath, managerKey.publicKey.toPem(), { mode: 0o644 });

  let encryptionKey: string;
  let encryptionKeySource: string;
  try {
    const resolved = resolveEncryptionKey(env);
    encryptionKey = resolved.key;
    encryptionKeySource = resolved.source;
  } catch (error) {
    if (!isDroverError(error, 'ENCRYPTION_KEY_MISSING')) throw error;
    encryptionKey = generateFernetKey();
    encryptionKeySource = path('encryptionKey');
    await writeSecret(path('encryptionKey'), `${encryptionKey}\n`);
  }
  if (options.trustPolicy !== undefined) await writeFileAtomic(path('trustPolicy'), `${JSON.stringify(options.trustPolicy, null, 2)}\n`);
  await writeFileAtomic(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });

  const core = await openManagerCore({
    store,
    databasePath: path('database'),
    blobDir: path('blobs'),
    auditLogPath: path('auditLog'),
    auditSignersPath: path('auditSigners'),
    managerKey,
    auditSigner: { signer: ed25519AuditSigner(auditKey), publicKey: auditKey.publicKey },
    encryptionKey,
    env,
  });
  let created;
  try {
    created = await core.createEnrollmentToken({ seats: options.seats, expiresInSeconds: options.expiresInSeconds, note: 'created by drover manager init' }, { name: 'cli:init' });
  } finally {
    await core.close();
  }
  return {
    dir,
    config: configPath,
    adminToken,
    deployToken,
    enrollmentToken: created.token,
    enrollmentTokenId: created.record.id,
    enrollmentTokenSeats: created.record.seats,
    enrollmentTokenExpiresAt: created.record.expiresAt.toISOString(),
    managerKeyId: managerKey.keyid,
    auditKeyId: auditKey.keyid,
    blobStore: blobStore?.url ?? 'fs',
    encryptionKeySource,
    trustPolicy: options.trustPolicy !== undefined,
    files: {
      managerKey: tokenKeys.managerKey?.uri ?? path('managerKey'),
      managerPublicKey: managerPublicKeyPath,
      auditKey: tokenKeys.auditKey?.uri ?? path('auditKey'),
      adminToken: path('adminTokens'),
      deployToken: path('deployTokens'),
      metricsToken: resolvePath(dir, config.paths.metricsTokens ?? managerLayout.metricsToken),
      ...(encryptionKeySource === path('encryptionKey') ? { encryptionKey: path('encryptionKey') } : {}),
      database: database === undefined ? path('database') : database.url,
      ...(databasePassword === undefined ? {} : { databasePassword: resolvePath(dir, managerLayout.databasePassword) }),
      auditLog: path('auditLog'),
      auditSigners: path('auditSigners'),
      trustPolicy: path('trustPolicy'),
    },
  };
}
