import { parseArgs } from 'node:util';
import { DroverError, joinDashValues } from '@drover/protocol';
import { exitCodes } from '../config.js';
import { DaemonError } from '../errors.js';

// The droverd CLI's small framework: every command has --help and --json, prints a result (text or
// JSON on stdout) or an error (`droverd: CODE: message` on stderr, or {"error":{...}} with --json),
// and exits with a stable code (config.ts `exitCodes`).

export interface OptionSpec {
  type: 'string' | 'boolean';
  help: string;
  arg?: string;
}

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

export interface CommandInput {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  io: CliIo;
  json: boolean;
}

export interface CommandOutput {
  data: unknown;
  text: string;
  exitCode?: number;
}

export interface CliCommand {
  name: string;
  summary: string;
  usage: string;
  description?: string;
  options: Record<string, OptionSpec>;
  positionals: { min: number; max: number };
  run(input: CommandInput): Promise<CommandOutput>;
}

export const commonOptions: Record<string, OptionSpec> = {
  config: { type: 'string', arg: 'FILE', help: 'droverd.json (default: $CONFIGURATION_DIRECTORY/droverd.json, else /etc/drover/droverd.json).' },
  'state-dir': { type: 'string', arg: 'DIR', help: 'State directory (default: $STATE_DIRECTORY, else env-paths\' data dir).' },
  json: { type: 'boolean', help: 'Print the result (or the error) as JSON on stdout.' },
  help: { type: 'boolean', help: 'Show this help and exit.' },
};

export function helpText(command: CliCommand): string {
  const options = { ...command.options, ...commonOptions };
  const rows = Object.entries(options).map(([name, spec]) => `  ${`--${name}${spec.type === 'string' ? ` ${spec.arg ?? 'VALUE'}` : ''}`.padEnd(28)} ${spec.help}`);
  return [`Usage: ${command.usage}`, '', command.summary, ...(command.description === undefined ? [] : ['', command.description]), '', 'Options:', ...rows, '', EXIT_CODES_HELP, ''].join('\n');
}

export const EXIT_CODES_HELP = [
  'Exit codes:',
  `  ${exitCodes.ok}   success`,
  `  ${exitCodes.error}   failure; the stable error code is printed (docs/errors.md)`,
  `  ${exitCodes.usage}   usage error`,
  `  ${exitCodes.locked}   another droverd holds the state directory (STATE_LOCKED)`,
  `  ${exitCodes.notEnrolled}   not enrolled (NOT_ENROLLED)`,
  `  ${exitCodes.verifyFailed}   droverd verify: an installed release does not verify`,
  `  ${exitCodes.restart}  droverd swapped itself; the service manager starts the new version`,
].join('\n');

/** The exit code that goes with an error. */
export function exitCodeOf(error: unknown): number {
  if (!(error instanceof DaemonError)) return exitCodes.error;
  if (error.code === 'USAGE_ERROR') return exitCodes.usage;
  if (error.code === 'STATE_LOCKED') return exitCodes.locked;
  if (error.code === 'NOT_ENROLLED') return exitCodes.notEnrolled;
  return exitCodes.error;
}

export function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof DroverError) return { code: error.code, message: error.message };
  const nodeCode = (error as NodeJS.ErrnoException | undefined)?.code;
  if (nodeCode === 'EACCES' || nodeCode === 'EPERM') return { code: 'IO_ERROR', message: `${(error as Error).message}. Run droverd as the user that owns its state directory (root under systemd).` };
  if (nodeCode === 'ENOENT') return { code: 'IO_ERROR', message: `${(error as Error).message}. Check the path.` };
  return { code: 'INTERNAL_ERROR', message: `Unexpected failure: ${error instanceof Error ? error.message : String(error)}. Please report this as a bug.` };
}

export function printError(error: unknown, io: CliIo, json: boolean): number {
  const { code, message } = describeError(error);
  if (json) io.stdout(`${JSON.stringify({ error: { code, message } }, null, 2)}\n`);
  else io.stderr(`droverd: ${code}: ${message}\n`);
  return exitCodeOf(error);
}

export async function runCommand(command: CliCommand, argv: string[], io: CliIo): Promise<number> {
  const json = argv.includes('--json');
  try {
    const options = { ...command.options, ...commonOptions };
    const args = joinDashValues(argv, options);
    let parsed;
    try {
      parsed = parseArgs({ args, options: Object.fromEntries(Object.entries(options).map(([name, spec]) => [name, { type: spec.type }])), allowPositionals: true, strict: true });
    } catch (error) {
      throw new DaemonError('USAGE_ERROR', `${(error as Error).message}. Run \`droverd ${command.name} --help\` for usage.`, { cause: error });
    }
    if (parsed.values['help'] === true) {
      io.stdout(helpText(command));
      return exitCodes.ok;
    }
    const { min, max } = command.positionals;
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw new DaemonError('USAGE_ERROR', `Expected ${min === max ? String(min) : `${min} to ${max}`} argument(s), got ${parsed.positionals.length}. Usage: ${command.usage}`);
    }
    const result = await command.run({ values: parsed.values, positionals: parsed.positionals, io, json });
    if (json) io.stdout(`${JSON.stringify(result.data, null, 2)}\n`);
    else if (result.text !== '') io.stdout(result.text.endsWith('\n') ? result.text : `${result.text}\n`);
    return result.exitCode ?? exitCodes.ok;
  } catch (error) {
    return printError(error, io, json);
  }
}

export function stringOption(values: CommandInput['values'], name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export function requireOption(values: CommandInput['values'], name: string): string {
  const value = stringOption(values, name);
  if (value === undefined) throw new DaemonError('USAGE_ERROR', `--${name} is required.`);
  return value;
}
