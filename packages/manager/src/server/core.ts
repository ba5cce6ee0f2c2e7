import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ed25519AuditSigner, isDroverError, parseTrustPolicy } from '@drover/protocol';
import { AgentIdSchema, Fernet, resolveEncryptionKey } from '@drover/protocol/internal';
import type {
  AuditChainHead,
  CheckinRequest,
  CredentialResponse,
  Ed25519Signer,
  Ed25519PublicKey,
  EnrollRequest,
  EnrollResponse,
  TrustPolicy,
  TrustPolicyDocument,
  DeploymentAction,
  DeploymentStatus,
  LatestChangelogResponse,
  UpdateCommand,
  UpdateNotification,
  UpdateNotifyResponse,
} from '@drover/protocol';
import type { EncryptionKeySource } from '@drover/protocol/internal';
import type { Logger } from 'pino';
import { authenticateAgent, issueCredential } from '../agents/credentials.js';
import { openAuditTrail } from '../audit/open.js';
import { AUDIT_HEAD_META_KEY } from '../audit/trail.js';
import type { AuditSignerWithKey } from '../audit/log.js';
import type { BlobStore } from '../blobs/blob-store.js';
import { checkIn } from '../agents/check-in.js';
import { CommandSignals } from '../agents/command-signals.js';
import type { HoldEnd, HoldTicket } from '../agents/command-signals.js';
import type { CheckinHeaders, CheckinOutcome } from '../agents/check-in.js';
import { managerLimits } from '../config.js';
import { systemActor } from '../context.js';
import type { Actor, ManagerContext, ManagerSettings } from '../context.js';
import { openDownload } from '../releases/downloads.js';
import type { DownloadRequest, DownloadResponse } from '../releases/downloads.js';
import { enroll } from '../agents/enrollment.js';
import { checkPushUrl, importAgents } from '../agents/import.js';
import type { AgentImportRequest, ImportedAgent } from '../agents/import.js';
import { createEnrollmentToken, revokeEnrollmentToken } from '../agents/enrollment-tokens.js';
import type { CreateEnrollmentTokenInput, CreatedEnrollmentToken } from '../agents/enrollment-tokens.js';
import { ManagerError } from '../errors.js';
import { echo } from '../presented.js';
import { FsBlobStore } from '../blobs/fs-blob-store.js';
import { S3BlobStore } from '../blobs/s3-blob-store.js';
import type { S3BlobStoreConfig } from '../blobs/s3-config.js';
import { isExternalKeyName, loadSigningKey } from '../keys.js';
import { auditSignerFromEnv, checkKeyPolicy, requireExternalKey } from '../audit/signer-config.js';
import { silentLogger } from '../logger.js';
import { authenticateOperator } from '../http/operator-auth.js';
import type { OperatorIdentity, RouteAccess } from '../http/operator-auth.js';
import { checkOidcConfig } from '../oidc/oidc-config.js';
import type { OidcConfig } from '../oidc/oidc-config.js';
import { OidcVerifier } from '../oidc/oidc-verifier.js';
import { UrlSigner } from '../releases/presign.js';
import { downloadPath, findRelease, latestRelease, registerRelease, uploadArtifact } from '../releases/catalog.js';
import type { RegisteredRelease } from '../releases/catalog.js';
import { SqliteStore } from '../store/sqlite/store.js';
import { openPostgresStore } from './database.js';
import type { DatabaseConfig } from './database.js';
import type { Store } from '../store/store.js';
import type { AgentIdentity, AgentRecord, CommandRecord, EnrollmentTokenRecord, ListAgentsOptions, ReleaseRecord } from '../store/records.js';
import { queueUpdate } from '../agents/update-commands.js';
import { ManagerMetrics } from '../metrics/manager-metrics.js';
import { timedStore } from '../metrics/timed-store.js';
import { latestChangelog } from '../deploy/notify.js';
import { RolloutEngine } from '../rollouts/engine.js';
import type { RolloutEngineOptions } from '../rollouts/engine.js';
import type { AgentRolloutSettings } from '../rollouts/records.js';
import type { QueueUpdateInput } from '../agents/update-commands.js';

const META_KEY_CHECK = 'encryption.check';
const META_PRESIGN_SECRET = 'presign.secret';
const KEY_CHECK_TEXT = 'drover encryption key check';

/**
 * How to open a manager: its state (a store, blobs, the audit log), its keys and tokens, its
 * settings. Every path defaults to a file under `dataDir`; a manager directory (`dir`) supplies
 * all of them.
 */
export interface ManagerOptions {
  /** The directory holding the database, blobs and audit log unless given one by one. */
  dataDir?: string | undefined;
  /** A ready store (default: SQLite at `databasePath`, else `<dataDir>/manager.db`). */
  store?: Store | undefined;
  /** The SQLite database file (default `<dataDir>/manager.db`). */
  databasePath?: string | undefined;
  /** The state in PostgreSQL instead of SQLite (when no `store` is given): migrated at open; a schema newer than the code is refused. */
  database?: DatabaseConfig | undefined;
  /** A ready blob store (default: the filesystem at `blobDir`, else `<dataDir>/blobs`). */
  blobs?: BlobStore | undefined;
  /** The directory of artifact bytes (default `<dataDir>/blobs`). */
  blobDir?: string | undefined;
  /**
   * Artifact bytes in an S3-compatible bucket instead of `blobDir` (when no `blobs` is given):
   * `{ url: 's3://bucket/prefix', endpoint?, region?, pathStyle?, downloadEndpoint? }`. Credentials
   * come from `env`'s AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else the AWS SDK's chain.
   */
  blobStore?: S3BlobStoreConfig | undefined;
  /** The audit log (default `<dataDir>/audit/audit.jsonl`); signers.json goes beside it. */
  auditLogPath?: string | undefined;
  /** The audit log's public keys (default: `signers.json` beside the log). */
  auditSignersPath?: string | undefined;
  /** The audit signer (a KMS fits here); default: the key in `auditKeyPath`. */
  auditSigner?: AuditSignerWithKey | undefined;
  /** The audit key's file (PEM or seed, 0600), or a `pkcs11:` URI of a key in an HSM, when no `auditSigner` is given. */
  auditKeyPath?: string | undefined;
  /** The key that signs update nonces (a local key, or an HSM's: `openPkcs11Signer`); default: the key in `managerKeyPath`. */
  managerKey?: Ed25519Signer | undefined;
  /** The manager key's file (PEM or seed, 0600), or a `pkcs11:` URI of a key in an HSM, when no `managerKey` is given. */
  managerKeyPath?: string | undefined;
  /** Older manager public keys still handed to daemons during a key rotation. */
  previousManagerKeys?: readonly Ed25519PublicKey[] | undefined;
  /** The Fernet key for service tokens at rest; default: from `env` (DROVER_ENCRYPTION_KEY, ...). */
  encryptionKey?: string | undefined;
  /** The releases trust policy (keys and threshold); without one, every publication is refused. */
  trustPolicy?: TrustPolicy | TrustPolicyDocument | undefined;
  /** Tokens with every right (operators). */
  adminTokens?: readonly string[] | undefined;
  /** Tokens that may publish releases (CI). */
  deployTokens?: readonly string[] | undefined;
  /** An OpenID Connect issuer whose ID tokens open the operator API for people, with the role their groups map to (decision 0042). */
  oidc?: OidcConfig | undefined;
  /** Tokens that may read GET /metrics (a Prometheus scraper); admin tokens may too. */
  metricsTokens?: readonly string[] | undefined;
  /** The secret of presigned URLs (default: one kept encrypted in the store). */
  presignSecret?: Uint8Array | undefined;
  /** The manager's tunables; each one left out takes its default. */
  settings?: Partial<ManagerSettings> | undefined;
  /** A pino logger ({@link createManagerLogger}); default: none for `ManagerOptions` alone, JSON lines for a directory or `startManager`. */
  logger?: Logger | undefined;
  /** Read for the encryption key and DEV_ALLOW_EPHEMERAL (default process.env). */
  env?: Record<string, string | undefined> | undefined;
  /** The clock (tests move it); default the system's. */
  now?: (() => Date) | undefined;
  /** The rollout engine: tick interval, defaults of new rollouts, push-mode HTTP client, and whether it starts with the manager (default true). */
  rollout?: (RolloutEngineOptions & { autoStart?: boolean | undefined }) | undefined;
}

function pathOf(explicit: string | undefined, dataDir: string | undefined, relative: string, what: string): string {
  if (explicit !== undefined) return explicit;
  if (dataDir === undefined) throw new ManagerError('CONFIG_INVALID', `No ${what} is configured: pass dataDir (or the path of the ${what}).`);
  return join(dataDir, relative);
}

function parseHead(text: string | undefined): AuditChainHead | undefined {
  if (text === undefined) return undefined;
  const value = JSON.parse(text) as Partial<AuditChainHead>;
  return typeof value.seq === 'number' && typeof value.hash === 'string' ? { seq: value.seq, hash: value.hash } : undefined;
}

/**
 * The manager's operations, over its store, blob store, audit log and keys: what the HTTP routes
 * call, and what an embedding program (or the rollout engine) calls directly.
 *
 * @example
 * ```ts
 * const core = await openManagerCore({ dataDir: '/var/lib/drover-manager', adminTokens: [adminToken] })
 * await core.queueUpdate({ agentId, deploymentId: 'manual-1', artifact: 'agent', version: '1.3.0' })
 * ```
 */
export class ManagerCore {
  readonly context: ManagerContext;
  /** Drives deployments (canary phases, gates, deferral, rollback, push mode). */
  readonly rollouts: RolloutEngine;
  /** Its Prometheus metrics, in a registry of its own (GET /metrics). */
  readonly metrics: ManagerMetrics;
  /** An OpenID Connect issuer whose ID tokens open the operator API for people, with the role their groups map to (decision 0042). */
  oidc?: OidcConfig | undefined;
  /** Tokens that may read GET /metrics besides the admin tokens. */
  readonly metricsTokens: readonly string[];
  readonly #ownsStore: boolean;
  readonly #ownedBlobs: S3BlobStore | undefined;
  // Token sessions of keys this core opened from pkcs11: URIs, ended at close.
  readonly #closeKeys: (() => void)[];
  /** Check-ins held for their commands (the command channel, decision 0041). */
  readonly commandSignals: CommandSignals;
  readonly #unwatchCommands: () => void;
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(
    context: ManagerContext,
    options: { ownsStore: boolean; ownedBlobs?: S3BlobStore | undefined; closeKeys?: (() => void)[]; rollout?: ManagerOptions['rollout']; metrics?: ManagerMetrics | undefined; metricsTokens?: readonly string[] | undefined },
  ) {
    this.context = context;
    this.metrics = options.metrics ?? new ManagerMetrics();
    this.metrics.bindStore(context.store);
    this.metrics.checkinInterval.set(context.settings.checkinIntervalSeconds);
    this.metricsTokens = [...(options.metricsTokens ?? [])];
    this.#ownsStore = options.ownsStore;
    this.#ownedBlobs = options.ownedBlobs;
    this.#closeKeys = options.closeKeys ?? [];
    this.rollouts = new RolloutEngine(context, options.rollout);
    this.commandSignals = new CommandSignals(context.settings.channelMaxHeld);
    this.metrics.bindChannel(() => this.commandSignals.held);
    this.#unwatchCommands =
      context.settings.channelMaxHeld > 0
        ? context.store.watchCommands((agentIds) => {
            if (agentIds === 'all') this.commandSignals.wakeAll();
            else this.commandSignals.notify(agentIds);
          })
        : () => undefined;
    // Resumes any rollout a previous run left open: its state and timers are all in the store.
    if (options.rollout?.autoStart !== false) this.rollouts.start();
  }

  /** Creates a deployment from a deploy notification (POST /manager/v1/updates/notify). */
  notifyUpdate(notification: UpdateNotification, actor: Actor = systemActor): Promise<UpdateNotifyResponse> {
    return this.rollouts.notify(notification, actor);
  }

  /** A deployment's status; without an id, the newest active one (null when none is). */
  async deploymentStatus(deploymentId?: string): Promise<DeploymentStatus | null> {
    if (deploymentId !== undefined) return this.rollouts.status(deploymentId);
    const [active] = await this.context.store.listDeployments({ active: true, limit: 1 });
    return active === undefined ? null : this.rollouts.status(active.id);
  }

  /** pause, resume, abort, promote or rollback a deployment. */
  deploymentAction(deploymentId: string, action: DeploymentAction, actor: Actor = systemActor, reason?: string): Promise<DeploymentStatus> {
    return this.rollouts.act(deploymentId, action, actor, reason);
  }

  latestChangelog(artifact?: 'agent' | 'daemon'): Promise<LatestChangelogResponse> {
    return latestChangelog(this.context, artifact);
  }

  /** Sets an agent's canary group and push URL (push mode: the manager calls its shutdown route). */
  async setAgentRollout(agentId: string, settings: AgentRolloutSettings, actor: Actor = systemActor): Promise<void> {
    if (settings.pushUrl !== undefined) checkPushUrl(settings.pushUrl);
    const audit = this.context.audit.entry({
      event: 'agent.rollout_settings',
      actor: actor.name,
      tokenId: actor.tokenId,
      agentId,
      outcome: 'success',
      details: { group: settings.group ?? null, pushMode: settings.pushUrl !== undefined },
    });
    if (!(await this.context.store.setAgentRolloutSettings(agentId, settings, [audit]))) {
      throw new ManagerError('AGENT_NOT_FOUND', `No agent has id ${echo(agentId, AgentIdSchema, '(the given id)')}. List the agents with \`drover agents list\`.`);
    }
    await this.context.audit.flush();
  }

  /**
   * Imports agents another manager created (`drover agents import`, decision 0036) as push-mode
   * agents, their service tokens re-encrypted under this manager's key: all of them or none.
   */
  importAgents(request: AgentImportRequest, actor: Actor = systemActor): Promise<ImportedAgent[]> {
    return importAgents(this.context, request, actor);
  }

  /**
   * Removes a host (`drover agents remove`): its credential, and so its check-ins, results and
   * downloads, are refused from then on (AGENT_REVOKED, audited); its open rollout targets are
   * skipped. Removing a removed host changes nothing and records nothing.
   */
  async revokeAgent(agentId: string, actor: Actor = systemActor): Promise<AgentRecord> {
    const notFound = (): ManagerError => new ManagerError('AGENT_NOT_FOUND', `No agent has id ${echo(agentId, AgentIdSchema, '(the given id)')}. List the agents with \`drover agents list\`.`);
    const before = await this.context.store.getAgent(agentId);
    if (before === undefined) throw notFound();
    const audit = this.context.audit.entry({
      event: 'agent.revoked',
      actor: actor.name,
      tokenId: actor.tokenId,
      agentId,
      outcome: 'success',
      details: { machineId: before.machineId, hostname: before.hostname },
    });
    const result = await this.context.store.revokeAgent(agentId, this.context.now(), [audit]);
    if (result === 'not_found') throw notFound();
    await this.context.audit.flush();
    if (result === 'revoked') this.logger.info({ event: 'agent.revoked', agentId, actor: actor.name }, 'An operator removed a host; its credential is refused from now on');
    const after = await this.context.store.getAgent(agentId);
    if (after === undefined) throw notFound();
    return after;
  }

  /** True once close() has begun: new requests are refused with 503 SHUTTING_DOWN. */
  get closing(): boolean {
    return this.#closing;
  }

  get logger(): Logger {
    return this.context.logger;
  }

  enroll(request: EnrollRequest, headerMachineId?: string): Promise<EnrollResponse> {
    return enroll(this.context, request, headerMachineId);
  }

  authenticateAgent(authorization: string | undefined, agentId?: string, machineId?: string): Promise<AgentIdentity> {
    return authenticateAgent(this.context, authorization, agentId, machineId);
  }

  /** A rotated credential for an authenticated host (decision 0032); see {@link issueCredential}. */
  issueCredential(agent: AgentIdentity, machineId: string): Promise<CredentialResponse> {
    return issueCredential(this.context, agent, machineId);
  }

  authenticateOperator(authorization: string | undefined, access: RouteAccess, route: string): Promise<OperatorIdentity> {
    return authenticateOperator(this.context, authorization, access, route);
  }

  async checkIn(agent: AgentIdentity, headers: CheckinHeaders, body: CheckinRequest): Promise<CheckinOutcome> {
    const outcome = await checkIn(this.context, agent, headers, body);
    // Accepted: every result in it was recorded (a refused one throws), and these commands go out.
    this.metrics.recordCheckin(body, outcome.body.commands.length);
    // A result may let the rollout move on (the next target, a phase's gate): not at the next tick, now.
    if (body.results.length > 0) this.rollouts.poke();
    const at = this.context.now().getTime();
    for (const result of body.results) {
      if (result.outcome !== 'succeeded') continue;
      const command = await this.context.store.getCommand(result.commandId);
      if (command?.type === 'update') this.metrics.commandCommitted.observe(Math.max(0, (at - command.createdAt.getTime()) / 1000));
    }
    return outcome;
  }

  /** Queues a signed update command for an agent (see agents/update-commands.ts). */
  queueUpdate(input: QueueUpdateInput, actor: Actor = systemActor): Promise<UpdateCommand> {
    return queueUpdate(this.context, input, actor);
  }

  createEnrollmentToken(input: CreateEnrollmentTokenInput, actor: Actor = systemActor): Promise<CreatedEnrollmentToken> {
    return createEnrollmentToken(this.context, input, actor);
  }

  revokeEnrollmentToken(id: string, actor: Actor = systemActor): Promise<void> {
    return revokeEnrollmentToken(this.context, id, actor);
  }

  listEnrollmentTokens(): Promise<EnrollmentTokenRecord[]> {
    return this.context.store.listEnrollmentTokens();
  }

  registerRelease(envelope: unknown, actor: Actor = systemActor): Promise<RegisteredRelease> {
    return registerRelease(this.context, envelope, actor);
  }

  uploadArtifact(params: { artifact: string; version: string; platform: string }, source: AsyncIterable<Uint8Array>, actor: Actor = systemActor): Promise<ReleaseRecord> {
    return uploadArtifact(this.context, params, source, actor);
  }

  latestRelease(query: { artifact: string; platform: string; channel?: string | undefined }): Promise<ReleaseRecord> {
    return latestRelease(this.context, query);
  }

  findRelease(query: { artifact: string; version: string; platform?: string | undefined }): Promise<ReleaseRecord> {
    return findRelease(this.context, query);
  }

  openDownload(request: DownloadRequest): Promise<DownloadResponse> {
    return openDownload(this.context, request);
  }

  /** The manager-relative download URL of a release (with the route prefix). */
  downloadUrl(release: Pick<ReleaseRecord, 'artifact' | 'version' | 'platform'>): string {
    return this.context.settings.routePrefix + downloadPath(release);
  }

  /** A presigned download URL (path and query, with the route prefix), valid for `ttlSeconds`. */
  presignDownload(release: Pick<ReleaseRecord, 'artifact' | 'version' | 'platform'>, ttlSeconds?: number): { url: string; expiresAt: Date } {
    const signed = this.context.urlSigner.presign(downloadPath(release), { ...(ttlSeconds === undefined ? {} : { ttlSeconds }), now: this.context.now() });
    return { url: this.context.settings.routePrefix + signed.url, expiresAt: signed.expiresAt };
  }

  getAgent(agentId: string): Promise<AgentRecord | undefined> {
    return this.context.store.getAgent(agentId);
  }

  listAgents(options: Partial<ListAgentsOptions> = {}): Promise<AgentRecord[]> {
    return this.context.store.listAgents({ ...options, limit: Math.min(options.limit ?? managerLimits.listAgentsMax, managerLimits.listAgentsMax) });
  }

  listCommands(agentId: string): Promise<CommandRecord[]> {
    return this.context.store.listCommands(agentId);
  }

  /** An agent's service token, decrypted: what the manager presents to the agent in push mode. */
  async serviceToken(agentId: string): Promise<string> {
    const agent = await this.context.store.getAgent(agentId);
    if (agent === undefined) throw new ManagerError('AGENT_NOT_FOUND', `No agent has id ${echo(agentId, AgentIdSchema, '(the given id)')}.`);
    return this.context.fernet.decryptText(agent.serviceTokenCiphertext);
  }

  /** Throws unless the manager can serve requests (for /readyz). */
  async ready(): Promise<void> {
    if (this.#closing) throw new ManagerError('SHUTTING_DOWN', 'The manager is shutting down.');
    await this.context.store.ping();
    // The bucket: while it cannot be reached, neither uploads nor downloads work (BLOB_STORE_*).
    await this.context.blobs.ping?.();
    const problem = this.context.audit.problem;
    // Changes still commit with their records (in the store's outbox), but the log is behind.
    if (problem !== undefined) throw new ManagerError('AUDIT_UNAVAILABLE', `Audit records wait in the store: the audit log cannot be written (${problem}). Check the disk holding the audit log.`);
  }

  /** Marks the manager closing (new requests get 503) without closing anything yet; held check-ins are answered. */
  beginShutdown(): void {
    this.#closing = true;
    this.commandSignals.close();
  }

  /**
   * Holds a check-in that got no new command, for up to `seconds` (capped by
   * channelMaxWaitSeconds), until a command for its agent may be waiting; undefined when the
   * channel is full or the manager stopping (the ticket is then released).
   */
  holdForCommands(ticket: HoldTicket, seconds: number, until: AbortSignal): Promise<HoldEnd> | undefined {
    // Stopping closes the signals (beginShutdown, close): they then hold nothing.
    return this.commandSignals.hold(ticket, Math.min(seconds, this.context.settings.channelMaxWaitSeconds) * 1000, until);
  }

  /** Audits the stop, closes the audit log and (if it opened it) the store. Idempotent. */
  close(): Promise<void> {
    this.#closing = true;
    this.commandSignals.close();
    this.#unwatchCommands();
    this.#closed ??= (async () => {
      await this.rollouts.stop();
      try {
        await this.context.audit.append({ event: 'manager.stopped', actor: 'system', outcome: 'success', details: {} });
      } catch (error) {
        this.context.logger.error({ event: 'audit.write_failed', err: error }, 'could not audit the manager stop');
      }
      await this.context.audit.close();
      if (this.#ownsStore) await this.context.store.close();
      this.#ownedBlobs?.close();
      for (const close of this.#closeKeys) close();
      this.context.logger.info({ event: 'manager.stopped' }, 'manager stopped');
    })();
    return this.#closed;
  }
}

/**
 * Opens a manager: store (migrated), blob store, keys, encryption key, audit log (resumed, and
 * checked against the head kept in the store). Refuses to start without an encryption key
 * (ENCRYPTION_KEY_MISSING), without key files unless DEV_ALLOW_EPHEMERAL=true (KEY_FILE_MISSING),
 * with an encryption key other than the one the stored tokens were written with
 * (ENCRYPTION_KEY_MISMATCH), or with a damaged audit log (AUDIT_LOG_CORRUPT, AUDIT_LOG_TRUNCATED).
 */
export async function openManagerCore(options: ManagerOptions): Promise<ManagerCore> {
  const env = options.env ?? process.env;
  let logger = options.logger ?? silentLogger();
  const now = options.now ?? ((): Date => new Date());
  // The encryption key first: without it nothing else is worth opening.
  let encryptionKey = options.encryptionKey;
  let keySource: EncryptionKeySource | 'option' = 'option';
  if (encryptionKey === undefined) {
    const resolved = resolveEncryptionKey(env);
    encryptionKey = resolved.key;
    keySource = resolved.source;
  }
  const fernet = new Fernet(encryptionKey);
  const closeKeys: (() => void)[] = [];
  const ephemeral: string[] = [];
  const load = async (path: string | undefined, what: string): Promise<Ed25519Signer> => {
    const loaded = await loadSigningKey(path, what, { env, logger });
    if (loaded.close !== undefined) closeKeys.push(loaded.close);
    if (loaded.ephemeral) ephemeral.push(what);
    return loaded.key;
  };
  let managerKey: Ed25519Signer;
  let auditSigner = options.auditSigner;
  try {
    // REQUIRE_KMS=true: no key of this manager may be a file, an environment value or a throwaway.
    checkKeyPolicy(env);
    if (options.managerKey === undefined) {
      requireExternalKey(env, 'manager signing key', options.managerKeyPath ?? 'a throwaway key', options.managerKeyPath !== undefined && isExternalKeyName(options.managerKeyPath));
    }
    managerKey = options.managerKey ?? (await load(options.managerKeyPath, 'manager signing key'));
    if (auditSigner === undefined) {
      // The seed's AUDIT_SIGNING_* settings, when set, take the place of the audit key file.
      const configured = await auditSignerFromEnv(env, { logger });
      if (configured !== undefined) {
        closeKeys.push(() => {
          configured.close();
        });
        auditSigner = { signer: configured.signer, publicKey: configured.publicKey };
      } else {
        requireExternalKey(env, 'audit key', options.auditKeyPath ?? 'a throwaway key', options.auditKeyPath !== undefined && isExternalKeyName(options.auditKeyPath));
        const auditKey = await load(options.auditKeyPath, 'audit key');
        auditSigner = { signer: ed25519AuditSigner(auditKey), publicKey: auditKey.publicKey };
      }
    }
  } catch (error) {
    for (const close of closeKeys) close();
    throw error;
  }
  // DEV_ALLOW_EPHEMERAL=true: every line this manager logs says its keys die with it, so a
  // development manager is never mistaken for a real one in a log.
  if (ephemeral.length > 0) logger = logger.child({ ephemeralKeys: `DEV_ALLOW_EPHEMERAL=true: throwaway ${ephemeral.join(' and ')}, lost when the manager stops` });
  const trustPolicy = options.trustPolicy === undefined ? undefined : 'keys' in options.trustPolicy && options.trustPolicy.keys instanceof Map ? (options.trustPolicy as TrustPolicy) : parseTrustPolicy(options.trustPolicy);

  // An S3 bucket is opened (a client made, nothing sent) before the store: a malformed URL stops here.
  const ownedBlobs = options.blobs === undefined && options.blobStore !== undefined ? new S3BlobStore({ ...options.blobStore, env, logger }) : undefined;
  const ownsStore = options.store === undefined;
  const metrics = new ManagerMetrics();
  const openedStore =
    options.store ??
    (options.database === undefined
      ? SqliteStore.open(pathOf(options.databasePath, options.dataDir, 'manager.db', 'database'))
      : await openPostgresStore(options.database, (error) => {
          logger.warn({ event: 'store.connection_lost', code: error.code, message: error.message }, 'a pooled PostgreSQL connection was lost; the next call reconnects');
        }));
  // Timed at the Store boundary: every query's latency, without touching a query.
  const store = timedStore(openedStore, metrics);
  try {
    // Tokens written under one key are unreadable under another: refuse rather than find out per agent.
    const check = await store.getMeta(META_KEY_CHECK);
    if (check === undefined) await store.setMeta(META_KEY_CHECK, fernet.encrypt(KEY_CHECK_TEXT));
    else {
      let matches = false;
      try {
        matches = fernet.decryptText(check) === KEY_CHECK_TEXT;
      } catch (error) {
        if (!isDroverError(error)) throw error;
      }
      if (!matches) {
        throw new ManagerError('ENCRYPTION_KEY_MISMATCH', 'The encryption key differs from the one this manager\'s stored service tokens were encrypted with. Set DROVER_ENCRYPTION_KEY (or the CIRIS variables) to the original key.');
      }
    }
    let presignSecret = options.presignSecret;
    if (presignSecret === undefined) {
      // Kept in the store, encrypted, so presigned URLs survive restarts and are shared by replicas.
      const stored = await store.getMeta(META_PRESIGN_SECRET);
      if (stored === undefined) {
        presignSecret = randomBytes(32);
        await store.setMeta(META_PRESIGN_SECRET, fernet.encrypt(presignSecret));
      } else presignSecret = fernet.decrypt(stored);
    }
    const storedHead = parseHead(await store.getMeta(AUDIT_HEAD_META_KEY));
    const audit = await openAuditTrail({
      store,
      logPath: pathOf(options.auditLogPath, options.dataDir, 'audit/audit.jsonl', 'audit log'),
      signersPath: options.auditSignersPath,
      signer: auditSigner,
      storedHead,
      logger,
      now,
    });
    const settings: ManagerSettings = {
      checkinIntervalSeconds: options.settings?.checkinIntervalSeconds ?? managerLimits.checkinIntervalSeconds,
      minAgentVersion: options.settings?.minAgentVersion,
      allowReenrollment: options.settings?.allowReenrollment ?? true,
      defaultChannel: options.settings?.defaultChannel ?? 'stable',
      routePrefix: (options.settings?.routePrefix ?? '').replace(/\/+$/, ''),
      presignDownloads: options.settings?.presignDownloads ?? false,
      channelMaxHeld: options.settings?.channelMaxHeld ?? managerLimits.channelMaxHeld,
      channelMaxWaitSeconds: options.settings?.channelMaxWaitSeconds ?? managerLimits.channelMaxWaitSeconds,
    };
    const context: ManagerContext = {
      store,
      blobs: options.blobs ?? ownedBlobs ?? new FsBlobStore(pathOf(options.blobDir, options.dataDir, 'blobs', 'blob directory')),
      audit,
      managerKey,
      managerPublicKeys: [managerKey.publicKey, ...(options.previousManagerKeys ?? []).filter((key) => !key.equals(managerKey.publicKey))],
      fernet,
      urlSigner: new UrlSigner(presignSecret),
      trustPolicy,
      adminTokens: [...(options.adminTokens ?? [])],
      deployTokens: [...(options.deployTokens ?? [])],
      oidc: options.oidc === undefined ? undefined : new OidcVerifier(checkOidcConfig(options.oidc), { now }),
      settings,
      logger,
      now,
    };
    if (context.adminTokens.length === 0) logger.warn({ event: 'config.no_admin_token' }, 'no admin token is configured: the operator API refuses every request');
    if (trustPolicy === undefined) logger.warn({ event: 'config.no_trust_policy' }, 'no release trust policy is configured: every release publication is refused');
    await audit.append({
      event: 'manager.started',
      actor: 'system',
      outcome: 'success',
      details: {
        managerKeyId: managerKey.keyid,
        auditKeyId: auditSigner.signer.kid,
        store: store.kind,
        blobs: ownedBlobs === undefined ? (options.blobs === undefined ? 'fs' : 'custom') : 's3',
        encryptionKeySource: keySource,
        trustedReleaseKeys: trustPolicy === undefined ? [] : [...trustPolicy.keys.keys()],
        releaseThreshold: trustPolicy?.threshold ?? 0,
      },
    });
    logger.info({ event: 'manager.started', managerKeyId: managerKey.keyid, auditKeyId: auditSigner.signer.kid, store: store.kind, encryptionKeySource: keySource }, 'manager core ready');
    return new ManagerCore(context, { ownsStore, ownedBlobs, closeKeys, rollout: options.rollout, metrics, metricsTokens: options.metricsTokens });
  } catch (error) {
    if (ownsStore) await store.close();
    ownedBlobs?.close();
    for (const close of closeKeys) close();
    throw error;
  }
}
