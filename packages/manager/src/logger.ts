import { pino, stdSerializers } from 'pino';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';

// The manager logs JSON lines through pino, never a secret. Three layers keep secrets out:
// - code logs ids, never values (a token is named by its tokenId, a credential by its id);
// - the request serializer drops the query string, which on a presigned download is a capability;
// - pino's redaction list censors anything that still looks like a secret (an Authorization
//   header, a field named like a token) should a future log line include it by mistake.

export const COMPONENT = 'drover:manager';

/** Paths pino censors in every log line. */
export const redactPaths: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-update-nonce"]',
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
  '*.token',
  '*.credential',
  '*.serviceToken',
  '*.enrollmentToken',
  '*.adminToken',
  '*.deployToken',
  '*.encryptionKey',
  '*.authorization',
  '*.sig',
  '*.nonce',
];

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
    redact: { paths: [...redactPaths], censor: '[redacted]' },
    serializers: { req: serializeRequest, err: stdSerializers.err },
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}

/** A logger that writes nothing: the default of library entry points. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
