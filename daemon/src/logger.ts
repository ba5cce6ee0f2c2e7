// droverd logs JSON lines: one object per line with time, level, component, message and the
// context of the moment (agentId, deploymentId, step). Library modules log only through a Logger
// they are given; the CLI entry decides where lines go (stdout, so journald under systemd).

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(fields: LogFields, msg: string): void;
  info(fields: LogFields, msg: string): void;
  warn(fields: LogFields, msg: string): void;
  error(fields: LogFields, msg: string): void;
  /** A logger whose lines all carry `bindings` (e.g. `{ component: 'drover:daemon:update' }`). */
  child(bindings: LogFields): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

// Belt and braces: a field whose name says secret is never written, whoever passed it.
const SECRET_KEY = /^(?:credential|servicetoken|token|enrollmenttoken|authorization|password|secret|privatekey)$/i;

function clean(value: unknown, depth: number): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { name: value.name, message: value.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object' || depth > 4) return value;
  if (Array.isArray(value)) return value.slice(0, 64).map((item) => clean(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = SECRET_KEY.test(key) ? '[redacted]' : clean(item, depth + 1);
  return out;
}

export interface JsonLoggerOptions {
  level?: LogLevel;
  bindings?: LogFields;
  now?: () => Date;
}

/**
 * A logger writing one JSON object per line through `write`.
 *
 * @example
 * const logger = createJsonLogger((line) => process.stdout.write(line), { bindings: { component: 'drover:daemon' } })
 */
export function createJsonLogger(write: (line: string) => void, options: JsonLoggerOptions = {}): Logger {
  const threshold = ORDER[options.level ?? 'info'];
  const bindings = options.bindings ?? {};
  const now = options.now ?? ((): Date => new Date());
  const emit = (level: LogLevel, fields: LogFields, msg: string): void => {
    if (ORDER[level] < threshold) return;
    const record = clean({ time: now().toISOString(), level, ...bindings, ...fields, msg }, 0);
    try {
      write(`${JSON.stringify(record)}\n`);
    } catch {
      // A log sink that fails (a closed pipe) must never stop an update half-way.
    }
  };
  return {
    debug: (fields, msg) => {
      emit('debug', fields, msg);
    },
    info: (fields, msg) => {
      emit('info', fields, msg);
    },
    warn: (fields, msg) => {
      emit('warn', fields, msg);
    },
    error: (fields, msg) => {
      emit('error', fields, msg);
    },
    child: (more) => createJsonLogger(write, { ...options, bindings: { ...bindings, ...more } }),
  };
}

const ignore = (): void => undefined;

/** Writes nothing: the default of every module, and what unit tests pass. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore, child: () => silentLogger };

/** Parses a level name from configuration; undefined for anything else. */
export function parseLogLevel(text: string | undefined): LogLevel | undefined {
  return text === 'debug' || text === 'info' || text === 'warn' || text === 'error' ? text : undefined;
}
