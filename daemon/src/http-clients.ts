import { HttpClient, HttpError, userAgent } from '@drover/http';
import type { Dispatcher } from 'undici';
import { limits } from './config.js';
import { DaemonError } from './errors.js';
import type { Logger } from './logger.js';

// droverd's two HTTP clients, both @drover/http with droverd's limits (config.ts): one for the
// manager (API and downloads: through HTTPS_PROXY/NO_PROXY, retried by the HTTP layer's policy) and
// one for the agent on loopback (never proxied, one attempt: the update machine decides what a busy
// or silent agent means).

const timeouts = { connectMs: limits.httpConnectTimeoutMs, headersMs: limits.httpHeadersTimeoutMs, bodyMs: limits.httpBodyTimeoutMs };

/** The client for the manager. `dispatcher`: an undici dispatcher tests inject (retries still apply). */
export function createManagerHttp(options: { daemonVersion: string; logger: Logger; dispatcher?: Dispatcher | undefined }): HttpClient {
  const logger = options.logger.child({ component: 'drover:daemon:http' });
  return new HttpClient({
    userAgent: userAgent('droverd', options.daemonVersion),
    timeouts,
    retry: { maxAttempts: limits.httpMaxAttempts, backoffBaseMs: limits.httpBackoffBaseMs, backoffMaxMs: limits.httpBackoffMaxMs, retryAfterMaxMs: limits.httpRetryAfterMaxMs },
    maxResponseBytes: limits.jsonResponseMaxBytes,
    onRetry: (event) => {
      logger.debug({ event: 'http.retry', method: event.method, url: event.url, attempt: event.attempt, status: event.status, err: event.error, waitMs: event.waitMs }, 'Retrying an HTTP request');
    },
    ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
  });
}

/** The client for the agent droverd supervises, on loopback. */
export function createAgentHttp(options: { daemonVersion: string }): HttpClient {
  return new HttpClient({ userAgent: userAgent('droverd', options.daemonVersion), proxy: false, timeouts, retry: { maxAttempts: 1 }, maxResponseBytes: limits.agentResponseMaxBytes });
}

/**
 * A failure of the HTTP layer on a call to the manager, as droverd reports it: no answer is
 * MANAGER_UNREACHABLE, an oversized answer RESPONSE_TOO_LARGE (docs/errors.md); the HttpError is the cause.
 */
export function managerCallError(error: unknown): unknown {
  if (!(error instanceof HttpError)) return error;
  if (error.code === 'RESPONSE_TOO_LARGE') return new DaemonError('RESPONSE_TOO_LARGE', error.message, { cause: error });
  if (error.code === 'URL_INVALID') return new DaemonError('CONFIG_INVALID', `The manager URL is not usable: ${error.message}`, { cause: error });
  return new DaemonError('MANAGER_UNREACHABLE', error.message, { cause: error });
}
