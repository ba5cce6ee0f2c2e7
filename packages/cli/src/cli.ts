import { DroverError } from '@drover/protocol';
import { CliError } from './errors.js';

// What a command of `drover` declares: its options, arguments and what it does. program.ts turns
// these into commander commands; a command module is loaded only when its command runs (main.ts).

/**
 * drover's exit codes: a command may add its own negative outcome (`audit verify`: 1, a broken log;
 * its errors then exit with its `errorExitCode`, 3).
 */
export const exitCodes = {
  ok: 0,
  error: 1, // the command failed; its stable error code is printed (docs/errors.md)
  usage: 2, // USAGE_ERROR: an unknown command or option, a missing or malformed value
} as const;

export type OptionValue = string | boolean | string[] | undefined;
export type OptionValues = Record<string, OptionValue>;

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** Repeatable: the values are collected into a list. */
  multiple?: boolean;
  /** One line for --help; name the unit and the default. */
  help: string;
  /** Placeholder shown in --help, e.g. DIR. */
  arg?: string;
  /** Old spellings still accepted, hidden from --help (scripts written for them keep working). */
  aliases?: readonly string[];
}

/** What a command reads and writes besides its arguments: output streams, the environment, the working directory. */
export interface CommandIo {
  /** Writes to standard output (results, or JSON with --json). */
  stdout(text: string): void;
  /** Writes to standard error (errors, progress). */
  stderr(text: string): void;
  /** Read for tokens and keys (DROVER_ADMIN_TOKEN, ...). */
  env: NodeJS.ProcessEnv;
  /** Relative paths resolve against it. */
  cwd: string;
}

export interface CommandInput {
  /** Each option given on the command line, by its long name (`--expires-in` is `expires-in`). */
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
  /** What follows the command's words in its usage line, e.g. `--out DIR [--name NAME]`. */
  usage: string;
  description?: string;
  options: Record<string, OptionSpec>;
  /** Its positional arguments in commander's notation: `<FILE>` required, `[ID]` optional. */
  arguments?: readonly string[];
  /**
   * The exit code of an error other than USAGE_ERROR (default {@link exitCodes}.error, 1): a command
   * whose negative outcome is 1 gives its errors another, so a script tells the two apart
   * (`audit verify`: 1 BROKEN, 3 no verdict).
   */
  errorExitCode?: number;
  run(input: CommandInput): Promise<CommandResult>;
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
