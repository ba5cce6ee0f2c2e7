import { pino, stdSerializers } from 'pino';
import { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { Bindings, ChildLoggerOptions, DestinationStream, LogFn, Logger, LoggerOptions } from 'pino';

// The manager logs JSON lines through pino, never a secret. Three layers keep secrets out:
// - code logs ids, never values (a token is named by its tokenId, a credential by its id);
// - the request serializer drops the query string, which on a presigned download is a capability;
// - pino's redaction list censors anything that still looks like a secret (an Authorization
//   header, a field named like a token) should a future log line include it by mistake.

export const COMPONENT = 'drover:manager';

const CENSOR = '[redacted]';

/**
 * Paths pino censors in every log line (its `redact`); the `*.key` ones are {@link nestedSecretKeys}.
 * None under `req`: pino runs a key's serializer before its redaction, and {@link serializeRequest}
 * keeps no header, so `req.headers.*` paths had nothing left to censor and cost a redactor call
 * (about 7 us) on every request line.
 */
export const redactPaths: readonly string[] = [
  'headers.authorization',
  'authorization',
  'token',
  'credential',
  'serviceToken',
  'enrollmentToken',
  'adminToken',
  'deployToken',
  'encryptionKey',
  'sig',
];

/**
 * Keys censored one level down, under any top-level key of a line (what pino's `*.token` paths
 * would do). Done by {@link censorNested} in one pass: pino's redaction of a wildcard-first path
 * runs every top-level value of every line through a redactor that parses its paths at each
 * call, about 9 % of a check-in's CPU with request logging on (bench/checkin.ts).
 */
export const nestedSecretKeys: ReadonlySet<string> = new Set(['token', 'credential', 'serviceToken', 'enrollmentToken', 'adminToken', 'deployToken', 'encryptionKey', 'authorization', 'sig', 'nonce']);

/**
 * A line's object with every {@link nestedSecretKeys} key of a plain-object value censored;
 * copied only where one is found (the caller's objects are never changed). Values that are not
 * plain objects (a request, an error) are their serializers' business. pino's `formatters.log`
 * and, for the root logger's base, `formatters.bindings`; a child's bindings get the top-level
 * paths of {@link redactPaths} only (pino resets the bindings formatter for children), and the
 * manager binds only ids and plain strings.
 */
export function censorNested(object: Record<string, unknown>): Record<string, unknown> {
  let out = object;
  for (const key of Object.keys(object)) {
    const value = object[key];
    if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) continue;
    let copy: Record<string, unknown> | undefined;
    for (const inner of Object.keys(value)) {
      if (nestedSecretKeys.has(inner)) {
        copy ??= { ...(value as Record<string, unknown>) };
        copy[inner] = CENSOR;
      }
    }
    if (copy === undefined) continue;
    if (out === object) out = { ...object };
    out[key] = copy;
  }
  return out;
}

interface RequestLike {
  method?: string;
  url?: string;
  ip?: string;
  id?: string;
  routeOptions?: { url?: string | undefined };
}

/** The request as logged: method, path without its query, the route, the peer. */
export function serializeRequest(request: RequestLike): Record<string, unknown> {
  const url = typeof request.url === 'string' ? request.url : '';
  const query = url.indexOf('?');
  return {
    method: request.method,
    path: query === -1 ? url : url.slice(0, query),
    ...(query === -1 ? {} : { query: '[omitted]' }),
    route: request.routeOptions?.url,
    remoteAddress: request.ip,
  };
}

/** The options of {@link createManagerLogger}. */
export interface ManagerLoggerOptions {
  /** pino level (default `info`). */
  level?: LoggerOptions['level'];
  /** Where lines go (default stdout). */
  destination?: DestinationStream;
}

/**
 * The manager's pino logger: JSON lines with the component name, tokens and credentials censored,
 * request lines without their query string (a presigned download's signature is a capability).
 * Give it to the Fastify app you mount {@link managerPlugin} in, so its request logs are as careful.
 *
 * @param options - The level (default `info`) and where lines go (default stdout).
 * @returns A pino logger, for `ManagerOptions.logger` and Fastify's `loggerInstance`.
 */
export function createManagerLogger(options: ManagerLoggerOptions = {}): Logger {
  const settings: LoggerOptions = {
    level: options.level ?? 'info',
    base: { component: COMPONENT },
    redact: { paths: [...redactPaths], censor: CENSOR },
    formatters: { log: censorNested, bindings: censorNested },
    serializers: { req: serializeRequest, err: stdSerializers.err },
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}

/** A logger that writes nothing: the default of library entry points. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * A request's logger, made only when the request logs something. Fastify gives every request a
 * child logger with its id bound; pino's child() copies and re-serializes the parent's bindings,
 * 3-4 us of a check-in's CPU (bench/checkin.ts), and most requests log nothing but their request
 * line, which {@link ManagerLogController} writes on the root logger. Fastify's `childLoggerFactory`.
 */
export function lazyRequestLogger(logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyRequestLogger(logger, bindings, options);
}

// One object per request with the methods on its prototype: closures made per request cost more
// than the child they put off (bench/checkin.ts).
class LazyRequestLogger implements FastifyBaseLogger {
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #real(): FastifyBaseLogger {
    return (this.#child ??= this.#parent.child(this.#bindings, this.#options));
  }

  fatal(...args: Parameters<LogFn>): void {
    this.#real().fatal(...args);
  }

  error(...args: Parameters<LogFn>): void {
    this.#real().error(...args);
  }

  warn(...args: Parameters<LogFn>): void {
    this.#real().warn(...args);
  }

  info(...args: Parameters<LogFn>): void {
    this.#real().info(...args);
  }

  debug(...args: Parameters<LogFn>): void {
    this.#real().debug(...args);
  }

  trace(...args: Parameters<LogFn>): void {
    this.#real().trace(...args);
  }

  silent(...args: Parameters<LogFn>): void {
    this.#real().silent(...args);
  }

  child(more: Bindings, moreOptions?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#real().child(more, moreOptions);
  }

  get level(): string {
    return this.#child?.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#real().level = level;
  }
}

/**
 * One log line per request, written when it ends: `request completed` (or `request errored`) with
 * the request (method, path, route, peer), the status and the response time, under the request's
 * id. Fastify's own controller writes two lines per request, `incoming request` when it arrives and
 * `request completed` without the request; here the arrival line is at `debug` (a request that
 * never ends, or one under way when the process dies, is seen there). Half the lines, and no child
 * logger made for a request that logs nothing else: about 6 % of a check-in's CPU with request
 * logging on (bench/checkin.ts; docs/decisions/0052-one-request-line.md). Fastify's `logController`.
 */
export class ManagerLogController extends LogController {
  readonly #logger: Logger;

  constructor(logger: Logger, options: ConstructorParameters<typeof LogController>[0] = {}) {
    super(options);
    this.#logger = logger;
  }

  override incomingRequest(request: FastifyRequest): void {
    if (this.isLogDisabled(request) || !this.#logger.isLevelEnabled('debug')) return;
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    // The root logger with the id as a field: the same line the request's child logger would write
    // (its only binding is the id), without making that child.
    const line = { [this.requestIdLogLabel]: request.id, req: request, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime };
    if (error) this.#logger.error({ ...line, err: error }, 'request errored');
    else this.#logger.info(line, 'request completed');
  }
}
