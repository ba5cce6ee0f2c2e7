// A fleet reconnecting at once: `connections` hosts, each on its own connection, check in at the same
// moment and keep at it until the manager answers 200, the way droverd does: each attempt bounded by
// droverd's timeouts, a 503 or 429 waited out with @drover/http's own retryDelay (the Retry-After,
// spread by up to half of it), a network failure backed off. What every attempt got is counted: the
// load test asserts on it (test/manager/overload.test.ts) and bench/checkin.ts prints it.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'undici';
import { retryDelay } from '@drover/http';

/** An enrolled agent a storm host checks in as. */
export interface StormAgent {
  agentId: string;
  credential: string;
  machineId: string;
}

export interface StormOptions {
  /** The manager's origin, e.g. http://127.0.0.1:8443. */
  url: string;
  /** Check in as these agents, host i as agents[i % agents.length]. */
  agents: readonly StormAgent[];
  /** Hosts, each with its own connection, all starting at once. */
  connections: number;
  /** ms one attempt may take, connect included (droverd: 10 s to connect, then 30 s). */
  attemptTimeoutMs: number;
  /** ms after which hosts still without a 200 give up. */
  deadlineMs: number;
  /** How long droverd waits at most on a Retry-After (ms). */
  retryAfterMaxMs?: number;
}

export interface StormResult {
  connections: number;
  /** Hosts that got a 200 before the deadline. */
  checkedIn: number;
  /** ms from the start until the last host got its 200 (or the deadline). */
  allCheckedInMs: number;
  attempts: number;
  ok: number;
  /** 503 OVERLOADED answers, and how many of them lacked a Retry-After. */
  overloaded: number;
  overloadedWithoutRetryAfter: number;
  /** Attempts that ran out of time (connect, headers or body). */
  timeouts: number;
  /** Other answers and failures, by status or error code. */
  other: Record<string, number>;
  /** ms per answered attempt, 200 and 503 alike. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

const body = JSON.stringify({ state: { agentVersion: '1.0.0', daemonVersion: '0.5.0' }, health: { status: 'healthy', version: '1.0.0', busy: false }, acks: [], results: [] });

/** Runs the storm; resolves when every host checked in or the deadline passed. */
export async function reconnectStorm(options: StormOptions): Promise<StormResult> {
  const start = performance.now();
  const deadline = start + options.deadlineMs;
  const policy = { maxAttempts: 1, backoffBaseMs: 1_000, backoffMaxMs: 30_000, retryAfterMaxMs: options.retryAfterMaxMs ?? 60_000 };
  const latencies: number[] = [];
  const result = { attempts: 0, ok: 0, overloaded: 0, overloadedWithoutRetryAfter: 0, timeouts: 0, other: {} as Record<string, number> };
  const count = (key: string): void => {
    result.other[key] = (result.other[key] ?? 0) + 1;
  };
  let checkedIn = 0;
  let lastCheckIn = 0;

  async function host(index: number): Promise<void> {
    const agent = options.agents[index % options.agents.length];
    if (agent === undefined) throw new Error('no agents to check in as');
    const client = new Client(options.url, {
      connectTimeout: options.attemptTimeoutMs,
      headersTimeout: options.attemptTimeoutMs,
      bodyTimeout: options.attemptTimeoutMs,
      pipelining: 1,
    });
    let failures = 0;
    try {
      while (performance.now() < deadline) {
        result.attempts += 1;
        const sent = performance.now();
        let retryAfter: string | string[] | undefined;
        try {
          const response = await client.request({
            method: 'POST',
            path: `/v1/agents/${agent.agentId}/checkin`,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId, 'x-agent-version': '1.0.0', 'x-daemon-version': '0.5.0' },
            body,
          });
          await response.body.text();
          latencies.push(performance.now() - sent);
          if (response.statusCode === 200) {
            result.ok += 1;
            checkedIn += 1;
            lastCheckIn = performance.now() - start;
            return;
          }
          if (response.statusCode === 503) {
            result.overloaded += 1;
            retryAfter = response.headers['retry-after'];
            if (retryAfter === undefined) result.overloadedWithoutRetryAfter += 1;
          } else {
            count(`HTTP ${response.statusCode}`);
          }
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          if (typeof code === 'string' && TIMEOUT_CODES.has(code)) result.timeouts += 1;
          else count(typeof code === 'string' ? code : String(error));
        }
        failures += 1;
        await sleep(Math.min(retryDelay(policy, failures, retryAfter), Math.max(0, deadline - performance.now())));
      }
    } finally {
      await client.destroy().catch(() => undefined);
    }
  }

  await Promise.all(Array.from({ length: options.connections }, (_, index) => host(index)));
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return {
    connections: options.connections,
    checkedIn,
    allCheckedInMs: Math.round(checkedIn === options.connections ? lastCheckIn : options.deadlineMs),
    ...result,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: Math.round(latencies.at(-1) ?? 0),
  };
}
