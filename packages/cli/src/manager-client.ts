import type { Readable } from 'node:stream';
import { HttpClient, HttpError, isTlsTrustError, userAgent, whatToCheck } from '@drover/http';
import type { HttpMethod } from '@drover/http';
import { CliError, RemoteError } from './errors.js';
import { PACKAGE_VERSION } from './version.js';

// The CLI's calls to a manager, over @drover/http (which owns undici, the timeouts, the retry
// policy and proxies): the manager's URL prefix, the operator token, and the manager's answers as
// the CLI reports them: a refusal becomes a RemoteError with the manager's own code, anything that
// is not a drover manager's answer a CliError.

export const cliHttpDefaults = {
  connectTimeoutMs: 10_000, // milliseconds to open a connection
  headersTimeoutMs: 30_000, // milliseconds until the response headers arrive
  bodyTimeoutMs: 60_000, // milliseconds of silence allowed while a body streams
  maxAttempts: 4, // attempts of a request the retry policy allows to repeat
  backoffBaseMs: 250, // milliseconds: the first retry waits up to this, doubling each time
  backoffMaxMs: 5_000, // milliseconds: the longest wait between attempts, a Retry-After included
  maxResponseBytes: 16 * 1024 * 1024, // bytes of a response body the CLI reads
} as const;

export const USER_AGENT = userAgent('drover-cli', PACKAGE_VERSION);

/** The HTTP client of the CLI; `sleep` is injectable for tests. */
export function createCliHttp(options: { sleep?: (ms: number, signal?: AbortSignal) => Promise<void> } = {}): HttpClient {
  return new HttpClient({
    userAgent: USER_AGENT,
    timeouts: { connectMs: cliHttpDefaults.connectTimeoutMs, headersMs: cliHttpDefaults.headersTimeoutMs, bodyMs: cliHttpDefaults.bodyTimeoutMs },
    retry: { maxAttempts: cliHttpDefaults.maxAttempts, backoffBaseMs: cliHttpDefaults.backoffBaseMs, backoffMaxMs: cliHttpDefaults.backoffMaxMs, retryAfterMaxMs: cliHttpDefaults.backoffMaxMs },
    maxResponseBytes: cliHttpDefaults.maxResponseBytes,
    ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
  });
}

export interface ManagerClientOptions {
  /** The manager's URL, e.g. https://manager.example:8443 (a path prefix is kept). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` on every request. */
  token?: string | undefined;
  /** The HTTP client (default createCliHttp()); tests inject one. */
  http?: HttpClient;
}

export interface ManagerRequest {
  method: HttpMethod;
  path: string;
  headers?: Record<string, string>;
  /** JSON body (sets Content-Type). */
  json?: unknown;
  /** A raw body: bytes, or a function making a fresh stream for each attempt. */
  body?: Uint8Array | (() => Readable);
  /** False for a request that must be sent once, whatever its method. */
  retry?: boolean;
  /** True for a POST the manager treats as idempotent, so the retry policy may repeat it. */
  idempotent?: boolean;
  /** True when `path` came from the manager (e.g. an upload URL): it already holds any mount prefix. */
  fromOrigin?: boolean;
}

export interface ManagerResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** Control characters (C0, DEL, C1) become spaces: a hostile answer cannot drive the terminal. */
export function printable(text: string): string {
  return Array.from(text, (char) => {
    const code = char.codePointAt(0) ?? 0;
    return code < 0x20 || (code >= 0x7f && code <= 0x9f) ? ' ' : char;
  }).join('');
}

/** The manager's refusal as a RemoteError, when the body is a well-formed drover error. */
function remoteError(text: string, status: number): RemoteError | undefined {
  let detail: { code?: unknown; message?: unknown } | undefined;
  try {
    detail = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  } catch {
    return undefined;
  }
  // The code and message come from the network: only a well-formed code, and no control characters, reach the terminal.
  if (typeof detail?.code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(detail.code) && typeof detail.message === 'string') {
    return new RemoteError(detail.code, printable(detail.message).slice(0, 4096), status);
  }
  return undefined;
}

function cliErrorOf(error: unknown, origin: string): unknown {
  if (!(error instanceof HttpError)) return error;
  if (error.code === 'RESPONSE_TOO_LARGE') return new CliError('HTTP_ERROR', `The answer is larger than ${cliHttpDefaults.maxResponseBytes} bytes; this is not a drover manager answer.`, { cause: error });
  const code = (error.cause as { code?: unknown } | undefined)?.code;
  const advice = isTlsTrustError(code) ? whatToCheck(code) : 'Check the URL and that the manager is running.';
  return new CliError('NETWORK_ERROR', `Failed to reach the manager at ${origin} (${typeof code === 'string' ? code : 'network error'}). ${advice}`, { cause: error });
}

/** A client bound to one manager. */
export class ManagerClient {
  readonly #base: URL;
  readonly #token: string | undefined;
  readonly #http: HttpClient;

  constructor(options: ManagerClientOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch (error) {
      throw new CliError('USAGE_ERROR', `--manager must be a URL such as https://manager.example:8443; got "${options.baseUrl}".`, { cause: error });
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new CliError('USAGE_ERROR', `--manager must be an http(s) URL; got "${options.baseUrl}".`);
    this.#base = base;
    this.#token = options.token;
    this.#http = options.http ?? createCliHttp();
  }

  #url(path: string, fromOrigin: boolean): URL {
    const prefix = fromOrigin ? '' : this.#base.pathname.replace(/\/+$/, '');
    // Only a path: a manager-supplied URL never sends the token to another host.
    if (!path.startsWith('/') || path.startsWith('//')) throw new CliError('HTTP_ERROR', 'The manager named a URL that is not a path on itself; refusing to follow it.');
    return new URL(prefix + path, this.#base.origin);
  }

  #headers(request: ManagerRequest, accept: string): Record<string, string> {
    const headers: Record<string, string> = { accept, ...request.headers };
    if (this.#token !== undefined) headers['authorization'] = `Bearer ${this.#token}`;
    return headers;
  }

  /** Sends a request (retried as @drover/http's policy allows); returns any HTTP answer. */
  async request(request: ManagerRequest): Promise<ManagerResponse> {
    const url = this.#url(request.path, request.fromOrigin === true);
    try {
      const response = await this.#http.request({
        method: request.method,
        url,
        headers: this.#headers(request, 'application/json'),
        ...(request.json === undefined ? {} : { json: request.json }),
        ...(request.body === undefined ? {} : { body: request.body }),
        ...(request.retry === undefined ? {} : { retry: request.retry }),
        ...(request.idempotent === undefined ? {} : { idempotent: request.idempotent }),
      });
      return { status: response.status, headers: response.headers, text: response.body.toString('utf8') };
    } catch (error) {
      throw cliErrorOf(error, url.origin);
    }
  }

  /** Sends a request and parses a 2xx JSON answer; a refusal becomes a RemoteError with the manager's code. */
  async json(request: ManagerRequest): Promise<unknown> {
    const response = await this.request(request);
    if (response.status >= 200 && response.status < 300) {
      try {
        return response.text === '' ? undefined : JSON.parse(response.text);
      } catch (error) {
        throw new CliError('HTTP_ERROR', `The manager answered ${response.status} with a body that is not JSON. Check that --manager points at a drover manager.`, { cause: error });
      }
    }
    const refusal = remoteError(response.text, response.status);
    if (refusal !== undefined) throw refusal;
    throw new CliError('HTTP_ERROR', `The manager answered ${response.status} without a drover error body. Check that --manager points at a drover manager.`);
  }

  /**
   * Opens a long-lived answer (server-sent events) and hands each piece of text to `onText` until
   * the manager ends it, `onText` returns false, or `signal` aborts. Never retried; a refusal
   * becomes a RemoteError like json()'s.
   */
  async stream(request: ManagerRequest, onText: (text: string) => boolean, signal?: AbortSignal): Promise<void> {
    const url = this.#url(request.path, false);
    let answer;
    try {
      answer = await this.#http.stream({ url, headers: this.#headers(request, 'text/event-stream'), ...(signal === undefined ? {} : { signal }) });
    } catch (error) {
      throw cliErrorOf(error, url.origin);
    }
    if (answer.status < 200 || answer.status >= 300) {
      let text = '';
      try {
        text = (await this.#http.read(answer.body)).toString('utf8');
      } catch (error) {
        throw cliErrorOf(error, url.origin);
      }
      throw remoteError(text, answer.status) ?? new CliError('HTTP_ERROR', `The manager answered ${answer.status} to the event stream. Check that --manager points at a drover manager.`);
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
}
