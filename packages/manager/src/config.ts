import { limits as protocolLimits } from '@drover/protocol/internal';

// Limits and defaults of the manager, in one place, each with its unit.
/**
 * The manager's limits and defaults, each with its unit: body sizes a proxy in front must allow,
 * token and URL lifetimes, the shutdown grace period.
 */
export const managerLimits = {
  // The command channel (decision 0041): check-ins held waiting for a command, per manager.
  channelMaxHeld: 20_000,
  channelMaxWaitSeconds: 55, // under the 60 s idle timeout of most proxies and load balancers
  // Request bodies: a peer never makes the manager buffer more than this before validation.
  enrollBodyMaxBytes: 64 * 1024, // bytes: an enrollment (the inventory is the big part)
  checkinBodyMaxBytes: 256 * 1024, // bytes: a check-in with 64 results and an inventory
  releaseBodyMaxBytes: protocolLimits.envelopeMaxBytes + 4096, // bytes: {"release": <envelope>}
  adminBodyMaxBytes: 16 * 1024, // bytes: operator API bodies
  importBodyMaxBytes: 1024 * 1024, // bytes: POST /v1/agents/import, up to importAgentsMax agents
  importAgentsMax: 1000, // agents in one import (all or nothing)
  artifactMaxBytes: 4 * 1024 * 1024 * 1024, // bytes: the largest artifact a release may declare
  headerMaxBytes: 16 * 1024, // bytes: Node's default, stated so a proxy in front can match it
  // Every request part (body, query, path, headers), whatever its schema, free-form fields included
  // (a notification's metadata, a release to publish): checked before anything else looks at it.
  requestJsonMaxDepth: 32, // nested arrays and objects
  requestJsonMaxValues: 10_000, // values (strings, numbers, booleans, nulls, arrays, objects) in one request part

  // Enrollment.
  enrollmentTokenMaxSeats: 1_000_000, // seats on one enrollment token
  enrollmentTokenDefaultTtlSeconds: 24 * 3600, // seconds an enrollment token lives by default
  enrollmentTokenMaxTtlSeconds: 366 * 86400, // seconds: the longest-lived enrollment token

  // Check-in.
  checkinIntervalSeconds: 60, // seconds between check-ins, told to every daemon
  commandsPerCheckin: 32, // commands sent in one check-in response (the wire schema's maxItems)

  // Updates.
  updateDeadlineSeconds: 3600, // seconds a daemon has to commit an update
  drainTimeoutSeconds: 60, // seconds the agent may drain before a forced stop
  nonceGraceSeconds: 600, // seconds a nonce outlives its command's deadline, for late results

  // Downloads.
  presignDefaultTtlSeconds: 900, // seconds a presigned URL stays valid by default
  presignMaxTtlSeconds: 24 * 3600, // seconds: the longest-lived presigned URL
  redirectTtlSeconds: 300, // seconds the object store's presigned URL behind a 307 from GET /v1/download lives

  // Connections.
  listenBacklog: 4096, // connections the kernel queues before accept (Linux caps it at net.core.somaxconn)

  // Lifecycle.
  shutdownGraceMs: 10_000, // milliseconds in-flight requests get after SIGTERM
  listAgentsMax: 1000, // agents in one page of GET /v1/agents
  agentSearchMaxChars: 128, // characters of GET /v1/agents?q=
} as const;

/** Where `drover manager init` puts things inside the manager directory, relative to it. */
export const managerLayout = {
  config: 'manager.json',
  database: 'manager.db',
  databasePassword: 'secrets/database.password',
  blobs: 'blobs',
  auditLog: 'audit/audit.jsonl',
  auditSigners: 'audit/signers.json',
  managerKey: 'keys/manager.key',
  auditKey: 'keys/audit.key',
  adminToken: 'secrets/admin.token',
  deployToken: 'secrets/deploy.token',
  metricsToken: 'secrets/metrics.token',
  encryptionKey: 'secrets/encryption.key',
  trustPolicy: 'trust.json',
} as const;
