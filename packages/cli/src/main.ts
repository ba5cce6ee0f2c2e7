import type { Command, CommandIo } from './cli.js';
import { runCommand } from './cli.js';
import { agentsListCommand } from './commands/agents.js';
import { auditVerifyCommand } from './commands/audit.js';
import { enrollTokenCreateCommand } from './commands/enroll-token.js';
import { keygenCommand } from './commands/keygen.js';
import { minisignPubkeyCommand, minisignSignCommand, minisignVerifyCommand } from './commands/minisign.js';
import { managerInitCommand, managerStartCommand } from './commands/manager.js';
import { releasePublishCommand } from './commands/release-publish.js';
import {
  rolloutAbortCommand,
  rolloutPauseCommand,
  rolloutPromoteCommand,
  rolloutResumeCommand,
  rolloutRollbackCommand,
  rolloutStartCommand,
  rolloutStatusCommand,
  rolloutWatchCommand,
} from './commands/rollout.js';
import { releaseSignCommand, releaseVerifyCommand, trustCreateCommand } from './commands/release.js';
import { PACKAGE_VERSION } from './version.js';

/** Every command the CLI knows, in the order `drover --help` lists them. */
export const commands: readonly Command[] = [
  keygenCommand,
  releaseSignCommand,
  releaseVerifyCommand,
  trustCreateCommand,
  minisignSignCommand,
  minisignVerifyCommand,
  minisignPubkeyCommand,
  auditVerifyCommand,
  managerInitCommand,
  managerStartCommand,
  enrollTokenCreateCommand,
  releasePublishCommand,
  agentsListCommand,
  rolloutStartCommand,
  rolloutStatusCommand,
  rolloutWatchCommand,
  rolloutPauseCommand,
  rolloutResumeCommand,
  rolloutAbortCommand,
  rolloutPromoteCommand,
  rolloutRollbackCommand,
];

export const VERSION = PACKAGE_VERSION;

function topLevelHelp(): string {
  const width = Math.max(...commands.map((c) => c.path.join(' ').length));
  return [
    'Usage: drover <command> [options]',
    '',
    'drover ships new versions of long-running agents to fleets of Linux hosts, safely.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    'Run `drover <command> --help` for a command\'s options. Every command takes --json.',
    '',
  ].join('\n');
}

/** Runs the CLI with `argv` (without `node` and the script) and returns the exit code. */
export async function main(argv: string[], io: CommandIo): Promise<number> {
  // The command's words come first (`drover release sign --key K FILE`); the longest match wins.
  const command = [...commands].sort((a, b) => b.path.length - a.path.length).find((c) => c.path.every((word, i) => argv[i] === word));
  if (command === undefined) {
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      io.stdout(topLevelHelp());
      return argv.length === 0 ? 1 : 0;
    }
    if (argv[0] === '--version') {
      io.stdout(`${VERSION}\n`);
      return 0;
    }
    const words = argv.filter((arg) => !arg.startsWith('-'));
    const group = commands.filter((c) => c.path[0] === words[0]);
    const hint = group.length > 0 ? `Did you mean one of: ${group.map((c) => `drover ${c.path.join(' ')}`).join(', ')}?` : 'Run `drover --help` to list the commands.';
    const json = argv.includes('--json');
    const message = `Unknown command "${words.join(' ')}". ${hint}`;
    if (json) io.stdout(`${JSON.stringify({ error: { code: 'USAGE_ERROR', message } }, null, 2)}\n`);
    else io.stderr(`drover: USAGE_ERROR: ${message}\n`);
    return 1;
  }
  return runCommand(command, argv.slice(command.path.length), io);
}
