import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { schemaProblems } from '@drover/protocol';
import { describeProblems } from '@drover/protocol/internal';
import { managerLayout, managerLimits } from '../config.js';
import { ManagerError } from '../errors.js';
import { RolloutOptionsSchema } from '../rollouts/options.js';
import { OidcConfigSchema } from '../oidc/oidc-config.js';

// manager.json: what `drover manager init` writes and `drover manager start` reads. Paths are
// relative to the manager directory unless absolute. Secrets are never in this file: it names
// the files (mode 0600) that hold them (and an S3 blob store's credentials come from the
// environment or the AWS credential chain).

const RelativePath = Type.String({ minLength: 1, maxLength: 4096 });

export const ManagerConfigSchema = Type.Object(
  {
    schema: Type.Literal('drover.manager/v1'),
    listen: Type.Object(
      {
        host: Type.String({ minLength: 1, maxLength: 255 }),
        port: Type.Integer({ minimum: 0, maximum: 65535 }),
        backlog: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_048_576, description: 'Connections the kernel queues before the manager accepts them (default 4096; Linux caps it at net.core.somaxconn).' })),
      },
      { additionalProperties: false },
    ),
    admission: Type.Optional(
      Type.Object(
        {
          maxEventLoopBlockMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 60_000, description: 'Milliseconds one event-loop turn may run before new requests get 503 OVERLOADED (default 250; 0: never).' })),
          maxConnections: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000, description: 'Open connections beyond which a new one is answered 503 OVERLOADED and closed (default 50000; 0: no cap).' })),
          retryAfterSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, description: 'The Retry-After of a 503 OVERLOADED (default 5).' })),
        },
        { additionalProperties: false },
      ),
    ),
    paths: Type.Object(
      {
        database: RelativePath,
        blobs: RelativePath,
        auditLog: RelativePath,
        auditSigners: RelativePath,
        managerKey: RelativePath,
        auditKey: RelativePath,
        adminTokens: RelativePath,
        deployTokens: RelativePath,
        // Optional: a directory made before metrics existed reads secrets/metrics.token if present.
        metricsTokens: Type.Optional(RelativePath),
        encryptionKey: RelativePath,
        trustPolicy: RelativePath,
      },
      { additionalProperties: false },
    ),
    settings: Type.Object(
      {
        checkinIntervalSeconds: Type.Optional(Type.Integer({ minimum: 5, maximum: 86400 })),
        minAgentVersion: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
        allowReenrollment: Type.Optional(Type.Boolean()),
        defaultChannel: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
        routePrefix: Type.Optional(Type.String({ maxLength: 256, pattern: '^(/[A-Za-z0-9._~-]+)*/?$' })),
        presignDownloads: Type.Optional(Type.Boolean()),
        rolloutTickMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 60_000, description: 'Milliseconds between two rollout engine ticks (default 1000).' })),
        channelMaxHeld: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Check-ins held at once waiting for a command (the command channel; default 20000; 0: no channel). Beyond, a check-in that asks to wait gets 503 CHANNEL_FULL with Retry-After.' })),
        channelMaxWaitSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 300, description: 'The longest a check-in is held, in seconds (default 55: under the idle timeout of most proxies).' })),
        rollout: Type.Optional(RolloutOptionsSchema),
      },
      { additionalProperties: false },
    ),
    blobStore: Type.Optional(
      Type.Object(
        {
          url: Type.String({ minLength: 6, maxLength: 1100, pattern: '^s3://', description: 's3://bucket or s3://bucket/prefix: artifacts are <prefix>/<sha256>.' }),
          endpoint: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'The S3 API endpoint (default AWS for the region).' })),
          region: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          pathStyle: Type.Optional(Type.Boolean({ description: 'Address the bucket as <endpoint>/<bucket> (MinIO, Swift, most self-hosted servers).' })),
          downloadEndpoint: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'The endpoint presigned download URLs name, when hosts reach the bucket elsewhere.' })),
        },
        { additionalProperties: false, description: 'Artifacts in an S3-compatible bucket instead of paths.blobs. Credentials are never here: AWS_ACCESS_KEY_ID and friends, or the AWS credential chain.' },
      ),
    ),
    database: Type.Optional(
      Type.Object(
        {
          url: Type.String({ minLength: 12, maxLength: 2048, pattern: '^postgres(ql)?://', description: 'postgres://USER@HOST[:PORT]/DATABASE, without the password (DROVER_DATABASE_URL overrides it).' }),
          passwordFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'A 0600 file holding the password (relative to the manager directory).' })),
          poolSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Connections in the pool (default 10).' })),
          statementTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000, description: 'Milliseconds one statement may run (default 5000).' })),
        },
        { additionalProperties: false, description: "The manager's state in PostgreSQL instead of paths.database (SQLite). The password is never here." },
      ),
    ),
    oidc: Type.Optional(OidcConfigSchema),
    logLevel: Type.Optional(Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)))),
  },
  { $id: 'ManagerConfig', additionalProperties: false, description: 'manager.json, in the manager directory.' },
);
export type ManagerConfig = Static<typeof ManagerConfigSchema>;

/** The default configuration `drover manager init` writes. */
export function defaultManagerConfig(listen: { host: string; port: number } = { host: '127.0.0.1', port: 8443 }): ManagerConfig {
  return {
    schema: 'drover.manager/v1',
    listen,
    paths: {
      database: managerLayout.database,
      blobs: managerLayout.blobs,
      auditLog: managerLayout.auditLog,
      auditSigners: managerLayout.auditSigners,
      managerKey: managerLayout.managerKey,
      auditKey: managerLayout.auditKey,
      adminTokens: managerLayout.adminToken,
      deployTokens: managerLayout.deployToken,
      metricsTokens: managerLayout.metricsToken,
      encryptionKey: managerLayout.encryptionKey,
      trustPolicy: managerLayout.trustPolicy,
    },
    settings: { checkinIntervalSeconds: managerLimits.checkinIntervalSeconds, allowReenrollment: true, defaultChannel: 'stable' },
    logLevel: 'info',
  };
}

/** A configured path, resolved against the manager directory. */
export function resolvePath(dir: string, path: string): string {
  return isAbsolute(path) ? path : join(dir, path);
}

/** Reads and checks `<dir>/manager.json`. */
export async function readManagerConfig(dir: string): Promise<ManagerConfig> {
  const path = join(dir, managerLayout.config);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ManagerError('CONFIG_INVALID', `${path} does not exist. Create the manager directory with \`drover manager init --dir ${dir}\`.`, { cause: error });
    }
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ManagerError('CONFIG_INVALID', `${path} is not JSON. Fix it, or recreate it with \`drover manager init\`.`, { cause: error });
  }
  const problems = schemaProblems(ManagerConfigSchema, value);
  if (problems.length > 0) throw new ManagerError('CONFIG_INVALID', `${path} is not a valid manager config (${describeProblems(problems)}).`);
  return value as ManagerConfig;
}
