import { HttpClient, HttpError, userAgent } from '@drover/http';
import { formatShutdownReason, readAgentHealth } from '@drover/protocol';
import { PACKAGE_VERSION } from '../version.js';

// Push mode (agents without a daemon, e.g. containers under a restart policy): the manager asks the
// agent itself to stop, with the CIRIS shutdown call, and watches its health route for the new
// version. What each answer means for the rollout is decided by the engine; this only speaks HTTP.

export const SHUTDOWN_REASON_MAX_CHARS = 4096; // characters: ShutdownRequestSchema's reason maxLength

/**
 * The manager's client for agents' routes (@drover/http): short timeouts, small answers, one
 * attempt. The rollout engine owns retrying (deferral with backoff; the next tick probes again),
 * and a shutdown request is never sent twice by a transport that cannot know whether the first
 * one arrived.
 */
export function createPushHttp(): HttpClient {
  return new HttpClient({
    userAgent: userAgent('drover-manager', PACKAGE_VERSION),
    timeouts: { connectMs: 5_000, headersMs: 10_000, bodyMs: 10_000 },
    retry: { maxAttempts: 1 },
    maxResponseBytes: 64 * 1024, // bytes of an agent's answer the manager reads
  });
}

/**
 * formatShutdownReason's text, within the agent's 4096-character limit: when the changelog makes it
 * longer, changelog lines are dropped from the end (never the version or deployment id), and a last
 * line says how many were left out.
 */
export function shutdownReason(input: { version: string; commitSha?: string | undefined; deploymentId: string; changelog?: string | undefined }): string {
  const full = formatShutdownReason(input);
  if (full.length <= SHUTDOWN_REASON_MAX_CHARS) return full;
  const lines = (input.changelog ?? '').split(/\r?\n/).filter((line) => line.trim() !== '');
  for (let keep = lines.length - 1; keep >= 0; keep--) {
    const changelog = [...lines.slice(0, keep), `(${lines.length - keep} more changes not shown)`].join('\n');
    const text = formatShutdownReason({ ...input, changelog });
    if (text.length <= SHUTDOWN_REASON_MAX_CHARS) return text;
  }
  return formatShutdownReason({ ...input, changelog: undefined }).slice(0, SHUTDOWN_REASON_MAX_CHARS);
}

export type ShutdownAnswer =
  | { kind: 'accepted' }
  | { kind: 'busy'; retryAfterSeconds: number | undefined; detail: string }
  | { kind: 'unauthorized' }
  | { kind: 'refused'; status: number; detail: string }
  | { kind: 'unreachable'; detail: string };

function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + path;
}

const DETAIL_MAX_CHARS = 200;

/**
 * What an agent's refusal says, for the target's message: drover's `error.code`, else the agent's
 * own words in FastAPI's `detail` (the real CIRIS agent's errors; a validation error's first
 * `msg`), quoted, bounded, control characters as spaces; `none` when it says neither.
 */
export function refusalDetailOf(body: unknown): string {
  const answer = body as { error?: { code?: unknown }; detail?: unknown } | undefined;
  const code = answer?.error?.code;
  if (typeof code === 'string') return code.slice(0, 64);
  const detail = answer?.detail;
  const text = typeof detail === 'string' ? detail : Array.isArray(detail) ? (detail[0] as { msg?: unknown } | undefined)?.msg : undefined;
  if (typeof text !== 'string' || text.trim() === '') return 'none';
  // eslint-disable-next-line no-control-regex -- the agent's text goes into messages and events: no control characters
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').trim();
  return JSON.stringify(clean.length > DETAIL_MAX_CHARS ? `${clean.slice(0, DETAIL_MAX_CHARS)}...` : clean);
}

/** What went wrong on the way, for the target's message: the network's code (ECONNREFUSED, ...). */
function failureOf(error: unknown): string {
  const cause = error instanceof HttpError ? error.cause : error;
  const code = (cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : error instanceof Error ? error.name : 'error';
}

/** POST /v1/system/shutdown with the agent's service token. */
export async function requestShutdown(http: HttpClient, pushUrl: string, serviceToken: string, reason: string): Promise<ShutdownAnswer> {
  let res;
  try {
    res = await http.json({
      method: 'POST',
      url: joinUrl(pushUrl, '/v1/system/shutdown'),
      headers: { authorization: `Bearer service:${serviceToken}` },
      json: { reason, force: false, confirm: true },
    });
  } catch (error) {
    return { kind: 'unreachable', detail: failureOf(error) };
  }
  // 409: a shutdown is already under way (e.g. our own earlier call before a manager restart): that is the outcome we asked for.
  if (res.status === 200 || res.status === 409) return { kind: 'accepted' };
  if (res.status === 503) {
    const header = res.headers['retry-after'];
    const seconds = Number(Array.isArray(header) ? header[0] : header);
    return { kind: 'busy', retryAfterSeconds: Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined, detail: refusalDetailOf(res.body) };
  }
  if (res.status === 401) return { kind: 'unauthorized' };
  return { kind: 'refused', status: res.status, detail: refusalDetailOf(res.body) };
}

export interface AgentHealthProbe {
  /** drover's status (readAgentHealth): `healthy` only when ready for work; `unknown` for an answer in neither form. */
  status: string;
  version: string | undefined;
}

/**
 * GET /v1/system/health; undefined when the agent does not answer (it is restarting). Read in
 * either form, drover's SDK's flat answer or the real CIRIS agent's envelope (decision 0035).
 */
export async function probeHealth(http: HttpClient, pushUrl: string): Promise<AgentHealthProbe | undefined> {
  try {
    const res = await http.json({ method: 'GET', url: joinUrl(pushUrl, '/v1/system/health') });
    if (res.status !== 200 || typeof res.body !== 'object' || res.body === null) return undefined;
    const reading = readAgentHealth(res.body);
    if (reading !== undefined) return { status: reading.status, version: reading.version };
    const body = res.body as { version?: unknown; data?: { version?: unknown } };
    const version = typeof body.version === 'string' ? body.version : typeof body.data?.version === 'string' ? body.data.version : undefined;
    return { status: 'unknown', version };
  } catch {
    return undefined;
  }
}
