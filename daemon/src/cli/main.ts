import { exitCodes } from '../config.js';
import { DAEMON_VERSION } from '../version.js';
import { enrollCommand } from './enroll.js';
import { EXIT_CODES_HELP, runCommand as runCli } from './framework.js';
import type { CliCommand, CliIo } from './framework.js';
import { installCommand } from './install.js';
import { runCommand } from './run.js';
import { statusCommand } from './status.js';
import { verifyCommand } from './verify.js';

export const commands: readonly CliCommand[] = [runCommand, enrollCommand, statusCommand, verifyCommand, installCommand];

function topLevelHelp(): string {
  return [
    'Usage: droverd <command> [options]',
    '',
    "drover's host daemon: supervises the agent, checks in with the manager, and updates the agent and itself safely.",
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(8)}  ${c.summary}`),
    '',
    'Run `droverd <command> --help` for its options. Every command takes --json, --config FILE and --state-dir DIR.',
    '',
    EXIT_CODES_HELP,
    '',
  ].join('\n');
}

/** Runs the CLI with `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  const command = commands.find((c) => c.name === name);
  if (command !== undefined) return runCli(command, rest, io);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(topLevelHelp());
    return name === undefined ? exitCodes.usage : exitCodes.ok;
  }
  if (name === '--version') {
    io.stdout(`${DAEMON_VERSION}\n`);
    return exitCodes.ok;
  }
  const message = `Unknown command "${name}". Run \`droverd --help\` to list the commands.`;
  if (argv.includes('--json')) io.stdout(`${JSON.stringify({ error: { code: 'USAGE_ERROR', message } }, null, 2)}\n`);
  else io.stderr(`droverd: USAGE_ERROR: ${message}\n`);
  return exitCodes.usage;
}
