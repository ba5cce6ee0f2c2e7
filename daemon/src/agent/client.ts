import { readAgentHealth, tokenId } from '@drover/protocol';
import type { AgentHealthReading } from '@drover/protocol';
import { header, parseRetryAfter } from '@drover/http';
import type { HttpClient } from '@drover/http';
import { limits } from '../config.js';

// droverd's calls to the agent it supervises, on loopback: the health route, and the shutdown
// route it drains the agent through before a swap. Authorised with the service token, which is
// never logged (its id is).

/** How the agent answered a shutdown request: accepted, already stopping, busy (with Retry-After), refused, or unreachable. */
export type ShutdownAnswer =
  | { kind: 'accepted' }
  | { kind: 'already' }
  | { kind: 'busy'; retryAfterMs: number | undefined; busyWith: string[] }
  | { kind: 'unreachable'; error: unknown }
  | { kind: 'refused'; status: number; code: string | undefined };

/** How the agent answered its health route: its report, unreachable, or an answer that is not one. */
export type HealthAnswer = { kind: 'ok'; health: AgentHealthReading } | { kind: 'unreachable'; error: unknown } | { kind: 'invalid'; status: number };

/** Calls the supervised agent's health and shutdown routes with its service token, through the agent's HTTP client. */
export class AgentClient {
  readonly #http: HttpClient;
  readonly #token: string;

  constructor(http: HttpClient, serviceToken: string) {
    this.#http = http;
    this.#token = serviceToken;
  }

  /** The service token's id, for logs. */
  get tokenId(): string {
    return tokenId(this.#token);
  }

  async health(baseUrl: string, signal?: AbortSignal): Promise<HealthAnswer> {
    try {
      const response = await this.#http.json({
        method: 'GET',
        url: new URL('/v1/system/health', baseUrl),
        headers: { authorization: `Bearer service:${this.#token}` },
        retry: false,
        timeoutMs: limits.agentRequestTimeoutMs,
        ...(signal === undefined ? {} : { signal }),
      });
      // drover's SDK answers flat, the real CIRIS agent in its envelope: both read (decision 0035).
      const health = response.status === 200 ? readAgentHealth(response.body) : undefined;
      if (health !== undefined) return { kind: 'ok', health };
      return { kind: 'invalid', status: response.status };
    } catch (error) {
      if (signal?.aborted === true) throw error;
      return { kind: 'unreachable', error };
    }
  }

  async shutdown(baseUrl: string, input: { reason: string; force: boolean }, signal?: AbortSignal): Promise<ShutdownAnswer> {
    let response;
    try {
      response = await this.#http.json({
        method: 'POST',
        url: new URL('/v1/system/shutdown', baseUrl),
        headers: { authorization: `Bearer service:${this.#token}` },
        json: { reason: input.reason.slice(0, 4096), force: input.force, confirm: true },
        retry: false,
        timeoutMs: limits.agentRequestTimeoutMs,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (error) {
      if (signal?.aborted === true) throw error;
      return { kind: 'unreachable', error };
    }
    if (response.status === 200) return { kind: 'accepted' };
    if (response.status === 409) return { kind: 'already' };
    const code = errorCodeOf(response.body);
    if (response.status === 503) {
      const busyWith = busyWithOf(response.body);
      return { kind: 'busy', retryAfterMs: parseRetryAfter(header(response.headers, 'retry-after')), busyWith };
    }
    return { kind: 'refused', status: response.status, code };
  }
}

function errorCodeOf(body: unknown): string | undefined {
  const error = (body as { error?: { code?: unknown } } | undefined)?.error;
  return typeof error?.code === 'string' ? error.code.slice(0, 64) : undefined;
}

function busyWithOf(body: unknown): string[] {
  const list = (body as { error?: { busy_with?: unknown } } | undefined)?.error?.busy_with;
  return Array.isArray(list) ? list.filter((item): item is string => typeof item === 'string').slice(0, 64).map((item) => item.slice(0, 256)) : [];
}
