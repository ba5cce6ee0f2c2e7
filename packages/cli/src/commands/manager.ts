import { initManagerDirectory, startManager } from '@drover/manager';
import { parseTrustPolicy } from '@drover/protocol';
import type { TrustPolicyDocument } from '@drover/protocol';
import type { Command } from '../cli.js';
import { optionalString, parseDurationSeconds, requireString } from '../cli.js';
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

export const managerInitCommand: Command = {
  usage: '--dir DIR [--trust TRUST.json] [--host H] [--port P] [--seats N] [--expires-in 24h]',
  description:
    'Secret files are written 0600 under DIR/keys and DIR/secrets. The enrollment token is printed once and\n' +
    'stored only hashed: hand it to the hosts that should enroll. Without --trust, the manager accepts no\n' +
    'release until DIR/trust.json exists (`drover trust create --out DIR/trust.json`).',
  options: {
    dir: { type: 'string', arg: 'DIR', help: 'The manager directory (created if missing; must not hold a manager yet).' },
    trust: { type: 'string', arg: 'TRUST.json', help: 'The trust policy releases must satisfy (from `drover trust create`).' },
    host: { type: 'string', arg: 'H', help: 'Address to listen on (default: 127.0.0.1).' },
    port: { type: 'string', arg: 'P', help: 'Port to listen on (default: 8443).' },
    seats: { type: 'string', arg: 'N', help: 'Enrollments the first enrollment token allows (default: 1).' },
    'expires-in': { type: 'string', arg: 'DURATION', help: 'Lifetime of the first enrollment token: 1h, 7d (default: 24h).' },
  },
  async run({ values, io }) {
    const dir = requireString(values, 'dir');
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
    const created = await initManagerDirectory({
      dir,
      host: optionalString(values, 'host'),
      port: parsePort(optionalString(values, 'port')),
      seats: parseSeats(optionalString(values, 'seats')),
      expiresInSeconds: expiresIn === undefined ? undefined : parseDurationSeconds(expiresIn, 'expires-in'),
      trustPolicy,
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
        created.trustPolicy ? `  trust policy: ${created.files['trustPolicy'] ?? ''}` : `  no trust policy yet: write ${created.files['trustPolicy'] ?? ''} before publishing releases`,
        '',
        'Keep these secret (files are 0600; back them up somewhere safe):',
        `  admin token:    ${created.files['adminToken'] ?? ''}  (operators: DROVER_ADMIN_TOKEN or --token-file)`,
        `  deploy token:   ${created.files['deployToken'] ?? ''}  (CI: publishing releases)`,
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
  usage: '--dir DIR [--host H] [--port P]',
  description:
    'The encryption key comes from DROVER_ENCRYPTION_KEY (or CIRIS_ENCRYPTION_KEY, or MANAGER_JWT_SECRET with\n' +
    'CIRIS_ENCRYPTION_SALT), else from the key file `drover manager init` wrote. Logs are JSON lines on stdout.\n' +
    'SIGTERM stops it gracefully: new requests get 503, in-flight ones finish, the audit log records the stop.',
  options: {
    dir: { type: 'string', arg: 'DIR', help: 'The manager directory from `drover manager init`.' },
    host: { type: 'string', arg: 'H', help: 'Address to listen on (default: from manager.json).' },
    port: { type: 'string', arg: 'P', help: 'Port to listen on; 0 picks a free one (default: from manager.json).' },
  },
  async run({ values, io }) {
    const dir = requireString(values, 'dir');
    const running = await startManager({ dir, host: optionalString(values, 'host'), port: parsePort(optionalString(values, 'port')), env: io.env });
    io.stdout(`${JSON.stringify({ event: 'manager.listening', url: running.url })}\n`);
    await running.closed;
    return { data: { stopped: true, url: running.url }, text: '' };
  },
};
