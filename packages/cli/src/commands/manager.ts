import { resolve } from 'node:path';
import { initManagerDirectory, migrateManagerDatabase, migrateStoreToPostgres, parseGroupRoles, startManager } from '@drover/manager';
import type { OidcConfig } from '@drover/manager';
import { parseTrustPolicy } from '@drover/protocol';
import type { TrustPolicyDocument } from '@drover/protocol';
import type { Command, CommandIo, OptionValues } from '../cli.js';
import { flag, optionalString, parseDurationSeconds, requireString, stringList } from '../cli.js';
import { CliError } from '../errors.js';
import { readInput } from '../fs-atomic.js';

function parsePort(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError('USAGE_ERROR', `--port takes a number from 0 to 65535; got "${text}".`);
  return port;
}

function parseSeats(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const seats = Number(text);
  if (!Number.isInteger(seats) || seats < 1) throw new CliError('USAGE_ERROR', `--seats takes a whole number of at least 1; got "${text}".`);
  return seats;
}

type BlobStoreChoice = NonNullable<Parameters<typeof initManagerDirectory>[0]['blobStore']>;

/** --blob-store and the --s3-* options, each falling back to its DROVER_* variable; undefined: the filesystem. */
function blobStoreOption(values: OptionValues, env: CommandIo['env']): BlobStoreChoice | undefined {
  const pick = (option: string, variable: string): string | undefined => optionalString(values, option) ?? (env[variable]?.trim() || undefined);
  const url = pick('blob-store', 'DROVER_BLOB_STORE');
  if (url === undefined || url === 'fs') return undefined;
  const endpoint = pick('s3-endpoint', 'DROVER_S3_ENDPOINT');
  const region = pick('s3-region', 'DROVER_S3_REGION') ?? (env['AWS_REGION']?.trim() || undefined);
  const downloadEndpoint = pick('s3-download-endpoint', 'DROVER_S3_DOWNLOAD_ENDPOINT');
  const pathStyleEnv = env['DROVER_S3_PATH_STYLE']?.trim();
  const pathStyle = flag(values, 's3-path-style') || (pathStyleEnv !== undefined && /^(1|true|yes|on)$/i.test(pathStyleEnv));
  return { url, ...(endpoint === undefined ? {} : { endpoint }), ...(region === undefined ? {} : { region }), ...(pathStyle ? { pathStyle } : {}), ...(downloadEndpoint === undefined ? {} : { downloadEndpoint }) };
}

// Single sign-on for people (decision 0042): the --oidc-* flags of init and start.
const oidcOptions = {
  'oidc-issuer': { type: 'string', arg: 'URL', help: "People log in through this OpenID Connect issuer (https; its ID tokens open the operator API)." },
  'oidc-client-id': { type: 'string', arg: 'ID', help: 'The client id drover is registered under at the issuer: the audience of the ID tokens, and the client `drover login` uses.' },
  'oidc-groups-claim': { type: 'string', arg: 'NAME', help: 'The ID token claim listing the groups (default: groups).' },
  'oidc-group-role': { type: 'string', arg: 'GROUP=ROLE', multiple: true, help: 'A group and the role its members get: viewer, operator or admin, e.g. drover-admins=admin.' },
} as const;

/** The --oidc-* flags given, as the members of an OidcConfig (each undefined when its flag is absent). */
function oidcFlags(values: OptionValues): Partial<OidcConfig> {
  const roles = stringList(values, 'oidc-group-role');
  return {
    issuer: optionalString(values, 'oidc-issuer'),
    audience: optionalString(values, 'oidc-client-id'),
    groupsClaim: optionalString(values, 'oidc-groups-claim'),
    groupRoles: roles.length === 0 ? undefined : parseGroupRoles(roles.join(',')),
  };
}

/** init's OidcConfig: all of issuer, client id and a group role, or none of the flags. */
function initOidc(values: OptionValues): OidcConfig | undefined {
  const { issuer, audience, groupsClaim, groupRoles } = oidcFlags(values);
  if (issuer === undefined && audience === undefined && groupsClaim === undefined && groupRoles === undefined) return undefined;
  if (issuer === undefined || audience === undefined || groupRoles === undefined) {
    throw new CliError('USAGE_ERROR', 'Single sign-on needs --oidc-issuer, --oidc-client-id and at least one --oidc-group-role GROUP=ROLE together.');
  }
  return { issuer, audience, groupsClaim, groupRoles };
}

/**
 * start's flags, as the DROVER_OIDC_* variables they stand for: the manager merges those over
 * manager.json's oidc member by member, so a flag overrides its variable, which overrides the file.
 */
function startOidcEnv(values: OptionValues): Record<string, string> {
  const { issuer, audience, groupsClaim, groupRoles } = oidcFlags(values);
  const env: Record<string, string> = {};
  if (issuer !== undefined) env['DROVER_OIDC_ISSUER'] = issuer;
  if (audience !== undefined) env['DROVER_OIDC_AUDIENCE'] = audience;
  if (groupsClaim !== undefined) env['DROVER_OIDC_GROUPS_CLAIM'] = groupsClaim;
  if (groupRoles !== undefined) env['DROVER_OIDC_GROUP_ROLES'] = Object.entries(groupRoles).map(([group, role]) => `${group}=${role}`).join(',');
  return env;
}

export const managerInitCommand: Command = {
  usage:
    "--dir DIR [--trust TRUST.json] [--host H] [--port P] [--seats N] [--expires-in 24h] [--database postgres://USER:PASSWORD@HOST/DB] [--blob-store s3://BUCKET/PREFIX [--s3-endpoint URL] [--s3-region R] [--s3-path-style] [--s3-download-endpoint URL]] [--signing-key 'pkcs11:...' | awskms:...] [--audit-key 'pkcs11:...' | awskms:...] [--oidc-issuer URL --oidc-client-id ID --oidc-group-role GROUP=ROLE... [--oidc-groups-claim NAME]]",
  description:
    'Secret files are written 0600 under DIR/keys and DIR/secrets. The enrollment token is printed once and\n' +
    'stored only hashed: hand it to the hosts that should enroll. Without --trust, the manager accepts no\n' +
    'release until DIR/trust.json exists (`drover trust create --out DIR/trust.json`).\n' +
    'Artifacts are kept in DIR/blobs unless --blob-store names an S3-compatible bucket (AWS S3, Cloudflare R2,\n' +
    'MinIO): hosts then download from it through short-lived presigned URLs. The bucket is checked now.\n' +
    'Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, a role: the AWS chain)\n' +
    'and are never written to manager.json. Each --s3-* option falls back to its variable: DROVER_BLOB_STORE,\n' +
    'DROVER_S3_ENDPOINT, DROVER_S3_REGION, DROVER_S3_PATH_STYLE, DROVER_S3_DOWNLOAD_ENDPOINT; at start the same\n' +
    'variables override manager.json.\n' +
    'The state is kept in DIR/manager.db (SQLite) unless --database (or DROVER_DATABASE_URL) names a PostgreSQL\n' +
    'database: it is connected to and migrated now; manager.json keeps the URL without its password, which goes\n' +
    'to DIR/secrets/database.password (0600). At start DROVER_DATABASE_URL overrides manager.json.\n' +
    'With --signing-key and --audit-key naming Ed25519 keys in an HSM (pkcs11: URIs, keys made with `drover keygen\n' +
    '--pkcs11`), no private key is written to DIR: manager.json names the URIs, opened at every start (the PIN from\n' +
    'pin-source= or DROVER_PKCS11_PIN, the module from module-path= or DROVER_PKCS11_MODULE). The same for keys in AWS\n' +
    'KMS named awskms:KEY_ID, awskms:alias/NAME or awskms:ARN (Ed25519, ECC_NIST_EDWARDS25519; AWS credentials as the\n' +
    'SDK finds them, with kms:GetPublicKey and kms:Sign on the key).\n' +
    'With --oidc-issuer, --oidc-client-id and --oidc-group-role, people log in with single sign-on (`drover login`,\n' +
    "the console): their ID tokens open the operator API with the highest role their groups map to (manager.json's\n" +
    'oidc; DROVER_OIDC_ISSUER, _AUDIENCE, _GROUPS_CLAIM and _GROUP_ROLES override it at start).',
  options: {
    dir: { type: 'string', arg: 'DIR', help: 'The manager directory (created if missing; must not hold a manager yet).' },
    trust: { type: 'string', arg: 'TRUST.json', help: 'The trust policy releases must satisfy (from `drover trust create`).' },
    host: { type: 'string', arg: 'H', help: 'Address to listen on (default: 127.0.0.1).' },
    port: { type: 'string', arg: 'P', help: 'Port to listen on (default: 8443).' },
    seats: { type: 'string', arg: 'N', help: 'Enrollments the first enrollment token allows (default: 1).' },
    'expires-in': { type: 'string', arg: 'DURATION', help: 'Lifetime of the first enrollment token: 1h, 7d (default: 24h).' },
    database: { type: 'string', arg: 'URL', help: 'PostgreSQL for the state: postgres://USER:PASSWORD@HOST:PORT/DB (default: DIR/manager.db, SQLite).' },
    'blob-store': { type: 'string', arg: 'URL', help: 'Where artifacts are kept: fs (DIR/blobs, the default) or s3://BUCKET/PREFIX.' },
    's3-endpoint': { type: 'string', arg: 'URL', help: 'The S3 API endpoint, e.g. https://ACCOUNT.r2.cloudflarestorage.com (default: AWS).' },
    's3-region': { type: 'string', arg: 'R', help: 'The signing region (default: AWS_REGION, else us-east-1; R2: auto).' },
    's3-path-style': { type: 'boolean', help: 'Address the bucket as ENDPOINT/BUCKET (MinIO and most self-hosted servers).' },
    's3-download-endpoint': { type: 'string', arg: 'URL', help: 'The endpoint presigned download URLs name, if hosts reach the bucket elsewhere.' },
    'signing-key': { type: 'string', arg: 'URI', help: 'The manager key (signs update nonces) in an HSM or AWS KMS: a pkcs11: URI or awskms: name (default: a new key file).' },
    'audit-key': { type: 'string', arg: 'URI', help: 'The audit key in an HSM or AWS KMS: a pkcs11: URI or awskms: name (default: a new key file).' },
    ...oidcOptions,
  },
  async run({ values, io }) {
    const dir = requireString(values, 'dir');
    const blobStore = blobStoreOption(values, io.env);
    const oidc = initOidc(values);
    const trustPath = optionalString(values, 'trust');
    let trustPolicy: TrustPolicyDocument | undefined;
    if (trustPath !== undefined) {
      try {
        trustPolicy = JSON.parse((await readInput(trustPath, 'Trust policy')).toString('utf8')) as TrustPolicyDocument;
      } catch (error) {
        if (error instanceof CliError) throw error;
        throw new CliError('USAGE_ERROR', `Trust policy ${trustPath} is not JSON. Create one with \`drover trust create\`.`, { cause: error });
      }
      parseTrustPolicy(trustPolicy);
    }
    const expiresIn = optionalString(values, 'expires-in');
    const databaseUrl = optionalString(values, 'database') ?? (io.env['DROVER_DATABASE_URL']?.trim() || undefined);
    const created = await initManagerDirectory({
      dir,
      host: optionalString(values, 'host'),
      port: parsePort(optionalString(values, 'port')),
      seats: parseSeats(optionalString(values, 'seats')),
      expiresInSeconds: expiresIn === undefined ? undefined : parseDurationSeconds(expiresIn, 'expires-in'),
      trustPolicy,
      blobStore,
      database: databaseUrl === undefined ? undefined : { url: databaseUrl },
      managerKey: optionalString(values, 'signing-key'),
      auditKey: optionalString(values, 'audit-key'),
      oidc,
      env: io.env,
    });
    // The admin and deploy tokens stay in their 0600 files: output may end up in a CI log.
    const shown = Object.fromEntries(Object.entries(created).filter(([name]) => name !== 'adminToken' && name !== 'deployToken'));
    return {
      data: shown,
      text: [
        `Created a manager in ${created.dir}`,
        `  manager key ${created.managerKeyId} (public half: ${created.files['managerPublicKey'] ?? ''}: pin it in droverd's config)`,
        `  audit key   ${created.auditKeyId}; the audit log verifies with ${created.files['auditSigners'] ?? ''}`,
        `  state:       ${created.files['database'] ?? ''}${created.files['databasePassword'] === undefined ? '' : ` (password in ${created.files['databasePassword']})`}`,
        `  artifacts:   ${created.blobStore === 'fs' ? `${created.dir}/blobs` : `${created.blobStore} (credentials from the AWS variables, never in manager.json)`}`,
        ...(oidc === undefined ? [] : [`  single sign-on: ${oidc.issuer} (client ${oidc.audience}; people log in with \`drover login\`)`]),
        created.trustPolicy ? `  trust policy: ${created.files['trustPolicy'] ?? ''}` : `  no trust policy yet: write ${created.files['trustPolicy'] ?? ''} before publishing releases`,
        '',
        'Keep these secret (files are 0600; back them up somewhere safe):',
        `  admin token:    ${created.files['adminToken'] ?? ''}  (operators: DROVER_ADMIN_TOKEN or --token-file)`,
        `  deploy token:   ${created.files['deployToken'] ?? ''}  (CI: publishing releases)`,
        `  metrics token:  ${created.files['metricsToken'] ?? ''}  (Prometheus: GET /metrics)`,
        `  manager key:    ${created.files['managerKey'] ?? ''}`,
        `  audit key:      ${created.files['auditKey'] ?? ''}`,
        created.files['encryptionKey'] === undefined ? `  encryption key: from ${created.encryptionKeySource}` : `  encryption key: ${created.files['encryptionKey']}  (or set DROVER_ENCRYPTION_KEY)`,
        '',
        `Enrollment token (shown once, ${created.enrollmentTokenSeats} seat(s), expires ${created.enrollmentTokenExpiresAt}):`,
        `  ${created.enrollmentToken}`,
        '',
        `Start it with: drover manager start --dir ${created.dir}`,
      ].join('\n'),
    };
  },
};

export const managerStartCommand: Command = {
  usage: '--dir DIR [--host H] [--port P] [--tls-cert CERT.pem --tls-key KEY.pem] [--oidc-issuer URL] [--oidc-client-id ID] [--oidc-group-role GROUP=ROLE...] [--oidc-groups-claim NAME]',
  description:
    'With --tls-cert and --tls-key it serves HTTPS itself (TLS 1.2 or later; the key file 0600); both are checked\n' +
    'before it listens (TLS_INVALID: unreadable, expired, a key that does not go with the certificate). Hosts and\n' +
    'the CLI trust a private CA through NODE_EXTRA_CA_CERTS. Behind a reverse proxy that terminates TLS, leave\n' +
    'them out (docs/operations.md).\n' +
    'The encryption key comes from DROVER_ENCRYPTION_KEY (or CIRIS_ENCRYPTION_KEY, or MANAGER_JWT_SECRET with\n' +
    'CIRIS_ENCRYPTION_SALT), else from the key file `drover manager init` wrote. Logs are JSON lines on stdout.\n' +
    'DROVER_BLOB_STORE (fs or s3://BUCKET/PREFIX) and DROVER_S3_ENDPOINT, _REGION, _PATH_STYLE, _DOWNLOAD_ENDPOINT\n' +
    "override manager.json's blob store; S3 credentials come from AWS_ACCESS_KEY_ID and friends.\n" +
    'The --oidc-* flags set single sign-on for people (`drover login`, the console) over DROVER_OIDC_* and\n' +
    "manager.json's oidc, member by member; a --oidc-group-role flag replaces the whole group mapping.\n" +
    'SIGTERM stops it gracefully: new requests get 503, in-flight ones finish, the audit log records the stop.',
  options: {
    dir: { type: 'string', arg: 'DIR', help: 'The manager directory from `drover manager init`.' },
    host: { type: 'string', arg: 'H', help: 'Address to listen on (default: from manager.json).' },
    port: { type: 'string', arg: 'P', help: 'Port to listen on; 0 picks a free one (default: from manager.json).' },
    'tls-cert': { type: 'string', arg: 'FILE', help: 'Serve HTTPS with this PEM certificate chain (with --tls-key).' },
    'tls-key': { type: 'string', arg: 'FILE', help: "The certificate's PEM private key, mode 0600 (with --tls-cert)." },
    ...oidcOptions,
  },
  async run({ values, io }) {
    const dir = requireString(values, 'dir');
    const certFile = optionalString(values, 'tls-cert');
    const keyFile = optionalString(values, 'tls-key');
    if ((certFile === undefined) !== (keyFile === undefined)) throw new CliError('USAGE_ERROR', '--tls-cert and --tls-key go together: give both to serve HTTPS, or neither for HTTP.');
    const tlsFiles = certFile === undefined || keyFile === undefined ? undefined : { certFile: resolve(io.cwd, certFile), keyFile: resolve(io.cwd, keyFile) };
    const env = { ...io.env, ...startOidcEnv(values) };
    const running = await startManager({ dir, host: optionalString(values, 'host'), port: parsePort(optionalString(values, 'port')), env, tlsFiles });
    io.stdout(`${JSON.stringify({ event: 'manager.listening', url: running.url })}\n`);
    await running.closed;
    return { data: { stopped: true, url: running.url }, text: '' };
  },
};

export const managerMigrateCommand: Command = {
  usage: '--dir DIR',
  description:
    "Applies the migrations this version has and the database lacks, each recorded in schema_migrations, and prints\n" +
    'them (none when the schema is current). A manager also does this when it starts; several starting together\n' +
    'on one PostgreSQL database take turns (an advisory lock). A database migrated by a newer drover is refused\n' +
    '(STORE_SCHEMA_TOO_NEW) and left as it is. The database is the one `drover manager start` would open:\n' +
    "DROVER_DATABASE_URL, else manager.json's database, else DIR/manager.db.",
  options: {
    dir: { type: 'string', arg: 'DIR', help: 'The manager directory from `drover manager init`.' },
  },
  async run({ values, io }) {
    const dir = requireString(values, 'dir');
    const report = await migrateManagerDatabase(dir, io.env);
    return {
      data: report,
      text: [
        `${report.store === 'postgres' ? 'PostgreSQL' : 'SQLite'} database ${report.database}`,
        ...(report.applied.length === 0 ? ['  schema current: nothing to apply'] : report.applied.map((m) => `  applied ${m.version}: ${m.name}`)),
        `  schema version ${report.version}`,
      ].join('\n'),
    };
  },
};

export const managerMigrateStoreCommand: Command = {
  usage: '--dir DIR --to postgres://USER@HOST[:PORT]/DATABASE',
  description:
    "Moves a manager's state from its SQLite file (DIR/manager.db) to an empty PostgreSQL database: agents and their\n" +
    'credentials, enrollment tokens, commands and nonces, releases, rollouts and their events, and the audit head,\n' +
    'copied in one transaction (all or nothing), each table counted on both sides. Then manager.json names the\n' +
    'database (a password goes to DIR/secrets/database.password, 0600, never into manager.json). Stop the manager\n' +
    'first; the SQLite file is left as it was (remove it once the manager runs on PostgreSQL). The audit log stays in\n' +
    'DIR/audit and still verifies. A database that already holds drover rows is refused (STORE_NOT_EMPTY), a\n' +
    'directory already on PostgreSQL too (CONFIG_INVALID); either way nothing changes. Give the password in\n' +
    'DROVER_DATABASE_PASSWORD (or PGPASSWORD), not in the URL, which would be in the process list and your shell history.',
  options: {
    dir: { type: 'string', arg: 'DIR', help: 'The manager directory from `drover manager init` (on SQLite).' },
    to: { type: 'string', arg: 'URL', help: 'The empty PostgreSQL database to move to.' },
  },
  async run({ values, io }) {
    const dir = requireString(values, 'dir');
    const url = requireString(values, 'to');
    const password = io.env['DROVER_DATABASE_PASSWORD'];
    const report = await migrateStoreToPostgres(dir, { url, ...(password === undefined || password === '' ? {} : { password }) }, (table, rows) => {
      io.stderr(`copied ${table}: ${String(rows)} row(s)\n`);
    });
    return {
      data: report,
      text: [
        `Moved ${report.from} to ${report.to} (schema version ${String(report.schemaVersion)}):`,
        ...Object.entries(report.rows).map(([table, rows]) => `  ${table}: ${String(rows)}`),
        `manager.json now names ${report.to}; start the manager with \`drover manager start --dir ${dir}\`.`,
        `${report.from} is no longer used: keep it until the manager runs on PostgreSQL, then remove it.`,
      ].join('\n'),
    };
  },
};
