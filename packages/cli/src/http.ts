import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { EnvHttpProxyAgent } from 'undici';
import type { Dispatcher } from 'undici';
import { CliError, RemoteError } from './errors.js';
import { PACKAGE_VERSION } from './version.js';

// The one module through which the CLI talks HTTP (to a manager): undici with timeouts on
// connect, headers and body; proxies from HTTPS_PROXY/HTTP_PROXY/NO_PROXY; retries with
// exponential backoff and full jitter on network errors, 408, 429 and 5xx only (never on other
// 4xx: a refusal does not change by asking again); a User-Agent; a bounded response size.

export const httpDefaults = {
  connectTimeoutMs: 10_000, // milliseconds to open a connection
  headersTimeoutMs: 30_000, // milliseconds until the response headers arrive
  bodyTimeoutMs: 60_000, // milliseconds of silence allowed while a body streams
  retries: 3, // attempts after the first one
  backoffBaseMs: 250, // milliseconds: the first retry waits up to this, doubling each time
  backoffMaxMs: 5_000, // milliseconds: the longest wait between attempts
  maxResponseBytes: 16 * 1024 * 1024, // bytes of a response body the CLI reads
} as const;

export const USER_AGENT = `drover-cli/${PACKAGE_VERSION} (node/${process.versions.node})`;

export interface HttpClientOptions {
  /** The manager's URL, e.g. https://manager.example:8443 (a path prefix is kept). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` on every request. */
  token?: string | undefined;
  retries?: number;
  /** Injectable for tests; default an EnvHttpProxyAgent with the timeouts above. */
  dispatcher?: Dispatcher;
  /** Injectable for tests: waits between attempts. */
  wait?: (ms: number) => Promise<void>;
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  headers?: Record<string, string>;
  /** JSON body (sets Content-Type). */
  json?: unknown;
  /** A raw body: bytes, or a function making a fresh stream for each attempt. */
  body?: Uint8Array | (() => Readable);
  /** False for requests that must not be sent twice (default true: retried on transient failures). */
  retry?: boolean;
  /** True when `path` came from the manager (e.g. an upload URL): it already holds any mount prefix. */
  fromOrigin?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

const RETRIABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

function isNetworkError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  const causeCode = ((error as { cause?: { code?: unknown } } | undefined)?.cause)?.code;
  return (typeof code === 'string' && NETWORK_CODES.has(code)) || (typeof causeCode === 'string' && NETWORK_CODES.has(causeCode));
}

/** Full jitter: a random wait up to the exponential bound, so many clients do not retry in step. */
export function backoffMs(attempt: number, retryAfter?: string): number {
  const bound = Math.min(httpDefaults.backoffMaxMs, httpDefaults.backoffBaseMs * 2 ** attempt);
  const seconds = retryAfter === undefined ? Number.NaN : Number(retryAfter);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(httpDefaults.backoffMaxMs, seconds * 1000);
  return Math.floor(Math.random() * bound);
}

let defaultDispatcher: Dispatcher | undefined;
function dispatcherOf(options: HttpClientOptions): Dispatcher {
  if (options.dispatcher !== undefined) return options.dispatcher;
  defaultDispatcher ??= new EnvHttpProxyAgent({
    connect: { timeout: httpDefaults.connectTimeoutMs },
    headersTimeout: httpDefaults.headersTimeoutMs,
    bodyTimeout: httpDefaults.bodyTimeoutMs,
  });
  return defaultDispatcher;
}

async function readBounded(body: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > httpDefaults.maxResponseBytes) throw new CliError('HTTP_ERROR', `The response is larger than ${httpDefaults.maxResponseBytes} bytes; this is not a drover manager answer.`);
    parts.push(Buffer.from(chunk));
  }
  return Buffer.concat(parts).toString('utf8');
}

// Control characters (C0, DEL, C1) become spaces: a hostile answer cannot drive the terminal.
function printable(text: string): string {
  return Array.from(text, (char) => {
    const code = char.codePointAt(0) ?? 0;
    return code < 0x20 || (code >= 0x7f && code <= 0x9f) ? ' ' : char;
  }).join('');
}

/** An HTTP client bound to one manager. */
export class HttpClient {
  readonly #options: HttpClientOptions;
  readonly #base: URL;

  constructor(options: HttpClientOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch (error) {
      throw new CliError('USAGE_ERROR', `--manager must be a URL such as https://manager.example:8443; got "${options.baseUrl}".`, { cause: error });
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new CliError('USAGE_ERROR', `--manager must be an http(s) URL; got "${options.baseUrl}".`);
    this.#options = options;
    this.#base = base;
  }

  #url(path: string, fromOrigin: boolean): URL {
    const prefix = fromOrigin ? '' : this.#base.pathname.replace(/\/+$/, '');
    // Only a path: a manager-supplied URL never sends the token to another host.
    if (!path.startsWith('/') || path.startsWith('//')) throw new CliError('HTTP_ERROR', 'The manager named a URL that is not a path on itself; refusing to follow it.');
    return new URL(prefix + path, this.#base.origin);
  }

  /** Sends a request, retrying transient failures; returns any HTTP answer (2xx to 4xx). */
  async request(request: HttpRequest): Promise<HttpResponse> {
    const retries = request.retry === false ? 0 : (this.#options.retries ?? httpDefaults.retries);
    const wait = this.#options.wait ?? ((ms: number) => sleep(ms));
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, accept: 'application/json', ...request.headers };
    if (this.#options.token !== undefined) headers['authorization'] = `Bearer ${this.#options.token}`;
    if (request.json !== undefined) headers['content-type'] = 'application/json';
    const url = this.#url(request.path, request.fromOrigin === true);
    for (let attempt = 0; ; attempt += 1) {
      let response: HttpResponse;
      try {
        const body = request.json !== undefined ? JSON.stringify(request.json) : typeof request.body === 'function' ? request.body() : request.body;
        const answer = await dispatcherOf(this.#options).request({ origin: url.origin, path: url.pathname + url.search, method: request.method, headers, ...(body === undefined ? {} : { body }) });
        response = { status: answer.statusCode, headers: answer.headers, text: await readBounded(answer.body) };
      } catch (error) {
        if (error instanceof CliError) throw error;
        if (isNetworkError(error) && attempt < retries) {
          await wait(backoffMs(attempt));
          continue;
        }
        throw new CliError('NETWORK_ERROR', `Failed to reach the manager at ${url.origin} (${(error as { code?: string }).code ?? 'network error'}). Check the URL and that the manager is running.`, { cause: error });
      }
      if (RETRIABLE_STATUS.has(response.status) && attempt < retries) {
        const retryAfter = response.headers['retry-after'];
        await wait(backoffMs(attempt, typeof retryAfter === 'string' ? retryAfter : undefined));
        continue;
      }
      return response;
    }
  }

  /**
   * Opens a long-lived answer (server-sent events) and hands each piece of text to `onText` until
   * the manager ends it, `onText` returns false, or `signal` aborts. Never retried; a refusal
   * becomes a RemoteError like json()'s.
   */
  async stream(request: HttpRequest, onText: (text: string) => boolean, signal?: AbortSignal): Promise<void> {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, accept: 'text/event-stream', ...request.headers };
    if (this.#options.token !== undefined) headers['authorization'] = `Bearer ${this.#options.token}`;
    const url = this.#url(request.path, false);
    let answer: Dispatcher.ResponseData;
    try {
      answer = await dispatcherOf(this.#options).request({ origin: url.origin, path: url.pathname + url.search, method: request.method, headers, ...(signal === undefined ? {} : { signal }) });
    } catch (error) {
      throw new CliError('NETWORK_ERROR', `Failed to reach the manager at ${url.origin} (${(error as { code?: string }).code ?? 'network error'}). Check the URL and that the manager is running.`, { cause: error });
    }
    if (answer.statusCode < 200 || answer.statusCode >= 300) {
      const text = await readBounded(answer.body);
      let detail: { code?: unknown; message?: unknown } | undefined;
      try {
        detail = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
      } catch {
        detail = undefined;
      }
      if (typeof detail?.code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(detail.code) && typeof detail.message === 'string') {
        throw new RemoteError(detail.code, printable(detail.message).slice(0, 4096), answer.statusCode);
      }
      throw new CliError('HTTP_ERROR', `The manager answered ${answer.statusCode} to the event stream. Check that --manager points at a drover manager.`);
    }
    const decoder = new TextDecoder();
    try {
      for await (const chunk of answer.body as AsyncIterable<Uint8Array>) {
        if (!onText(decoder.decode(chunk, { stream: true }))) break;
      }
    } catch (error) {
      if (signal?.aborted === true) return;
      throw new CliError('NETWORK_ERROR', `The event stream from ${url.origin} broke (${(error as { code?: string }).code ?? 'network error'}). Run the command again to resume.`, { cause: error });
    } finally {
      answer.body.destroy();
    }
  }

  /** Sends a request and parses a 2xx JSON answer; a refusal becomes a RemoteError with the manager's code. */
  async json(request: HttpRequest): Promise<unknown> {
    const response = await this.request(request);
    let parsed: unknown;
    try {
      parsed = response.text === '' ? undefined : JSON.parse(response.text);
    } catch (error) {
      throw new CliError('HTTP_ERROR', `The manager answered ${response.status} with a body that is not JSON. Check that --manager points at a drover manager.`, { cause: error });
    }
    if (response.status >= 200 && response.status < 300) return parsed;
    const detail = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    // The code and message come from the network: only a well-formed code, and no control characters, reach the terminal.
    if (typeof detail?.code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(detail.code) && typeof detail.message === 'string') {
      throw new RemoteError(detail.code, printable(detail.message).slice(0, 4096), response.status);
    }
    throw new CliError('HTTP_ERROR', `The manager answered ${response.status} without a drover error body. Check that --manager points at a drover manager.`);
  }
}
