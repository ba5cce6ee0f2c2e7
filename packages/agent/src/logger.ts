/**
 * The logger the agent writes through: pino's `(object, message)` shape, so a pino instance (or
 * `fastify.log`) fits as is. Defaults to silent: a library never writes to the console.
 *
 * @example
 * ```ts
 * import pino from 'pino'
 * const agent = createAgent({ version, onShutdown, drainTimeoutMs: 30_000, logger: pino() })
 * ```
 */
export interface Logger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

export const COMPONENT = 'drover:agent';

const ignore = (): void => undefined;

export const silentLogger: Logger = { info: ignore, warn: ignore, error: ignore };

// A throwing logger must not turn a refusal into a 500 or abandon a shutdown half-way, so every
// call goes through here and a logger failure is dropped.
export function safeLogger(logger: Logger): Logger {
  const wrap =
    (level: keyof Logger) =>
    (obj: Record<string, unknown>, msg: string): void => {
      try {
        logger[level]({ component: COMPONENT, ...obj }, msg);
      } catch {
        // dropped on purpose: see above
      }
    };
  return { info: wrap('info'), warn: wrap('warn'), error: wrap('error') };
}
