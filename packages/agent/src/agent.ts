import { sanitizeReason } from '@drover/protocol/internal';
import { limits, HEALTH_PATH, SHUTDOWN_PATH } from './config.js';
import { CriticalSections } from './critical-sections.js';
import { AgentError } from './errors.js';
import { safeLogger, silentLogger } from './logger.js';
import type { Logger } from './logger.js';
import { errorResponse, jsonResponse } from './response.js';
import type { AgentRequest, AgentResponse } from './response.js';
import { checkServiceToken } from './service-auth.js';
import { parseShutdownRequest } from './shutdown-request.js';

/** What the health route reports, as the agent's `health` option or `setHealth` sets it (`degraded` when a health function throws). */
export type HealthStatus = 'healthy' | 'degraded' | 'starting';

/** The body of `GET /v1/system/health`. */
export interface HealthReport {
  status: HealthStatus;
  version: string;
  busy: boolean;
}

/** What `onShutdown` learns besides the reason. */
export interface ShutdownInfo {
  /** The request said `"force": true` (always true for `agent.shutdown()`). */
  force: boolean;
  /** Every critical section ended before the drain timeout; false: `busyWith` still run. */
  drained: boolean;
  /** Sections still running when `onShutdown` is called (empty when drained). */
  busyWith: string[];
  /** `http`: `POST /v1/system/shutdown`; `api`: a call to `agent.shutdown()`. */
  source: 'http' | 'api';
}

/** How {@link createAgent} sets up an agent: its version, its shutdown hook, its drain time, its token. */
export interface AgentOptions {
  /** The version this agent runs, reported by the health route. */
  version: string;
  /** The service token callers must present. Default: env `DROVER_SERVICE_TOKEN`, then `CIRIS_SERVICE_TOKEN`. */
  serviceToken?: string | undefined;
  /**
   * Called once, after the 200 was sent and the drain ended (sections finished or
   * `drainTimeoutMs` passed), with the sanitized reason. Close servers and flush state here; the
   * process exits when it settles (exit code 1 when it throws or outlives `onShutdownTimeoutMs`).
   */
  onShutdown: (reason: string, info: ShutdownInfo) => void | Promise<void>;
  /** How long (ms) a shutdown waits for in-flight critical sections before going ahead anyway. */
  drainTimeoutMs: number;
  /**
   * `true` (default): `process.exit` once `onShutdown` settled. `false`: stay alive (an embedding
   * program decides). A function: called with the exit code instead of `process.exit`.
   */
  exit?: boolean | ((code: number) => void) | undefined;
  /** Where the service token is looked up. Default: `process.env`. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** pino-compatible logger; default silent. */
  logger?: Logger | undefined;
  /** The health status, or a function asked on every health request. Default: `healthy`. */
  health?: HealthStatus | (() => HealthStatus) | undefined;
  /** Require the service token on the health route too. Default: false (it reveals status, version and busy only). */
  healthRequiresToken?: boolean | undefined;
  /** `Retry-After` (seconds) of a 503 while busy. Default 5. */
  retryAfterSeconds?: number | undefined;
  /** How long (ms) `onShutdown` may run before the agent gives up on it and exits 1. Default 30000. */
  onShutdownTimeoutMs?: number | undefined;
}

/**
 * The agent side of drover, from {@link createAgent}: serve its routes with an adapter, wrap busy work
 * in critical sections, and let it drain and stop when asked.
 */
export interface Agent {
  /** The version the health route reports. */
  readonly version: string;
  /**
   * Runs `fn` as a critical section: while any runs, a shutdown request gets 503 and a forced or
   * programmatic shutdown waits (up to `drainTimeoutMs`). Sections may run concurrently and nest.
   * Once a shutdown is accepted, new sections reject with `AgentError` `AGENT_SHUTTING_DOWN`
   * (sections nested in one still running are admitted).
   *
   * @example
   * ```ts
   * await agent.critical('billing-run', async () => { await chargeCustomers() })
   * ```
   */
  critical<T>(name: string, fn: () => T | Promise<T>): Promise<T>;
  /** True while a critical section runs. */
  busy(): boolean;
  /** Distinct names of the critical sections running, oldest first. */
  busyWith(): string[];
  health(): HealthReport;
  /** Replaces the health status (or the function asked for it). */
  setHealth(status: HealthStatus | (() => HealthStatus)): void;
  /** True once a shutdown was accepted. */
  shuttingDown(): boolean;
  /**
   * Shuts down from inside the program (e.g. on SIGTERM): stops accepting work, drains up to
   * `drainTimeoutMs`, calls `onShutdown`, exits. Resolves once `onShutdown` settled; a second call
   * (or one after an HTTP shutdown) returns the same promise.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => void agent.shutdown('SIGTERM'))
   * ```
   */
  shutdown(reason: string): Promise<void>;
  /** Resolves once a shutdown's `onShutdown` has settled (just before the exit). */
  readonly closed: Promise<void>;
  /** The transport-neutral core every adapter calls. Never throws: any failure is a 500 with a body. */
  handle(request: AgentRequest): Promise<AgentResponse>;
  /**
   * The service-token guard, transport-neutral: undefined when the request carries the agent's
   * token, else the 401 to send. The adapters wrap it for routes of your own.
   *
   * @example
   * ```ts
   * const refused = agent.requireServiceToken({ method: 'POST', path: '/admin', headers })
   * if (refused) return refused
   * ```
   */
  requireServiceToken(request: Pick<AgentRequest, 'method' | 'path' | 'headers' | 'remoteAddress'>): AgentResponse | undefined;
  /** True for the paths the agent answers (its two routes), so an adapter can pass others on. */
  handles(path: string): boolean;
}

type State = 'running' | 'draining' | 'stopped';
const HEALTH_STATUSES: readonly string[] = ['healthy', 'degraded', 'starting'];
const ROUTES: Readonly<Record<string, readonly string[]>> = {
  [SHUTDOWN_PATH]: ['POST'],
  [HEALTH_PATH]: ['GET', 'HEAD'],
};

function invalid(message: string): AgentError {
  return new AgentError('AGENT_OPTIONS_INVALID', message);
}

function stripQuery(path: string): string {
  const end = path.indexOf('?');
  return end === -1 ? path : path.slice(0, end);
}

// A token is looked up explicitly first, then in the environment; an empty value counts as unset
// there (a blank `DROVER_SERVICE_TOKEN=` line must not shadow the CIRIS alias).
function resolveServiceToken(options: AgentOptions): string {
  const env = options.env ?? process.env;
  const candidates =
    options.serviceToken !== undefined ? [options.serviceToken] : [env.DROVER_SERVICE_TOKEN, env.CIRIS_SERVICE_TOKEN].filter((v): v is string => v !== undefined && v.trim() !== '');
  const token = candidates[0]?.trim();
  // fail closed: an agent without a token would accept any shutdown request, so it must not start.
  if (token === undefined || token === '') {
    throw new AgentError(
      'SERVICE_TOKEN_MISSING',
      'No service token: set DROVER_SERVICE_TOKEN (or CIRIS_SERVICE_TOKEN) in the agent\'s environment, or pass serviceToken to createAgent.',
    );
  }
  // A token with whitespace inside can never arrive in a Bearer header, so it could never match.
  if (/\s/.test(token)) {
    throw new AgentError('SERVICE_TOKEN_INVALID', 'The service token contains whitespace; use the base64url token the manager issued.');
  }
  return token;
}

function validateOptions(options: AgentOptions): void {
  // Options may come from plain JavaScript or parsed config, so the types are checked at run time too.
  const o = options as Partial<Record<keyof AgentOptions, unknown>>;
  if (typeof o.version !== 'string' || o.version.trim() === '' || o.version.length > limits.versionMaxLength || sanitizeReason(o.version) !== o.version) {
    throw invalid(`createAgent needs "version": the version this agent runs, 1 to ${limits.versionMaxLength} printable characters.`);
  }
  if (o.serviceToken !== undefined && typeof o.serviceToken !== 'string') throw invalid('"serviceToken" must be a string.');
  if (typeof o.onShutdown !== 'function') throw invalid('createAgent needs "onShutdown": a function that stops the program\'s work.');
  const ms = (value: unknown): boolean => typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= limits.maxTimerMs;
  if (!ms(o.drainTimeoutMs)) throw invalid(`createAgent needs "drainTimeoutMs": milliseconds from 0 to ${limits.maxTimerMs}.`);
  if (o.onShutdownTimeoutMs !== undefined && !ms(o.onShutdownTimeoutMs)) {
    throw invalid(`"onShutdownTimeoutMs" must be milliseconds from 0 to ${limits.maxTimerMs}.`);
  }
  if (o.retryAfterSeconds !== undefined && (typeof o.retryAfterSeconds !== 'number' || !(o.retryAfterSeconds >= 1 && o.retryAfterSeconds <= 86_400))) {
    throw invalid('"retryAfterSeconds" must be a number of seconds from 1 to 86400.');
  }
  if (o.exit !== undefined && typeof o.exit !== 'boolean' && typeof o.exit !== 'function') throw invalid('"exit" must be a boolean or a function.');
  if (o.health !== undefined && typeof o.health !== 'function' && !HEALTH_STATUSES.includes(o.health as string)) {
    throw invalid('"health" must be "healthy", "degraded", "starting" or a function returning one.');
  }
}

class DroverAgent implements Agent {
  readonly version: string;
  readonly closed: Promise<void>;
  readonly #token: string;
  readonly #logger: Logger;
  readonly #onShutdown: AgentOptions['onShutdown'];
  readonly #drainTimeoutMs: number;
  readonly #onShutdownTimeoutMs: number;
  readonly #retryAfterSeconds: number;
  readonly #healthRequiresToken: boolean;
  readonly #exit: ((code: number) => void) | undefined;
  readonly #sections = new CriticalSections();
  #health: HealthStatus | (() => HealthStatus);
  #state: State = 'running';
  #drainDeadline = 0; // performance.now() at which the drain gives up
  #finishing: Promise<void> | undefined;
  #resolveClosed: () => void = () => undefined;

  constructor(options: AgentOptions) {
    validateOptions(options);
    this.#token = resolveServiceToken(options);
    this.version = options.version;
    this.#logger = safeLogger(options.logger ?? silentLogger);
    this.#onShutdown = options.onShutdown;
    this.#drainTimeoutMs = options.drainTimeoutMs;
    this.#onShutdownTimeoutMs = options.onShutdownTimeoutMs ?? limits.defaultOnShutdownTimeoutMs;
    this.#retryAfterSeconds = Math.ceil(options.retryAfterSeconds ?? limits.defaultRetryAfterSeconds);
    this.#healthRequiresToken = options.healthRequiresToken === true;
    this.#health = options.health ?? 'healthy';
    const exit = options.exit ?? true;
    this.#exit = exit === true ? (code) => process.exit(code) : exit === false ? undefined : exit;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  critical<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    return this.#sections.run(name, fn);
  }

  busy(): boolean {
    return this.#sections.busy();
  }

  busyWith(): string[] {
    return this.#sections.names();
  }

  health(): HealthReport {
    return { status: this.#healthStatus(), version: this.version, busy: this.#sections.busy() };
  }

  setHealth(status: HealthStatus | (() => HealthStatus)): void {
    if (typeof status !== 'function' && !HEALTH_STATUSES.includes(status)) {
      throw invalid('setHealth takes "healthy", "degraded", "starting" or a function returning one.');
    }
    this.#health = status;
  }

  shuttingDown(): boolean {
    return this.#state !== 'running';
  }

  shutdown(reason: string): Promise<void> {
    // An HTTP shutdown may still be draining or sending its 200: join it rather than start another.
    if (this.#state !== 'running') return this.#finishing ?? this.closed;
    // log injection: the same sanitising as the HTTP route.
    const sanitized = sanitizeReason(typeof reason === 'string' ? reason : String(reason));
    this.#claim(sanitized, true, 'api');
    return this.#finish(sanitized, true, 'api');
  }

  handles(path: string): boolean {
    return Object.hasOwn(ROUTES, stripQuery(path));
  }

  requireServiceToken(request: Pick<AgentRequest, 'method' | 'path' | 'headers' | 'remoteAddress'>): AgentResponse | undefined {
    return checkServiceToken(request, this.#token, this.#logger);
  }

  async handle(request: AgentRequest): Promise<AgentResponse> {
    try {
      return await this.#route(request);
    } catch (error) {
      // A bug here must not become a crash or a 5xx without a body: log it and answer 500.
      this.#logger.error({ event: 'internal_error', err: error }, 'The agent failed to handle a request');
      return errorResponse('INTERNAL_ERROR', 'The agent failed to handle the request; see its log.');
    }
  }

  async #route(request: AgentRequest): Promise<AgentResponse> {
    const path = stripQuery(request.path);
    const methods = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
    if (methods === undefined) return errorResponse('NOT_FOUND', `No route ${path.slice(0, 200)}. The agent answers ${SHUTDOWN_PATH} and ${HEALTH_PATH}.`);
    if (!methods.includes(request.method)) {
      return errorResponse('METHOD_NOT_ALLOWED', `${path} takes ${methods.join(' or ')}.`, { headers: { allow: methods.join(', ') } });
    }
    const routed = { ...request, path };
    return path === SHUTDOWN_PATH ? this.#shutdownRoute(routed) : this.#healthRoute(routed);
  }

  #healthRoute(request: AgentRequest): AgentResponse {
    if (this.#healthRequiresToken) {
      const refused = this.requireServiceToken(request);
      if (refused !== undefined) return refused;
    }
    return jsonResponse(200, this.health());
  }

  async #shutdownRoute(request: AgentRequest): Promise<AgentResponse> {
    // Authentication comes first: a stranger learns nothing about the body rules or the agent's state.
    const refused = this.requireServiceToken(request);
    if (refused !== undefined) return refused;
    if (request.bodyTimedOut === true) {
      return errorResponse('REQUEST_TIMEOUT', `The body did not arrive within ${limits.bodyReadTimeoutMs} ms; send it at once.`, {
        headers: { connection: 'close' },
      });
    }
    if (request.bodyTooLarge === true) {
      // endless data: reading stopped at the limit; the connection closes so the rest is never read.
      return errorResponse('BODY_TOO_LARGE', `The body is larger than ${limits.maxBodyBytes} bytes; a shutdown request is a small JSON object.`, {
        headers: { connection: 'close' },
      });
    }
    const parsed = parseShutdownRequest(request.body);
    if (!parsed.ok) {
      this.#logger.info({ event: 'shutdown_refused', status: parsed.response.status }, 'Refused a malformed shutdown request');
      return parsed.response;
    }
    const { reason, force } = parsed.request;

    if (this.#state !== 'running') {
      this.#logger.info({ event: 'shutdown_refused', status: 409, reason }, 'Refused a shutdown request: a shutdown is already under way');
      return errorResponse('SHUTDOWN_IN_PROGRESS', 'A shutdown was already accepted and is under way; wait for the agent to exit.');
    }
    if (this.#sections.busy() && !force) {
      const busyWith = this.#sections.names();
      this.#logger.info({ event: 'shutdown_deferred', reason, busyWith }, 'Refused a shutdown request: the agent is busy');
      return errorResponse(
        'AGENT_BUSY',
        `The agent is busy with ${busyWith.join(', ')}. Retry after ${this.#retryAfterSeconds} s, or send "force": true to drain (up to ${this.#drainTimeoutMs} ms) and stop anyway.`,
        { headers: { 'retry-after': String(this.#retryAfterSeconds) }, details: { busy_with: busyWith } },
      );
    }

    // The claim is synchronous (no await since the state check), so of concurrent requests exactly
    // one gets here; the rest see `draining` and get 409.
    this.#claim(reason, force, 'http');
    // force: the 200 is sent only after the bounded drain, so the caller knows the work has ended
    // (or the drain timed out) when it sees it.
    if (force && this.#sections.busy()) await this.#sections.idle(this.#remainingDrainMs());

    const response = jsonResponse(200, {
      data: {
        status: 'initiated',
        message: `System shutdown initiated: ${reason}`,
        shutdown_initiated: true,
        timestamp: new Date().toISOString(),
      },
    });
    let proceeded = false;
    const proceed = (): void => {
      if (proceeded) return;
      proceeded = true;
      clearTimeout(fallback);
      void this.#finish(reason, force, 'http');
    };
    // An adapter that never reports the response sent must not leave the agent running forever.
    const fallback = setTimeout(proceed, limits.responseFlushFallbackMs);
    response.sent = proceed;
    return response;
  }

  #claim(reason: string, force: boolean, source: ShutdownInfo['source']): void {
    this.#state = 'draining';
    this.#sections.close();
    this.#drainDeadline = performance.now() + this.#drainTimeoutMs;
    this.#logger.info({ event: 'shutdown_accepted', reason, force, source, busyWith: this.#sections.names() }, 'Shutdown accepted: draining');
  }

  #remainingDrainMs(): number {
    return Math.max(0, this.#drainDeadline - performance.now());
  }

  #finish(reason: string, force: boolean, source: ShutdownInfo['source']): Promise<void> {
    this.#finishing ??= this.#runShutdown(reason, force, source);
    return this.#finishing;
  }

  async #runShutdown(reason: string, force: boolean, source: ShutdownInfo['source']): Promise<void> {
    const drained = await this.#sections.idle(this.#remainingDrainMs());
    const busyWith = this.#sections.names();
    if (!drained) this.#logger.warn({ event: 'drain_timeout', busyWith, drainTimeoutMs: this.#drainTimeoutMs }, 'Drain timed out: shutting down with work in flight');

    let code = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(() => this.#onShutdown(reason, { force, drained, busyWith, source })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new Error(`onShutdown still running after ${this.#onShutdownTimeoutMs} ms`));
          }, this.#onShutdownTimeoutMs);
        }),
      ]);
      this.#logger.info({ event: 'shutdown_complete', reason, drained }, 'Shutdown complete');
    } catch (error) {
      code = 1;
      this.#logger.error({ event: 'shutdown_hook_failed', err: error }, 'onShutdown failed; exiting 1');
    } finally {
      clearTimeout(timer);
    }
    this.#state = 'stopped';
    this.#resolveClosed();
    this.#exit?.(code);
  }

  #healthStatus(): HealthStatus {
    if (typeof this.#health !== 'function') return this.#health;
    try {
      const status = this.#health();
      if (HEALTH_STATUSES.includes(status)) return status;
    } catch (error) {
      this.#logger.error({ event: 'health_check_failed', err: error }, 'The health function threw; reporting degraded');
    }
    return 'degraded';
  }
}

/**
 * Creates the agent side of drover: service-token auth, the busy-aware shutdown route, the health
 * route, critical sections and the graceful drain. Mount it with an adapter
 * (`createNodeHandler`, `createWebHandler`, `droverAgentPlugin`).
 *
 * Throws `AgentError` `SERVICE_TOKEN_MISSING` when no token is configured: the agent never runs open.
 *
 * @example
 * ```ts
 * const agent = createAgent({
 *   version: '1.4.2',
 *   drainTimeoutMs: 30_000,
 *   onShutdown: async (reason) => { await new Promise((r) => server.close(r)) },
 * })
 * const drover = createNodeHandler(agent)
 * const server = http.createServer((req, res) => { if (!drover(req, res)) app(req, res) })
 * ```
 */
export function createAgent(options: AgentOptions): Agent {
  return new DroverAgent(options);
}
