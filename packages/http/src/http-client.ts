import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, EnvHttpProxyAgent, RetryAgent, request as undiciRequest } from 'undici';
import type { Dispatcher } from 'undici';
import { deadlineSignal } from './deadline.js';
import { HttpError } from './errors.js';
import { defaultRetryPolicy, isNetworkError, isRepeatable, isRetryableStatus, retryDelay } from './retry-policy.js';
import type { RetryPolicy } from './retry-policy.js';
import { redactUrl } from './url.js';

// The one place drover's processes (droverd, the CLI, the manager's push calls) make HTTP requests,
// on undici. One timeout policy: connect, headers and body timeouts on every request, and an overall
// deadline where a caller asks for one. One retry policy (retry-policy.ts), run by undici's
// RetryAgent. Proxies from HTTPS_PROXY/HTTP_PROXY/NO_PROXY (EnvHttpProxyAgent). A User-Agent naming
// the component and its version. Every response body is read up to a maximum length.

/** The methods the client sends; GET, HEAD, OPTIONS, PUT and DELETE are retried as idempotent. */
export type HttpMethod = 'GET' | 'HEAD' | 'OPTIONS' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
/** A response's headers, names lower-case; read one with {@link header}. */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** The client's timeouts, in milliseconds, each per attempt. */
export interface Timeouts {
  /** ms to open a TCP (and TLS) connection. */
  connectMs: number;
  /** ms from the request sent to the response headers. */
  headersMs: number;
  /** ms of silence allowed between two chunks of a response body. */
  bodyMs: number;
}

/** The timeouts of a client given none: 10 s to connect, 30 s to the headers, 30 s of silence in a body. */
export const defaultTimeouts: Timeouts = { connectMs: 10_000, headersMs: 30_000, bodyMs: 30_000 };
/** Bytes of a response body read at most when neither the client nor the request says (1 MiB). */
export const defaultMaxResponseBytes = 1024 * 1024;

/** One retry about to happen, for the caller's log. */
export interface RetryEvent {
  method: string;
  /** The URL without its query string. */
  url: string;
  /** The attempt that failed, counted from 1. */
  attempt: number;
  status?: number | undefined;
  error?: unknown;
  waitMs: number;
}

/** How an {@link HttpClient} sends: its User-Agent, proxy, timeouts, retry policy and body limit. */
export interface HttpClientOptions {
  /** Sent on every request: the component and its version, e.g. `userAgent('droverd', '1.2.0')`. */
  userAgent: string;
  /** The undici dispatcher requests go out on instead of the default (tests inject one); retries still apply. */
  dispatcher?: Dispatcher;
  /** false: no proxy even if HTTPS_PROXY is set (a peer on loopback). Default true. */
  proxy?: boolean;
  /** Where HTTPS_PROXY, HTTP_PROXY and NO_PROXY are read (default process.env). */
  env?: Record<string, string | undefined>;
  /** Overrides of {@link defaultTimeouts}. */
  timeouts?: Partial<Timeouts>;
  /** Overrides of {@link defaultRetryPolicy}. */
  retry?: Partial<RetryPolicy>;
  /** bytes of a response body read at most, unless a request says otherwise. */
  maxResponseBytes?: number;
  /** Injectable for tests: the jitter's randomness. */
  random?: () => number;
  /** Injectable for tests: the wait between two attempts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Called before each retry (the caller logs it). */
  onRetry?: (event: RetryEvent) => void;
}

/** A request body: text, bytes, or a function making a fresh stream for each attempt (never held in memory). */
export type RequestBody = string | Uint8Array | (() => Readable);

/** One request of {@link HttpClient.request} or {@link HttpClient.json}: retried within the policy when repeatable. */
export interface HttpRequest {
  method: HttpMethod;
  /** An http(s) URL (HttpError URL_INVALID otherwise). */
  url: string | URL;
  headers?: Record<string, string>;
  /** Sent as application/json. */
  json?: unknown;
  /** Sent as is (with the caller's content-type header). */
  body?: RequestBody;
  /** Aborts the request and any wait between attempts. */
  signal?: AbortSignal;
  /** ms for the whole request, retries and waits included (HttpError DEADLINE_EXCEEDED). */
  deadlineMs?: number;
  /** ms: overrides the client's headers and body timeouts for this request. */
  timeoutMs?: number;
  /** bytes of the response body read at most (HttpError RESPONSE_TOO_LARGE beyond). */
  maxBytes?: number;
  /** false: one attempt, whatever the method. Default true (within the retry policy). */
  retry?: boolean;
  /** true: the caller vouches that the server treats a repeat of this POST as harmless. */
  idempotent?: boolean;
}

/** An answer, whatever its status (a 5xx left after the retries included), with its body read. */
export interface HttpResponse {
  status: number;
  headers: ResponseHeaders;
  /** The body, read up to the request's (or the client's) maximum. */
  body: Buffer;
}

/** An answer with its body parsed as JSON. */
export interface JsonResponse {
  status: number;
  headers: ResponseHeaders;
  /** The parsed JSON body; undefined when the body is empty or not JSON. */
  body: unknown;
}

/** A GET whose body is streamed ({@link HttpClient.stream}): downloads. */
export interface StreamRequest {
  url: string | URL;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** ms without a byte before the body read fails (a stall); default the client's body timeout. */
  bodyTimeoutMs?: number;
}

/** An answer to a {@link StreamRequest}: status and headers, the body still to read. */
export interface StreamResponse {
  status: number;
  headers: ResponseHeaders;
  /** The body, unread: the caller reads it to the end, or dumps or destroys it. */
  body: Dispatcher.ResponseData['body'];
}

/**
 * The User-Agent of a drover component: its name and version, Node's, and the platform.
 *
 * @example
 * ```ts
 * userAgent('droverd', '1.2.0') // 'droverd/1.2.0 (node v20.18.0; linux-x64)'
 * ```
 */
export function userAgent(component: string, version: string): string {
  return `${component}/${version} (node ${process.version}; ${process.platform}-${process.arch})`;
}

/** One header value as a string (the first of a list). */
export function header(headers: ResponseHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

function checkedUrl(url: string | URL): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new HttpError('URL_INVALID', 'The request URL is not a URL. Check the configured address.', { cause: error });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new HttpError('URL_INVALID', `${redactUrl(parsed)} is not an http(s) URL. Check the configured address.`);
  return parsed;
}

async function readBounded(body: Dispatcher.ResponseData['body'], maxBytes: number, from: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    // endless data: a peer cannot make the caller buffer more than it reads.
    if (total > maxBytes) {
      body.destroy();
      throw new HttpError('RESPONSE_TOO_LARGE', `The answer from ${from} is larger than ${maxBytes} bytes; it was not read. Check the URL.`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const sleepFor = (ms: number, signal?: AbortSignal): Promise<void> => delay(Math.max(0, ms), undefined, signal === undefined ? undefined : { signal });

/**
 * An HTTP client with drover's timeout and retry policies. Make one per peer kind (the manager:
 * proxied and retried; an agent on loopback: `proxy: false`) and close it when done.
 *
 * @example
 * ```ts
 * const http = new HttpClient({ userAgent: userAgent('droverd', DAEMON_VERSION) })
 * const { status, body } = await http.json({ method: 'POST', url, json: report, idempotent: true })
 * ```
 */
export class HttpClient {
  readonly #transport: Dispatcher;
  readonly #owned: boolean;
  readonly #userAgent: string;
  readonly #timeouts: Timeouts;
  readonly #policy: RetryPolicy;
  readonly #maxResponseBytes: number;
  readonly #random: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #onRetry: ((event: RetryEvent) => void) | undefined;

  constructor(options: HttpClientOptions) {
    this.#userAgent = options.userAgent;
    this.#timeouts = { ...defaultTimeouts, ...options.timeouts };
    this.#policy = { ...defaultRetryPolicy, ...options.retry };
    this.#maxResponseBytes = options.maxResponseBytes ?? defaultMaxResponseBytes;
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? sleepFor;
    this.#onRetry = options.onRetry;
    if (options.dispatcher !== undefined) {
      this.#transport = options.dispatcher;
      this.#owned = false;
    } else {
      const common = { connect: { timeout: this.#timeouts.connectMs }, headersTimeout: this.#timeouts.headersMs, bodyTimeout: this.#timeouts.bodyMs };
      const env = options.env;
      // With an explicit env, an absent variable is '' (no proxy): undici would fall back to process.env.
      const proxies = env === undefined ? {} : { httpProxy: env['HTTP_PROXY'] ?? env['http_proxy'] ?? '', httpsProxy: env['HTTPS_PROXY'] ?? env['https_proxy'] ?? '', noProxy: env['NO_PROXY'] ?? env['no_proxy'] ?? '' };
      this.#transport = options.proxy === false ? new Agent(common) : new EnvHttpProxyAgent({ ...common, ...proxies });
      this.#owned = true;
    }
  }

  /**
   * Sends a request and reads its answer (up to the maximum length). Resolves with any HTTP status,
   * the last one when the retries are spent; rejects with HttpError NETWORK_ERROR when no answer came,
   * with the caller's abort reason when its signal aborted.
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const url = checkedUrl(req.url);
    const deadline = req.deadlineMs === undefined ? undefined : deadlineSignal(req.deadlineMs, req.signal, `${req.method} ${redactUrl(url)}`);
    const signal = deadline?.signal ?? req.signal;
    const attempts = { made: 0 };
    try {
      return await this.#send(req, url, signal, attempts);
    } catch (error) {
      if (signal?.aborted === true) throw signal.reason instanceof HttpError ? signal.reason : error;
      if (error instanceof HttpError) throw error;
      const code = (error as { code?: unknown }).code;
      throw new HttpError(
        'NETWORK_ERROR',
        `${req.method} ${redactUrl(url)} got no answer after ${Math.max(1, attempts.made)} attempt(s)${typeof code === 'string' ? ` (${code})` : ''}. ${whatToCheck(code)}`,
        { cause: error },
      );
    } finally {
      deadline?.clear();
    }
  }

  /** request(), with an Accept: application/json header and the body parsed (undefined when empty or not JSON). */
  async json(req: HttpRequest): Promise<JsonResponse> {
    const response = await this.request({ ...req, headers: { accept: 'application/json', ...req.headers } });
    let body: unknown;
    if (response.body.length > 0) {
      try {
        body = JSON.parse(response.body.toString('utf8'));
      } catch {
        body = undefined;
      }
    }
    return { status: response.status, headers: response.headers, body };
  }

  /**
   * One GET whose body the caller streams (a download that resumes with Range by itself, server-sent
   * events). Never retried. Rejects with HttpError NETWORK_ERROR when no answer came.
   */
  async stream(req: StreamRequest): Promise<StreamResponse> {
    const url = checkedUrl(req.url);
    try {
      const response = await undiciRequest(url, {
        dispatcher: this.#transport,
        method: 'GET',
        headers: { 'user-agent': this.#userAgent, ...req.headers },
        ...(req.signal === undefined ? {} : { signal: req.signal }),
        headersTimeout: this.#timeouts.headersMs,
        bodyTimeout: req.bodyTimeoutMs ?? this.#timeouts.bodyMs,
      });
      return { status: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      if (req.signal?.aborted === true) throw error;
      const code = (error as { code?: unknown }).code;
      throw new HttpError('NETWORK_ERROR', `GET ${redactUrl(url)} got no answer${typeof code === 'string' ? ` (${code})` : ''}. ${whatToCheck(code)}`, { cause: error });
    }
  }

  /** Reads a streamed body to its end, up to `maxBytes` (default the client's maximum; RESPONSE_TOO_LARGE beyond). */
  async read(body: StreamResponse['body'], maxBytes: number = this.#maxResponseBytes): Promise<Buffer> {
    return readBounded(body, maxBytes, 'the peer');
  }

  /** Closes the connections this client opened (not an injected dispatcher's). */
  async close(): Promise<void> {
    if (this.#owned) await this.#transport.close();
  }

  async #send(req: HttpRequest, url: URL, signal: AbortSignal | undefined, attempts: { made: number }): Promise<HttpResponse> {
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...req.headers };
    let body = req.body;
    if (req.json !== undefined) {
      body = JSON.stringify(req.json);
      headers['content-type'] = 'application/json';
    }
    const repeatable = req.retry !== false && this.#policy.maxAttempts > 1 && isRepeatable(req.method, headers, req.idempotent);
    const once = (dispatcher: Dispatcher, payload: string | Uint8Array | Readable | undefined): Promise<HttpResponse> =>
      this.#once(dispatcher, req, url, headers, payload, signal);
    if (!repeatable) {
      attempts.made = 1;
      return once(this.#transport, typeof body === 'function' ? body() : body);
    }
    if (typeof body === 'function') return this.#sendReplaying(req, url, signal, attempts, body, once);
    // RetryAgent repeats the request on the same transport; this policy decides whether and when.
    const retrying = new RetryAgent(this.#transport, {
      throwOnError: false, // when the retries are spent, the last answer goes to the caller, body and all
      retry: (error, { state }, callback) => {
        attempts.made = state.counter;
        const status = (error as { code?: unknown; statusCode?: unknown }).code === 'UND_ERR_REQ_RETRY' ? (error as { statusCode?: unknown }).statusCode : undefined;
        const retryAfter = (error as { headers?: ResponseHeaders }).headers?.['retry-after'];
        const waitMs = this.#plan(req, url, state.counter, typeof status === 'number' ? status : undefined, error, retryAfter, signal);
        if (waitMs === undefined) {
          callback(error);
          return;
        }
        this.#sleep(waitMs, signal).then(
          () => {
            callback(null);
          },
          (reason: unknown) => {
            // Aborted while waiting. After an answer, the abort already reached the paused response;
            // after a network error there is nothing in flight, so the abort ends the request here.
            if (typeof status !== 'number') callback(reason instanceof Error ? reason : error);
          },
        );
      },
    });
    return once(retrying, body);
  }

  /** The retry policy for a body that must be made again for each attempt (RetryAgent cannot replay a stream). */
  async #sendReplaying(
    req: HttpRequest,
    url: URL,
    signal: AbortSignal | undefined,
    attempts: { made: number },
    makeBody: () => Readable,
    once: (dispatcher: Dispatcher, payload: Readable) => Promise<HttpResponse>,
  ): Promise<HttpResponse> {
    for (;;) {
      attempts.made += 1;
      let response: HttpResponse | undefined;
      let failure: unknown;
      try {
        response = await once(this.#transport, makeBody());
      } catch (error) {
        if (signal?.aborted === true || error instanceof HttpError) throw error;
        failure = error;
      }
      const waitMs = this.#plan(req, url, attempts.made, response?.status, failure, response?.headers['retry-after'], signal);
      if (waitMs === undefined) {
        if (response === undefined) throw failure;
        return response;
      }
      await this.#sleep(waitMs, signal);
    }
  }

  /** ms to wait before the next attempt, or undefined to stop here (the policy of retry-policy.ts). */
  #plan(req: HttpRequest, url: URL, attempt: number, status: number | undefined, error: unknown, retryAfter: string | string[] | undefined, signal: AbortSignal | undefined): number | undefined {
    if (signal?.aborted === true || attempt >= this.#policy.maxAttempts) return undefined;
    if (status !== undefined ? !isRetryableStatus(status) : !isNetworkError(error)) return undefined;
    const waitMs = retryDelay(this.#policy, attempt - 1, status === undefined ? undefined : retryAfter, this.#random);
    this.#onRetry?.({ method: req.method, url: redactUrl(url), attempt, status, error: status === undefined ? error : undefined, waitMs });
    return waitMs;
  }

  async #once(dispatcher: Dispatcher, req: HttpRequest, url: URL, headers: Record<string, string>, body: string | Uint8Array | Readable | undefined, signal: AbortSignal | undefined): Promise<HttpResponse> {
    const response = await undiciRequest(url, {
      dispatcher,
      method: req.method,
      headers,
      ...(body === undefined ? {} : { body }),
      ...(signal === undefined ? {} : { signal }),
      headersTimeout: req.timeoutMs ?? this.#timeouts.headersMs,
      bodyTimeout: req.timeoutMs ?? this.#timeouts.bodyMs,
    });
    const bytes = await readBounded(response.body, req.maxBytes ?? this.#maxResponseBytes, redactUrl(url));
    return { status: response.statusCode, headers: response.headers, body: bytes };
  }
}

// What Node's TLS says when the peer's certificate is not one it trusts (or not for this name).
const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** True when a network error's code says the peer's TLS certificate is not trusted. */
export function isTlsTrustError(code: unknown): boolean {
  return typeof code === 'string' && TLS_TRUST_CODES.has(code);
}

/** The advice for a request that got no answer, by the error's code. */
export function whatToCheck(code: unknown): string {
  if (isTlsTrustError(code)) {
    return code === 'ERR_TLS_CERT_ALTNAME_INVALID'
      ? "The server's TLS certificate is not issued for this host name: use the name (or IP address) the certificate names."
      : "The server's TLS certificate is not trusted (expired, or signed by a CA this machine does not know). For a private CA, point NODE_EXTRA_CA_CERTS at its PEM file.";
  }
  return 'Check the network, the proxy (HTTPS_PROXY/NO_PROXY) and the URL.';
}
