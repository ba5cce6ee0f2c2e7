import { formatShutdownReason } from '@drover/protocol';
import type { OutboundHttp } from '../outbound-http.js';

// Push mode (agents without a daemon, e.g. containers under a restart policy): the manager asks the
// agent itself to stop, with the CIRIS shutdown call, and watches its health route for the new
// version. What each answer means for the rollout is decided by the engine; this only speaks HTTP.

export const SHUTDOWN_REASON_MAX_CHARS = 4096; // characters: ShutdownRequestSchema's reason maxLength

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

function errorCodeOf(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown }; detail?: unknown };
    if (typeof body.error?.code === 'string') return body.error.code.slice(0, 64);
  } catch {
    // not JSON: no code to report
  }
  return 'none';
}

/** POST /v1/system/shutdown with the agent's service token. */
export async function requestShutdown(http: OutboundHttp, pushUrl: string, serviceToken: string, reason: string): Promise<ShutdownAnswer> {
  let res;
  try {
    res = await http.request({
      method: 'POST',
      url: joinUrl(pushUrl, '/v1/system/shutdown'),
      headers: { authorization: `Bearer service:${serviceToken}` },
      json: { reason, force: false, confirm: true },
    });
  } catch (error) {
    return { kind: 'unreachable', detail: (error as { code?: string }).code ?? (error instanceof Error ? error.name : 'error') };
  }
  // 409: a shutdown is already under way (e.g. our own earlier call before a manager restart): that is the outcome we asked for.
  if (res.status === 200 || res.status === 409) return { kind: 'accepted' };
  if (res.status === 503) {
    const header = res.headers['retry-after'];
    const seconds = Number(Array.isArray(header) ? header[0] : header);
    return { kind: 'busy', retryAfterSeconds: Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined, detail: errorCodeOf(res.text) };
  }
  if (res.status === 401) return { kind: 'unauthorized' };
  return { kind: 'refused', status: res.status, detail: errorCodeOf(res.text) };
}

export interface AgentHealthProbe {
  status: string;
  version: string | undefined;
}

/** GET /v1/system/health; undefined when the agent does not answer (it is restarting). */
export async function probeHealth(http: OutboundHttp, pushUrl: string): Promise<AgentHealthProbe | undefined> {
  try {
    const res = await http.request({ method: 'GET', url: joinUrl(pushUrl, '/v1/system/health') });
    if (res.status !== 200) return undefined;
    const body = JSON.parse(res.text) as { status?: unknown; version?: unknown };
    return { status: typeof body.status === 'string' ? body.status : 'unknown', version: typeof body.version === 'string' ? body.version : undefined };
  } catch {
    return undefined;
  }
}
