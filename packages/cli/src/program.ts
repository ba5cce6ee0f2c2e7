import { Command as Commander, CommanderError, Option } from 'commander';
import type { ParseOptionsResult } from 'commander';
import type { Command, CommandInput, CommandIo, CommandResult, OptionSpec, OptionValues } from './cli.js';
import { describeError, exitCodes } from './cli.js';

// `drover` on commander: the command tree, --help (each group lists its commands), --version,
// and one way to print a result or an error and to pick the exit code. Commands are declared in
// main.ts by their words and summary; a command's module (its options and what it does) is
// imported only when that command runs or shows its help, so `drover release sign` never loads
// the manager (better-sqlite3, fastify) that `drover manager start` needs.

/** A command as main.ts lists it: its words, one line for the listings, and its module, loaded on use. */
export interface CommandEntry {
  path: readonly string[];
  summary: string;
  load(): Promise<Command>;
}

export interface ProgramInfo {
  name: string;
  version: string;
  description: string;
  /** One line each for the groups (`release`, `rollout`, ...): what their commands are about. */
  groups: Readonly<Record<string, string>>;
  /** Printed after the list of commands in `drover --help`. */
  epilogue: string;
}

const commonOptions: Record<string, OptionSpec> = {
  json: { type: 'boolean', help: 'Print the result (or the error) as JSON on stdout.' },
};

// `--word` or `--word=...`: an option's shape, whether or not the command knows it.
const LONG_OPTION = /^--[a-z][a-z0-9-]*(=|$)/;

/**
 * A commander command that takes a dash-leading value for an option that needs one (a PEM block
 * `--manager-key "$(cat manager.key.pub)"` starts with dashes, and one base64url token in 64
 * does), but not a value that is an option: `--out --name x` (a forgotten value) and `--token
 * --nmae` (a typo) are usage errors instead of an option swallowed as a value. Commander alone
 * would take any next argument as the value. Nothing after `--` is looked at.
 */
class DroverCommander extends Commander {
  override createCommand(name?: string): DroverCommander {
    return new DroverCommander(name);
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

/** Adds a command's options (and their hidden old spellings) to `command`; returns the commander option of each. */
function addOptions(command: Commander, options: Record<string, OptionSpec>): Map<string, Option> {
  const added = new Map<string, Option>();
  for (const [name, spec] of Object.entries(options)) {
    const create = (flag: string): Option => {
      const option = new Option(`--${flag}${spec.type === 'string' ? ` <${spec.arg ?? 'VALUE'}>` : ''}`, `${spec.help}${spec.multiple === true ? ' (repeatable)' : ''}`);
      if (spec.multiple === true) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
      command.addOption(option);
      return option;
    };
    const current = create(name);
    added.set(name, current);
    for (const alias of spec.aliases ?? []) {
      // An old spelling: hidden from --help, and its value goes where the current spelling's would.
      create(alias).hideHelp();
      command.on(`option:${alias}`, (value: string | undefined) => {
        const attribute = current.attributeName();
        const previous = command.getOptionValue(attribute) as string[] | undefined;
        command.setOptionValueWithSource(attribute, spec.type === 'boolean' ? true : spec.multiple === true ? [...(previous ?? []), value] : value, 'cli');
      });
    }
  }
  return added;
}

/** The options given on the command line, by long name; an option left out is absent. */
function givenValues(command: Commander, options: Map<string, Option>, specs: Record<string, OptionSpec>): OptionValues {
  const values: OptionValues = {};
  for (const [name, option] of options) {
    const attribute = option.attributeName();
    if (command.getOptionValueSource(attribute) !== 'cli') continue;
    // `--no-auto-rollback` is a boolean given as such, whatever commander stores for its negation.
    values[name] = specs[name]?.type === 'boolean' ? true : (command.getOptionValue(attribute) as string | string[]);
  }
  return values;
}

function exitCodeOf(code: string, command?: Command): number {
  return code === 'USAGE_ERROR' ? exitCodes.usage : (command?.errorExitCode ?? exitCodes.error);
}

function printError(io: CommandIo, json: boolean, code: string, message: string): void {
  if (json) io.stdout(`${JSON.stringify({ error: { code, message } }, null, 2)}\n`);
  else io.stderr(`drover: ${code}: ${message}\n`);
}

/** Runs a command's `run` and prints its result or its error; resolves with the exit code. */
async function runAction(command: Command, input: CommandInput): Promise<number> {
  let result: CommandResult;
  try {
    result = await command.run(input);
  } catch (error) {
    const { code, message } = describeError(error);
    printError(input.io, input.json, code, message);
    return exitCodeOf(code, command);
  }
  const { io } = input;
  io.stdout(input.json ? `${JSON.stringify(result.data, null, 2)}\n` : result.text.endsWith('\n') || result.text === '' ? result.text : `${result.text}\n`);
  return result.exitCode ?? exitCodes.ok;
}

/** The words of `command` below the program, e.g. `release sign`. */
function wordsOf(command: Commander): string {
  const words: string[] = [];
  for (let at: Commander = command; at.parent !== null; at = at.parent) words.unshift(at.name());
  return words.join(' ');
}

/** Every command under `command` that runs something: what --help lists, at any depth. */
function leavesOf(command: Commander): Commander[] {
  return command.commands.flatMap((sub) => (sub.commands.length === 0 ? [sub] : leavesOf(sub)));
}

/** The longest path of `entries` (or of their groups) that `argv` starts with. */
function matchedPath(argv: readonly string[], paths: readonly (readonly string[])[]): readonly string[] {
  let best: readonly string[] = [];
  for (const path of paths) {
    for (let length = path.length; length > best.length; length -= 1) {
      if (path.slice(0, length).every((word, i) => argv[i] === word)) {
        best = path.slice(0, length);
        break;
      }
    }
  }
  return best;
}

/** Runs the command line `argv` (without node and the script) and resolves with the exit code. */
export async function runProgram(info: ProgramInfo, entries: readonly CommandEntry[], argv: string[], io: CommandIo): Promise<number> {
  const json = argv.includes('--json');
  const program = new DroverCommander(info.name);
  // Settings first: commander copies them into each command created below.
  program
    .description(info.description)
    .usage('<command> [options]')
    .version(info.version, '-V, --version', 'Print the version and exit.')
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
    .configureHelp({ visibleCommands: leavesOf, subcommandTerm: wordsOf, sortSubcommands: false })
    .addHelpText('after', `\n${info.epilogue}`);

  const leaves = new Map<CommandEntry, Commander>();
  for (const entry of entries) {
    let parent: Commander = program;
    for (const word of entry.path.slice(0, -1)) {
      parent = parent.commands.find((sub) => sub.name() === word) ?? parent.command(word).summary(info.groups[word] ?? '').description(info.groups[word] ?? '').usage('<command> [options]');
    }
    leaves.set(entry, parent.command(entry.path.at(-1) ?? '').summary(entry.summary));
  }

  // Only the command named (also by `drover help <command>`) has its module loaded.
  const words = argv[0] === 'help' ? argv.slice(1) : argv;
  const entry = entries.find((candidate) => candidate.path.length === matchedPath(words, [candidate.path]).length);
  let exitCode: number = exitCodes.ok;
  if (entry !== undefined) {
    const leaf = leaves.get(entry) ?? program;
    let command: Command;
    try {
      command = await entry.load();
    } catch (error) {
      // A module that does not load (a missing native build of better-sqlite3, say) is reported like any failure.
      const { code, message } = describeError(error);
      printError(io, json, code, message);
      return exitCodeOf(code);
    }
    const options = addOptions(leaf, { ...command.options, ...commonOptions });
    for (const argument of command.arguments ?? []) leaf.argument(argument);
    // A description is written hard-wrapped in the source; commander wraps it again to the terminal's width.
    leaf.usage(command.usage).description(command.description === undefined ? entry.summary : `${entry.summary}\n\n${command.description.replace(/(?<!\n)\n(?!\n)/g, ' ')}`);
    leaf.action(async () => {
      exitCode = await runAction(command, { values: givenValues(leaf, options, command.options), positionals: leaf.args, io, json: leaf.getOptionValue('json') === true });
    });
  }

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // Help asked for (`--help`, `help <command>`) or the version: commander reports them as exit 0.
    if (error.exitCode === 0) return exitCodes.ok;
    const path = matchedPath(argv, entries.map((candidate) => candidate.path)).join(' ');
    const command = `${info.name}${path === '' ? '' : ` ${path}`}`;
    // commander.help: a group (or the program) named without a command; its help went to stderr.
    const message =
      error.code === 'commander.help'
        ? `Name a command: ${command} <command>. Run \`${command} --help\` for the list.`
        : `${error.message.replace(/^error: /, '').replace(/\n/g, ' ').replace(/\.$/, '')}. Run \`${command} --help\` for usage.`;
    printError(io, json, 'USAGE_ERROR', message);
    return exitCodes.usage;
  }
}
