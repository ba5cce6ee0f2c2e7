import { checkConfigCommand } from './check-config.js';
import { enrollCommand } from './enroll.js';
import { runCli } from './framework.js';
import type { CliCommand, CliIo } from './framework.js';
import { installCommand } from './install.js';
import { runCommand } from './run.js';
import { statusCommand } from './status.js';
import { verifyCommand } from './verify.js';

export const commands: readonly CliCommand[] = [runCommand, enrollCommand, statusCommand, verifyCommand, installCommand, checkConfigCommand];

/** Runs the CLI with `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  return runCli(commands, argv, io);
}
