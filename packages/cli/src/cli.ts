import { parseArgs } from 'node:util';
import { DroverError, joinDashValues } from '@drover/protocol';
import { CliError } from './errors.js';

export type OptionValue = string | boolean | string[] | undefined;
export type OptionValues = Record<string, OptionValue>;

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** One line for --help; name the unit or the default. */
  help: string;
  /** Placeholder shown in --help, e.g. DIR. */
  arg?: string;
}

export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface CommandInput {
  values: OptionValues;
  positionals: string[];
  io: CommandIo;
  /** True with --json: `run` returns data and must not print. */
  json: boolean;
}

/** What a command returns: `data` is printed as JSON with --json, `text` otherwise. */
export interface CommandResult {
  data: unknown;
  text: string;
  /** Exit code; 0 unless the command reports a negative outcome (e.g. a broken audit log). */
  exitCode?: number;
}

export interface Command {
  /** The words after `drover`, e.g. `['release', 'sign']`. */
  path: readonly string[];
  summary: string;
  usage: string;
  description?: string;
  options: Record<string, OptionSpec>;
  positionals: { min: number; max: number };
  run(input: CommandInput): Promise<CommandResult>;
}

const commonOptions: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', help: 'Show this help and exit.' },
  json: { type: 'boolean', help: 'Print the result (or the error) as JSON on stdout.' },
};

export function helpText(command: Command): string {
  const options = { ...command.options, ...commonOptions };
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short === undefined ? '    ' : `-${spec.short}, `}--${name}${spec.type === 'string' ? ` ${spec.arg ?? 'VALUE'}` : ''}`;
    return `  ${flag.padEnd(30)} ${spec.help}${spec.multiple === true ? ' (repeatable)' : ''}`;
  });
  return [`Usage: ${command.usage}`, '', command.summary, ...(command.description === undefined ? [] : ['', command.description]), '', 'Options:', ...rows, ''].join('\n');
}

/** Runs one command: parses its arguments, prints its result, and returns the exit code. */
export async function runCommand(command: Command, args: string[], io: CommandIo): Promise<number> {
  const json = args.includes('--json');
  try {
    const options = { ...command.options, ...commonOptions };
    let parsed;
    try {
      parsed = parseArgs({
        args: joinDashValues(args, options),
        options: Object.fromEntries(
          Object.entries(options).map(([name, spec]) => [name, { type: spec.type, multiple: spec.multiple ?? false, ...(spec.short === undefined ? {} : { short: spec.short }) }]),
        ),
        allowPositionals: true,
        strict: true,
      });
    } catch (error) {
      throw new CliError('USAGE_ERROR', `${(error as Error).message}. Run \`drover ${command.path.join(' ')} --help\` for usage.`, { cause: error });
    }
    if (parsed.values['help'] === true) {
      io.stdout(helpText(command));
      return 0;
    }
    const { min, max } = command.positionals;
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw new CliError('USAGE_ERROR', `Expected ${min === max ? String(min) : `${min} to ${max}`} argument(s), got ${parsed.positionals.length}. Usage: ${command.usage}`);
    }
    const result = await command.run({ values: parsed.values as OptionValues, positionals: parsed.positionals, io, json });
    io.stdout(json ? `${JSON.stringify(result.data, null, 2)}\n` : result.text.endsWith('\n') || result.text === '' ? result.text : `${result.text}\n`);
    return result.exitCode ?? 0;
  } catch (error) {
    const { code, message } = describeError(error);
    if (json) io.stdout(`${JSON.stringify({ error: { code, message } }, null, 2)}\n`);
    else io.stderr(`drover: ${code}: ${message}\n`);
    return 1;
  }
}

/** The stable code and message of any error; unexpected ones become INTERNAL_ERROR. */
export function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof DroverError) return { code: error.code, message: error.message };
  const nodeCode = (error as NodeJS.ErrnoException | undefined)?.code;
  if (nodeCode === 'ENOENT') return { code: 'FILE_NOT_FOUND', message: `${(error as Error).message}. Check the path.` };
  if (nodeCode === 'EACCES' || nodeCode === 'EPERM') return { code: 'IO_ERROR', message: `${(error as Error).message}. Check the file's permissions.` };
  return { code: 'INTERNAL_ERROR', message: `Unexpected failure: ${error instanceof Error ? error.message : String(error)}. Please report this as a bug.` };
}

export function requireString(values: OptionValues, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw new CliError('USAGE_ERROR', `--${name} is required.`);
  return value;
}

export function optionalString(values: OptionValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

export function stringList(values: OptionValues, name: string): string[] {
  const value = values[name];
  return Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
}

export function flag(values: OptionValues, name: string): boolean {
  return values[name] === true;
}

const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** Parses `90d`, `12h`, `30m`, `45s` into seconds. */
export function parseDurationSeconds(text: string, option: string): number {
  const match = DURATION.exec(text.trim());
  if (match?.[1] === undefined || match[2] === undefined) {
    throw new CliError('USAGE_ERROR', `--${option} takes a duration such as 90d, 12h, 30m or 45s; got "${text}".`);
  }
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS];
  if (seconds <= 0) throw new CliError('USAGE_ERROR', `--${option} must be longer than zero.`);
  return seconds;
}
