import { pino, stdSerializers } from 'pino';
import type { DestinationStream, Logger as PinoLogger, LoggerOptions } from 'pino';

// droverd logs JSON lines through pino, one object per line on stdout (journald under systemd):
// time (ISO 8601), level (its name), component, event, msg, and the context of the moment (agentId,
// commandId, step). One logger per process, made by createDaemonLogger; each module derives a child
// with its component (`drover:daemon:update`) from it. No transport: pino's worker-thread transports
// do not survive droverd's single-file esbuild bundle, and journald needs nothing but stdout.
// Secrets stay out in two layers: code logs ids, never values (a token by its tokenId), and the
// redaction list censors a field named like a secret should a line carry one by mistake.

/** The levels droverd logs at (`--log-level`). */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
/** droverd's logger: pino, JSON lines with secrets redacted. */
export type Logger = PinoLogger;

/** The component of a line logged by the process logger itself, not a module's child. */
export const COMPONENT = 'drover:daemon';

/** Paths pino censors in every line: the credential, tokens, nonces, passwords, Authorization headers. */
export const redactPaths: readonly string[] = [
  'credential',
  'previousCredential',
  'serviceToken',
  'enrollmentToken',
  'token',
  'nonce',
  'password',
  'secret',
  'privateKey',
  'authorization',
  'headers.authorization',
  'headers["x-update-nonce"]',
  '*.credential',
  '*.previousCredential',
  '*.serviceToken',
  '*.enrollmentToken',
  '*.token',
  '*.nonce',
  '*.password',
  '*.secret',
  '*.privateKey',
  '*.authorization',
  '*.headers.authorization',
  '*.headers["x-update-nonce"]',
];

/** The options of {@link createDaemonLogger}. */
export interface DaemonLoggerOptions {
  /** Lines below this level are not written (default `info`). */
  level?: LogLevel;
  /** Where lines go (default stdout). Anything with a `write(line)` method. */
  destination?: { write(line: string): unknown };
}

/**
 * droverd's process logger: JSON lines, secrets redacted, errors with their stack and `cause`.
 *
 * @example
 * ```ts
 * const logger = createDaemonLogger({ level: settings.logLevel })
 * const updates = logger.child({ component: 'drover:daemon:update', agentId })
 * ```
 */
export function createDaemonLogger(options: DaemonLoggerOptions = {}): Logger {
  const sink = options.destination ?? { write: (line: string) => process.stdout.write(line) };
  const destination: DestinationStream = {
    write(line: string): void {
      try {
        sink.write(line);
      } catch {
        // A log sink that fails (a closed pipe) must never stop an update half-way.
      }
    },
  };
  const settings: LoggerOptions = {
    level: options.level ?? 'info',
    base: undefined, // journald records the pid and the host
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: [...redactPaths], censor: '[redacted]' },
    serializers: { err: stdSerializers.errWithCause },
    // A line of the process logger names droverd; a module's child names its own component (a
    // second `component` binding would repeat the key in the JSON, not replace it).
    mixin: (_line, _level, logger) => ('component' in logger.bindings() ? {} : { component: COMPONENT }),
  };
  return pino(settings, destination);
}

/** Writes nothing: the default of every module, and what unit tests pass. */
export const silentLogger: Logger = pino({ level: 'silent' }, { write: () => undefined });

/** Parses a level name from configuration; undefined for anything else. */
export function parseLogLevel(text: string | undefined): LogLevel | undefined {
  return text === 'debug' || text === 'info' || text === 'warn' || text === 'error' ? text : undefined;
}
