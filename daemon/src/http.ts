import { Agent, EnvHttpProxyAgent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { limits } from './config.js';
import { DaemonError } from './errors.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';
import { backoffDelay, isAbortError, parseRetryAfter, sleep } from './timing.js';

// All of droverd's outbound HTTP goes through this module, on undici: every request has connect,
// header and body timeouts and a User-Agent; the manager is reached through HTTPS_PROXY/NO_PROXY
// (EnvHttpProxyAgent); API calls are retried only on network errors, 408, 429 and 5xx, with
// exponential backoff and full jitter. Downloads stream (and resume) in download.ts, on `stream`.

export type Headers = Record<string, string>;
export type ResponseHeaders = Record<string, string | string[] | undefined>;

export interface HttpClientOptions {
  userAgent: string;
  /** An undici dispatcher to use instead of the default (tests inject one). */
  dispatcher?: Dispatcher;
  /** false: no proxy even if HTTPS_PROXY is set (the agent on loopback). Default true. */
  proxy?: boolean;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  maxAttempts?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  random?: () => number;
  logger?: Logger;
}

export interface JsonRequest {
  method: 'GET' | 'POST';
  url: string | URL;
  headers?: Headers;
  /** Sent as application/json. */
  json?: unknown;
  signal?: AbortSignal;
  /** false: one attempt only (a request that must not be repeated). Default true. */
  retry?: boolean;
  /** Bytes of response body read at most. */
  maxBytes?: number;
  /** Overrides of the client's header and body timeouts, ms. */
  timeoutMs?: number;
}

export interface JsonResponse {
  status: number;
  headers: ResponseHeaders;
  /** The parsed JSON body; undefined when the body is empty or not JSON. */
  body: unknown;
}

export interface StreamRequest {
  url: string | URL;
  headers?: Headers;
  signal?: AbortSignal;
  /** ms without a byte before the body read fails (a stall). */
  bodyTimeoutMs?: number;
}

export interface StreamResponse {
  status: number;
  headers: ResponseHeaders;
  body: Dispatcher.ResponseData['body'];
}

const RETRY_STATUSES = new Set([408, 429]);

/** True when an HTTP status is worth another attempt. */
export function isRetryableStatus(status: number): boolean {
  return RETRY_STATUSES.has(status) || (status >= 500 && status <= 599);
}

/**
 * The URL of one of the manager's routes. The manager may be served under a path
 * (`https://ops.example/drover`, its `settings.routePrefix`): the route is appended to that path,
 * where `new URL('/v1/...', base)` would drop it.
 */
export function managerEndpoint(managerUrl: string, route: string): URL {
  const base = new URL(managerUrl);
  base.pathname = `${base.pathname.replace(/\/+$/, '')}${route}`;
  base.search = '';
  base.hash = '';
  return base;
}

/** One header value as a string (the first of a list). */
export function header(headers: ResponseHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

async function readLimited(body: Dispatcher.ResponseData['body'], maxBytes: number, url: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      body.destroy();
      throw new DaemonError('RESPONSE_TOO_LARGE', `The response from ${url} is larger than ${maxBytes} bytes; it was not read. Check the manager URL.`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function origin(url: string | URL): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return String(url).slice(0, 200);
  }
}

/**
 * droverd's HTTP client. Construct one for the manager (proxied, retried) and one for the agent
 * (loopback, no proxy, one attempt).
 *
 * @example
 * const http = new HttpClient({ userAgent: 'droverd/1.0.0' })
 * const { status, body } = await http.json({ method: 'POST', url, json: { ... } })
 */
export class HttpClient {
  readonly #dispatcher: Dispatcher;
  readonly #owned: boolean;
  readonly #userAgent: string;
  readonly #headersTimeoutMs: number;
  readonly #bodyTimeoutMs: number;
  readonly #maxAttempts: number;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  readonly #random: () => number;
  readonly #logger: Logger;

  constructor(options: HttpClientOptions) {
    this.#userAgent = options.userAgent;
    this.#headersTimeoutMs = options.headersTimeoutMs ?? limits.httpHeadersTimeoutMs;
    this.#bodyTimeoutMs = options.bodyTimeoutMs ?? limits.httpBodyTimeoutMs;
    this.#maxAttempts = options.maxAttempts ?? limits.httpMaxAttempts;
    this.#backoffBaseMs = options.backoffBaseMs ?? limits.httpBackoffBaseMs;
    this.#backoffMaxMs = options.backoffMaxMs ?? limits.httpBackoffMaxMs;
    this.#random = options.random ?? Math.random;
    this.#logger = options.logger ?? silentLogger;
    if (options.dispatcher !== undefined) {
      this.#dispatcher = options.dispatcher;
      this.#owned = false;
    } else {
      const common = {
        connect: { timeout: options.connectTimeoutMs ?? limits.httpConnectTimeoutMs },
        headersTimeout: this.#headersTimeoutMs,
        bodyTimeout: this.#bodyTimeoutMs,
      };
      this.#dispatcher = options.proxy === false ? new Agent(common) : new EnvHttpProxyAgent(common);
      this.#owned = true;
    }
  }

  /** A JSON API call, retried on network errors, 408, 429 and 5xx. Resolves with the last response. */
  async json(req: JsonRequest): Promise<JsonResponse> {
    const attempts = req.retry === false ? 1 : this.#maxAttempts;
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      let response: JsonResponse | undefined;
      try {
        response = await this.#once(req);
      } catch (error) {
        if (isAbortError(error) || req.signal?.aborted === true || error instanceof DaemonError) throw error;
        lastError = error;
      }
      const last = attempt === attempts - 1;
      if (response !== undefined && (!isRetryableStatus(response.status) || last)) return response;
      if (last) break;
      let wait = backoffDelay(attempt, this.#backoffBaseMs, this.#backoffMaxMs, this.#random);
      const retryAfter = response === undefined ? undefined : parseRetryAfter(response.headers['retry-after']);
      if (retryAfter !== undefined) wait = Math.max(wait, Math.min(retryAfter, limits.httpRetryAfterMaxMs));
      this.#logger.debug(
        { event: 'http.retry', url: origin(req.url), attempt: attempt + 1, status: response?.status, err: lastError, waitMs: wait },
        'Retrying an HTTP request',
      );
      await sleep(wait, req.signal);
    }
    throw new DaemonError('MANAGER_UNREACHABLE', `${origin(req.url)} could not be reached after ${attempts} attempt(s). Check the network, the proxy (HTTPS_PROXY/NO_PROXY) and the URL.`, {
      cause: lastError,
    });
  }

  async #once(req: JsonRequest): Promise<JsonResponse> {
    const headers: Headers = { 'user-agent': this.#userAgent, accept: 'application/json', ...req.headers };
    let body: string | undefined;
    if (req.json !== undefined) {
      body = JSON.stringify(req.json);
      headers['content-type'] = 'application/json';
    }
    const response = await request(req.url, {
      dispatcher: this.#dispatcher,
      method: req.method,
      headers,
      ...(body === undefined ? {} : { body }),
      ...(req.signal === undefined ? {} : { signal: req.signal }),
      headersTimeout: req.timeoutMs ?? this.#headersTimeoutMs,
      bodyTimeout: req.timeoutMs ?? this.#bodyTimeoutMs,
    });
    const bytes = await readLimited(response.body, req.maxBytes ?? limits.jsonResponseMaxBytes, origin(req.url));
    let parsed: unknown;
    if (bytes.length > 0) {
      try {
        parsed = JSON.parse(bytes.toString('utf8'));
      } catch {
        parsed = undefined;
      }
    }
    return { status: response.statusCode, headers: response.headers, body: parsed };
  }

  /** One streaming GET, not retried (download.ts resumes with Range itself). */
  async stream(req: StreamRequest): Promise<StreamResponse> {
    const response = await request(req.url, {
      dispatcher: this.#dispatcher,
      method: 'GET',
      headers: { 'user-agent': this.#userAgent, ...req.headers },
      ...(req.signal === undefined ? {} : { signal: req.signal }),
      headersTimeout: this.#headersTimeoutMs,
      bodyTimeout: req.bodyTimeoutMs ?? this.#bodyTimeoutMs,
    });
    return { status: response.statusCode, headers: response.headers, body: response.body };
  }

  /** Closes the connections this client opened (not an injected dispatcher's). */
  async close(): Promise<void> {
    if (this.#owned) await this.#dispatcher.close();
  }
}

/** The User-Agent droverd sends: its version, Node's, and the platform. */
export function userAgent(daemonVersion: string): string {
  return `droverd/${daemonVersion} (node ${process.version}; ${process.platform}-${process.arch})`;
}
