import { hostname } from 'node:os';
import { EnrollResponseSchema, Ed25519PublicKey, schemaProblems } from '@drover/protocol';
import { describeProblems } from '@drover/protocol/internal';
import type { EnrollRequest, Inventory, ManagerKey } from '@drover/protocol';
import { endpoint, parseRetryAfter } from '@drover/http';
import type { HttpClient, JsonResponse } from '@drover/http';
import { DaemonError } from '../errors.js';
import { managerCallError } from '../http-clients.js';
import type { Logger } from '../logger.js';
import { boundedBackoff, sleep } from '../timing.js';
import type { Credentials } from './credentials.js';

// Enrollment: the host presents a one-time enrollment token and its machine id, and receives its
// agent id, a credential, the agent's service token and the manager's nonce-signing keys. The
// manager key is pinned from the config; trust on first use only when the config says so.

/** What {@link enroll} sends and checks: the manager, the enrollment token, the pinned key (or TOFU). */
export interface EnrollInput {
  http: HttpClient;
  managerUrl: string;
  enrollmentToken: string;
  /** The pinned manager key (base64, base64url, hex or PEM). */
  pinnedKey: string | undefined;
  tofu: boolean;
  machineId: string;
  platform: string;
  agentVersion: string;
  daemonVersion: string;
  inventory: () => Promise<Inventory>;
  logger: Logger;
  signal?: AbortSignal;
  /**
   * Send it again, with backoff and for as long as it takes, while the manager provably did not take
   * it (`droverd run`: a host provisioned before its manager is up waits for it; see
   * {@link notTakenDelay}). Off: one attempt (`droverd enroll`, an operator at the terminal).
   */
  untilTaken?: boolean;
  /** The waits between attempts (tests pass a fast one). */
  wait?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

// Failures of the connection itself: the request never left this host, so no seat was spent.
const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'UND_ERR_CONNECT_TIMEOUT']);
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 30_000;

function neverSent(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NEVER_SENT_CODES.has(code)) return code;
  }
  return undefined;
}

/**
 * How long to wait before sending an enrollment again, or undefined when it must not be sent again.
 * Decision 0006 sends an enrollment once: a second one spends another seat and revokes the credential
 * the first issued. Two failures say the manager did not take it, so sending again is safe: the
 * connection was never made (refused, no route, no name, connect timeout), or the manager answered
 * 503 OVERLOADED, shed before any handler ran (decision 0050).
 */
export function notTakenDelay(attempt: number, response: JsonResponse | undefined, failure: unknown, random: () => number = Math.random): { ms: number; why: string } | undefined {
  const backoff = boundedBackoff(attempt - 1, RETRY_BASE_MS, RETRY_MAX_MS, random);
  if (response === undefined) {
    const code = neverSent(failure);
    return code === undefined ? undefined : { ms: backoff, why: code };
  }
  const code = (response.body as { error?: { code?: unknown } } | undefined)?.error?.code;
  if (response.status !== 503 || code !== 'OVERLOADED') return undefined;
  const retryAfter = parseRetryAfter(response.headers['retry-after']);
  return { ms: Math.max(backoff, Math.min(retryAfter ?? 0, RETRY_MAX_MS * 2)), why: 'OVERLOADED' };
}

/** This host's name as the wire allows it: printable ASCII without spaces, at most 253 characters. */
export function wireHostname(name: string = hostname()): string {
  const cleaned = name.replace(/[^\x21-\x7E]/g, '').slice(0, 253);
  return cleaned === '' ? 'unknown' : cleaned;
}

/** The manager key a config pins, parsed; throws MANAGER_KEY_NOT_PINNED when there is none and TOFU is off. */
export function pinnedManagerKey(pinned: string | undefined, tofu: boolean): Ed25519PublicKey | undefined {
  if (pinned === undefined) {
    // key substitution: without a pinned key, whoever answers at the manager URL could sign nonces.
    if (!tofu) {
      throw new DaemonError(
        'MANAGER_KEY_NOT_PINNED',
        'No manager key is pinned. Pass --manager-key (the manager\'s nonce-signing public key) or set manager.key in droverd.json; or, knowingly, --tofu (manager.tofu: true) to trust the key the manager presents.',
      );
    }
    return undefined;
  }
  try {
    return Ed25519PublicKey.from(pinned);
  } catch (error) {
    throw new DaemonError('CONFIG_INVALID', 'The pinned manager key is not an Ed25519 public key (base64, hex or PEM).', { cause: error });
  }
}

/** Enrolls this host; returns the credentials to store (0600). */
export async function enroll(input: EnrollInput): Promise<Credentials> {
  const pinned = pinnedManagerKey(input.pinnedKey, input.tofu);
  const body: EnrollRequest = {
    enrollmentToken: input.enrollmentToken,
    machineId: input.machineId,
    hostname: wireHostname(),
    platform: input.platform,
    arch: process.arch,
    agentVersion: input.agentVersion,
    daemonVersion: input.daemonVersion,
    inventory: await input.inventory(),
  };
  const url = endpoint(input.managerUrl, '/v1/agents/enroll');
  // Sent once (decision 0006), or again only while the manager did not take it (untilTaken, decision 0050).
  const log = input.logger.child({ component: 'drover:daemon:enroll' });
  const wait = input.wait ?? sleep;
  let response: JsonResponse;
  for (let attempt = 1; ; attempt++) {
    let answer: JsonResponse | undefined;
    let failure: unknown;
    try {
      answer = await input.http.json({ method: 'POST', url, headers: { 'x-machine-id': input.machineId }, json: body, ...(input.signal === undefined ? {} : { signal: input.signal }) });
    } catch (error) {
      failure = managerCallError(error);
    }
    const again = input.untilTaken === true && input.signal?.aborted !== true ? notTakenDelay(attempt, answer, failure) : undefined;
    if (again === undefined) {
      if (answer === undefined) throw failure;
      response = answer;
      break;
    }
    log.warn(
      { event: 'enroll.retry', attempt, reason: again.why, waitMs: again.ms, manager: url.origin },
      `The manager did not take the enrollment (${again.why}); nothing was spent. Trying again in ${Math.ceil(again.ms / 1000)} s.`,
    );
    await wait(again.ms, input.signal);
  }
  if (response.status !== 200) {
    const error = (response.body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const code = typeof error?.code === 'string' ? error.code.slice(0, 64) : `HTTP_${response.status}`;
    const message = typeof error?.message === 'string' ? error.message.slice(0, 500) : '';
    throw new DaemonError('ENROLLMENT_REFUSED', `The manager refused the enrollment (HTTP ${response.status}, ${code}${message === '' ? '' : `: ${message}`}). Check the enrollment token (seats, expiry) and the manager URL.`);
  }
  const problems = schemaProblems(EnrollResponseSchema, response.body);
  if (problems.length > 0) throw new DaemonError('RESPONSE_INVALID', `The manager's enrollment answer is malformed (${describeProblems(problems)}).`);
  const answer = response.body as { agentId: string; credential: string; serviceToken: string; managerKeys: ManagerKey[]; checkinIntervalSeconds: number };

  let managerKeys: ManagerKey[];
  if (pinned !== undefined) {
    // key substitution: the manager must present the pinned key; nonces will be checked against it alone.
    const presented = answer.managerKeys.find((key) => key.keyid === pinned.keyid);
    if (presented === undefined || Ed25519PublicKey.from(presented.publicKey).keyid !== pinned.keyid) {
      throw new DaemonError(
        'MANAGER_KEY_MISMATCH',
        `The manager at ${url.origin} does not present the pinned key ${pinned.keyid} (it presents ${answer.managerKeys.map((k) => k.keyid).join(', ')}). Check the manager URL and the pinned key.`,
      );
    }
    managerKeys = [{ keyid: pinned.keyid, publicKey: pinned.toBase64() }];
  } else {
    managerKeys = answer.managerKeys.map((key) => ({ keyid: Ed25519PublicKey.from(key.publicKey).keyid, publicKey: key.publicKey }));
    log.warn(
      { event: 'enroll.tofu', keyids: managerKeys.map((k) => k.keyid), manager: url.origin },
      'Trusting the manager keys presented at enrollment (tofu: true). Pin the key in droverd.json to remove this trust-on-first-use.',
    );
  }
  return {
    schema: 'drover.credentials/v1',
    managerUrl: input.managerUrl.replace(/\/+$/, ''),
    agentId: answer.agentId,
    credential: answer.credential,
    serviceToken: answer.serviceToken,
    managerKeys,
    trust: pinned === undefined ? 'tofu' : 'pinned',
    machineId: input.machineId,
    checkinIntervalSeconds: answer.checkinIntervalSeconds,
    enrolledAt: new Date().toISOString(),
  };
}
