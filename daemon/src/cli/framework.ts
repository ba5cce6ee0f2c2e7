import { Command as Commander, CommanderError, Option } from 'commander';
import type { ParseOptionsResult } from 'commander';
import { DroverError } from '@drover/protocol';
import { exitCodes } from '../config.js';
import { DaemonError } from '../errors.js';
import { DAEMON_VERSION } from '../version.js';

// droverd's command line on commander: every command has --help (with the exit codes) and --json,
// --config and --state-dir, prints a result (text or JSON on stdout) or an error (`droverd: CODE:
// message` on stderr, or {"error":{...}} with --json), and exits with a stable code (config.ts
// `exitCodes`).

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
  /** What follows `droverd <name>` in the usage line. */
  usage: string;
  description?: string;
  options: Record<string, OptionSpec>;
  /** Positional arguments in commander's notation: `<FILE>` required, `[ID]` optional. */
  arguments?: readonly string[];
  run(input: CommandInput): Promise<CommandOutput>;
}

export const commonOptions: Record<string, OptionSpec> = {
  config: { type: 'string', arg: 'FILE', help: 'droverd.json (default: $CONFIGURATION_DIRECTORY/droverd.json, else /etc/drover/droverd.json).' },
  'state-dir': { type: 'string', arg: 'DIR', help: 'State directory (default: $STATE_DIRECTORY, else env-paths\' data dir).' },
  json: { type: 'boolean', help: 'Print the result (or the error) as JSON on stdout.' },
};

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

// `--word` or `--word=...`: an option's shape, whether or not the command knows it.
const LONG_OPTION = /^--[a-z][a-z0-9-]*(=|$)/;

/**
 * A commander command that takes a dash-leading value for an option that needs one (a PEM key
 * `--manager-key "$(cat manager.key.pub)"` starts with dashes, and one base64url token in 64
 * does), but not a value that is an option: `--token --json` (a forgotten value) and `--token
 * --frce` (a typo) are usage errors instead of an option swallowed as a value. Commander alone
 * would take any next argument as the value. Nothing after `--` is looked at.
 */
class DroverdCommander extends Commander {
  override createCommand(name?: string): DroverdCommander {
    return new DroverdCommander(name);
  }

  override parseOptions(args: string[]): ParseOptionsResult {
    const isOption = (arg: string): boolean =>
      arg === '--' || LONG_OPTION.test(arg) || arg === '-h' || (arg.length === 2 && this.options.some((option) => option.short === arg));
    for (let i = 0; i < args.length; i += 1) {
      const arg = args[i];
      if (arg === '--') break;
      const option = this.options.find((candidate) => candidate.long === arg);
      if (option?.required !== true) continue;
      const value = args[i + 1];
      if (value !== undefined && isOption(value)) this.error(`error: option '${option.flags}' argument missing`, { code: 'commander.optionMissingArgument' });
      i += 1;
    }
    return super.parseOptions(args);
  }
}

/** Runs droverd's command line `argv` (without node and the script) over `commands`; resolves with the exit code. */
export async function runCli(commands: readonly CliCommand[], argv: string[], io: CliIo): Promise<number> {
  const json = argv.includes('--json');
  const program = new DroverdCommander('droverd');
  // Settings first: commander copies them into each command created below.
  program
    .description("drover's host daemon: supervises the agent, checks in with the manager, and updates the agent and itself safely.")
    .usage('<command> [options]')
    .version(DAEMON_VERSION, '-V, --version', 'Print the version and exit.')
    .helpOption('-h, --help', 'Show this help and exit.')
    .helpCommand('help [command]', 'Show the help of a command.')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => {
        io.stdout(text);
      },
      writeErr: (text) => {
        io.stderr(text);
      },
      outputError: () => undefined,
    })
    .addHelpText('after', `\nRun \`droverd <command> --help\` for its options. Every command takes --json, --config FILE and --state-dir DIR.\n\n${EXIT_CODES_HELP}`);
  let exitCode: number = exitCodes.ok;
  for (const command of commands) {
    const sub = program.command(command.name).summary(command.summary).usage(command.usage);
    // A description is written hard-wrapped in the source; commander wraps it again to the terminal's width.
    sub.description(command.description === undefined ? command.summary : `${command.summary}\n\n${command.description.replace(/(?<!\n)\n(?!\n)/g, ' ')}`);
    const options = new Map<string, Option>();
    for (const [name, spec] of Object.entries({ ...command.options, ...commonOptions })) {
      const option = new Option(`--${name}${spec.type === 'string' ? ` <${spec.arg ?? 'VALUE'}>` : ''}`, spec.help);
      sub.addOption(option);
      options.set(name, option);
    }
    for (const argument of command.arguments ?? []) sub.argument(argument);
    sub.addHelpText('after', `\n${EXIT_CODES_HELP}`);
    sub.action(async () => {
      const values: CommandInput['values'] = {};
      for (const [name, option] of options) {
        const attribute = option.attributeName();
        if (sub.getOptionValueSource(attribute) === 'cli') values[name] = sub.getOptionValue(attribute) as string | boolean;
      }
      const input: CommandInput = { values, positionals: sub.args, io, json: values['json'] === true };
      try {
        const result = await command.run(input);
        if (input.json) io.stdout(`${JSON.stringify(result.data, null, 2)}\n`);
        else if (result.text !== '') io.stdout(result.text.endsWith('\n') ? result.text : `${result.text}\n`);
        exitCode = result.exitCode ?? exitCodes.ok;
      } catch (error) {
        exitCode = printError(error, io, input.json);
      }
    });
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // Help asked for (`--help`, `help <command>`) or the version: commander reports them as exit 0.
    if (error.exitCode === 0) return exitCodes.ok;
    const name = commands.find((command) => command.name === argv[0])?.name;
    const command = name === undefined ? 'droverd' : `droverd ${name}`;
    // commander.help: droverd named without a command; its help went to stderr.
    const message =
      error.code === 'commander.help'
        ? 'Name a command: droverd <command>. Run `droverd --help` for the list.'
        : `${error.message.replace(/^error: /, '').replace(/\n/g, ' ').replace(/\.$/, '')}. Run \`${command} --help\` for usage.`;
    return printError(new DaemonError('USAGE_ERROR', message, { cause: error }), io, json);
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
