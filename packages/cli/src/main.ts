import type { CommandIo } from './cli.js';
import type { CommandEntry } from './program.js';
import { runProgram } from './program.js';
import { PACKAGE_VERSION } from './version.js';

// The package entry (package.json `exports`) is `main`; bin.ts runs it with the process's I/O.
export type { CommandIo } from './cli.js';

const VERSION = PACKAGE_VERSION;

// Every command, in the order `drover --help` lists them. A command's module is imported only when
// that command runs or shows its help (see program.ts): keep heavy imports out of this file.
const commands: readonly CommandEntry[] = [
  { path: ['keygen'], summary: 'Create an Ed25519 signing key: NAME.key (private, 0600), NAME.pub and NAME.minisign.pub; or an RSA or HMAC audit key (--algorithm rsa-sha256 | hmac-sha256).', load: async () => (await import('./commands/keygen.js')).keygenCommand },
  { path: ['release', 'sign'], summary: 'Sign an artifact into a DSSE release envelope (FILE.release.json).', load: async () => (await import('./commands/release.js')).releaseSignCommand },
  { path: ['release', 'verify'], summary: 'Verify an artifact against its signed release envelope and a trust policy.', load: async () => (await import('./commands/release.js')).releaseVerifyCommand },
  { path: ['trust', 'create'], summary: 'Write a trust policy (trust.json) from public keys and a threshold.', load: async () => (await import('./commands/release.js')).trustCreateCommand },
  { path: ['minisign', 'sign'], summary: 'Sign FILE with a drover key, writing FILE.minisig that `minisign -V` verifies.', load: async () => (await import('./commands/minisign.js')).minisignSignCommand },
  { path: ['minisign', 'verify'], summary: 'Verify FILE against a minisign signature (from minisign or `drover minisign sign`).', load: async () => (await import('./commands/minisign.js')).minisignVerifyCommand },
  { path: ['minisign', 'pubkey'], summary: 'Write the minisign public key file of a drover key, for `minisign -V -p`.', load: async () => (await import('./commands/minisign.js')).minisignPubkeyCommand },
  { path: ['audit', 'verify'], summary: 'Verify a tamper-evident audit log: every record hashed, linked and signed by a trusted key.', load: async () => (await import('./commands/audit.js')).auditVerifyCommand },
  { path: ['manager', 'init'], summary: 'Create a manager directory: config, keys, admin and deploy tokens, encryption key, a first enrollment token.', load: async () => (await import('./commands/manager.js')).managerInitCommand },
  { path: ['manager', 'migrate'], summary: "Bring the manager's database (SQLite or PostgreSQL) to this version's schema; prints the migrations it applied.", load: async () => (await import('./commands/manager.js')).managerMigrateCommand },
  { path: ['manager', 'migrate-store'], summary: "Move a manager's state from its SQLite file to an empty PostgreSQL database, in one transaction.", load: async () => (await import('./commands/manager.js')).managerMigrateStoreCommand },
  { path: ['manager', 'start'], summary: 'Run a manager from its directory until SIGTERM; prints {"event":"manager.listening","url":...} once it listens.', load: async () => (await import('./commands/manager.js')).managerStartCommand },
  { path: ['login'], summary: 'Log in to a manager with single sign-on (OIDC device flow); operator commands then use your role.', load: async () => (await import('./commands/login.js')).loginCommand },
  { path: ['logout'], summary: 'Remove the login `drover login` kept for a manager.', load: async () => (await import('./commands/login.js')).logoutCommand },
  { path: ['enroll-token', 'create'], summary: 'Create an enrollment token with seats and an expiry (printed once; the manager keeps only its hash).', load: async () => (await import('./commands/enroll-token.js')).enrollTokenCreateCommand },
  { path: ['enroll-token', 'list'], summary: 'List the enrollment tokens: id, seats used, expiry, state, note (never the tokens).', load: async () => (await import('./commands/enroll-token.js')).enrollTokenListCommand },
  { path: ['enroll-token', 'revoke'], summary: 'Revoke an enrollment token: no host enrolls with it any more.', load: async () => (await import('./commands/enroll-token.js')).enrollTokenRevokeCommand },
  { path: ['release', 'list'], summary: 'List the releases a manager holds for an artifact, newest version first.', load: async () => (await import('./commands/listings.js')).releaseListCommand },
  { path: ['release', 'publish'], summary: "Publish a signed release to a manager: the envelope (checked against the manager's trust policy), then the artifact.", load: async () => (await import('./commands/release-publish.js')).releasePublishCommand },
  { path: ['agents', 'list'], summary: 'List the enrolled agents: id, host, platform, versions, last check-in, health.', load: async () => (await import('./commands/agents.js')).agentsListCommand },
  { path: ['agents', 'remove'], summary: "Remove a host: its credential, check-ins, results and downloads are refused from then on.", load: async () => (await import('./commands/agents.js')).agentsRemoveCommand },
  { path: ['agents', 'set-group'], summary: "Put an agent in a canary group (explorer, early_adopter, general), or none.", load: async () => (await import('./commands/agents.js')).agentsSetGroupCommand },
  { path: ['agents', 'import'], summary: "Import a CIRISManager fleet: its registry's agents and service tokens become push-mode agents (all or none).", load: async () => (await import('./commands/agents-import.js')).agentsImportCommand },
  { path: ['agent-check'], summary: "Check an agent (any language) against drover's rules over HTTP: token refusals and their timing, busy 503, shutdown and exit, health.", load: async () => (await import('./commands/agent-check.js')).agentCheckCommand },
  { path: ['rollout', 'start'], summary: 'Start a deployment of a published release (the deploy API notify, with the deploy token).', load: async () => (await import('./commands/rollout.js')).rolloutStartCommand() },
  { path: ['rollout', 'list'], summary: 'List deployments, newest first (--active: only those not ended).', load: async () => (await import('./commands/listings.js')).rolloutListCommand },
  { path: ['rollout', 'status'], summary: 'Show a deployment (default: the active one): phase, counts, failed agents, latest events.', load: async () => (await import('./commands/rollout.js')).rolloutStatusCommand },
  { path: ['rollout', 'watch'], summary: 'Watch a deployment live until it ends; --json prints each event as a JSON line.', load: async () => (await import('./commands/rollout.js')).rolloutWatchCommand },
  { path: ['rollout', 'pause'], summary: 'Pause a deployment: no new agent starts; agents updating finish.', load: async () => (await import('./commands/rollout.js')).rolloutActionCommand('pause') },
  { path: ['rollout', 'resume'], summary: 'Resume a paused deployment.', load: async () => (await import('./commands/rollout.js')).rolloutActionCommand('resume') },
  { path: ['rollout', 'abort'], summary: 'Abort a deployment: done hosts stay done, queued hosts never start.', load: async () => (await import('./commands/rollout.js')).rolloutActionCommand('abort') },
  { path: ['rollout', 'promote'], summary: 'Start the next phase (manual strategy), or end a soak early.', load: async () => (await import('./commands/rollout.js')).rolloutActionCommand('promote') },
  { path: ['rollout', 'rollback'], summary: 'Roll every updated agent back to its previous version with signed rollback commands.', load: async () => (await import('./commands/rollout.js')).rolloutActionCommand('rollback') },
];

const groups: Record<string, string> = {
  release: 'Sign, verify and publish releases.',
  trust: 'Trust policies: the keys a release must be signed by.',
  minisign: 'minisign-compatible signatures.',
  audit: "The manager's tamper-evident audit log.",
  manager: 'Create and run a manager.',
  'enroll-token': 'Enrollment tokens for new hosts.',
  agents: 'The enrolled agents.',
  rollout: 'Start, watch and steer deployments.',
};

const epilogue = [
  'Run `drover <command> --help` for a command\'s options. Every command takes --json: the result (or the',
  'error) as JSON on stdout, with camelCase field names.',
  '',
  'Exit codes:',
  '  0  success',
  '  1  failure; the stable error code is printed (docs/errors.md). `audit verify`: a broken log',
  '  2  usage error (USAGE_ERROR): an unknown command or option, a missing or malformed value',
  '  3  `audit verify` reached no verdict (its error code is printed)',
].join('\n');

/**
 * Runs the `drover` CLI with `argv` (the arguments after `node` and the script) and returns the exit
 * code: 0 success, 1 failure (the stable code printed), 2 a usage error, 3 `audit verify` without a verdict.
 *
 * @param argv - The arguments, e.g. `['release', 'verify', '--trust', 'trust.json', 'agent.tar.gz']`.
 * @param io - Where output goes and what the commands read: stdout, stderr, the environment, the working directory.
 * @returns The exit code.
 */
export async function main(argv: string[], io: CommandIo): Promise<number> {
  return runProgram(
    { name: 'drover', version: VERSION, description: 'drover ships new versions of long-running agents to fleets of Linux hosts, safely.', groups, epilogue },
    commands,
    argv,
    io,
  );
}
