import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { readAgentHealth } from '@drover/protocol';
import { HttpClient, parseRetryAfter } from '@drover/http';
import type { HttpResponse } from '@drover/http';
import { USER_AGENT } from '../manager-client.js';
import { DUDECT_THRESHOLD, dudect } from './dudect.js';

// The rules of `drover agent-check` (issue 15): what drover needs from an agent, in any language,
// checked from the outside over HTTP. Each rule yields PASS, FAIL or SKIP with the reason; they run
// in an order where a broken rule harms the later ones as little as possible (the token refusals
// before anything that could stop the agent, the shutdown last).

export type RuleName = 'health-version' | 'auth-missing' | 'auth-malformed' | 'auth-wrong' | 'auth-timing' | 'busy-503' | 'shutdown-200' | 'shutdown-exits';
export type Verdict = 'PASS' | 'FAIL' | 'SKIP';

export interface RuleResult {
  rule: RuleName;
  verdict: Verdict;
  why: string;
  /** Figures behind the verdict (the timing test's |t| and samples, the drain time measured...). */
  details?: Record<string, unknown>;
}

export interface AgentCheckOptions {
  /** The agent's base URL, e.g. http://127.0.0.1:8080. */
  url: URL;
  serviceToken: string;
  /** Timed requests for the timing test (both classes together). */
  samples: number;
  /** Seconds the timing test may take at most; it stops there with the samples it has. */
  timingSeconds: number;
  /** A shell command that makes the agent busy (then the busy rule is checked), or undefined (SKIP). */
  busyCommand: string | undefined;
  /** Seconds the agent is allowed to drain after an accepted shutdown before it must have ended. */
  drainSeconds: number;
  /** Seconds to keep asking a busy agent for the shutdown before giving up. */
  busyWaitSeconds: number;
  /** Check everything but the shutdown (the agent keeps running). */
  keepRunning: boolean;
  env: NodeJS.ProcessEnv;
}

const SHUTDOWN = '/v1/system/shutdown';
const HEALTH = '/v1/system/health';
const REQUEST_TIMEOUT_MS = 5_000;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function otherThan(char: string): string {
  for (;;) {
    const candidate = BASE64URL[randomInt(BASE64URL.length)] ?? 'A';
    if (candidate !== char) return candidate;
  }
}

/** The right token with its last character changed: shares everything but the end. */
function sharingPrefix(token: string): string {
  return token.slice(0, -1) + otherThan(token.slice(-1));
}

/** A token of the same length whose first character differs: shares nothing. */
function sharingNothing(token: string): string {
  let random = '';
  while (random.length < token.length) random += randomBytes(48).toString('base64url');
  return otherThan(token[0] ?? 'A') + random.slice(1, token.length);
}

function pass(rule: RuleName, why: string, details?: Record<string, unknown>): RuleResult {
  return { rule, verdict: 'PASS', why, ...(details === undefined ? {} : { details }) };
}
function fail(rule: RuleName, why: string, details?: Record<string, unknown>): RuleResult {
  return { rule, verdict: 'FAIL', why, ...(details === undefined ? {} : { details }) };
}

function describeFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : error instanceof Error ? error.message : String(error);
}

/** Runs the rules against one agent, in order, and returns each rule's result. */
export class AgentCheck {
  readonly #o: AgentCheckOptions;
  readonly #http: HttpClient;

  constructor(options: AgentCheckOptions) {
    this.#o = options;
    // One attempt per request, no proxy (an agent is usually on loopback or the local network).
    this.#http = new HttpClient({ userAgent: USER_AGENT, proxy: false, retry: { maxAttempts: 1 }, timeouts: { connectMs: REQUEST_TIMEOUT_MS, headersMs: REQUEST_TIMEOUT_MS, bodyMs: REQUEST_TIMEOUT_MS }, maxResponseBytes: 64 * 1024 });
  }

  #url(path: string): URL {
    return new URL(this.#o.url.pathname.replace(/\/+$/, '') + path, this.#o.url.origin);
  }

  #shutdown(authorization: string | undefined, reason: string): Promise<HttpResponse> {
    return this.#http.request({
      method: 'POST',
      url: this.#url(SHUTDOWN),
      headers: authorization === undefined ? {} : { authorization },
      json: { reason: `drover agent-check: ${reason}`, confirm: true },
      retry: false,
    });
  }

  async run(): Promise<RuleResult[]> {
    const results: RuleResult[] = [];
    results.push(await this.#healthVersion());
    results.push(await this.#refused('auth-missing', [[undefined, 'no Authorization header']]));
    results.push(
      await this.#refused('auth-malformed', [
        ['Basic ZHJvdmVyOmFnZW50LWNoZWNr', 'Basic credentials'],
        ['Bearer', 'Bearer without a token'],
        ['Bearer service:', 'an empty service token'],
        [`Token service:${this.#o.serviceToken}`, 'the right token under another scheme'],
      ]),
    );
    results.push(
      await this.#refused('auth-wrong', [
        [`Bearer service:${sharingPrefix(this.#o.serviceToken)}`, 'the token with its last character changed'],
        [`Bearer service:${sharingNothing(this.#o.serviceToken)}`, 'a random token of the same length'],
        [`Bearer service:${this.#o.serviceToken}x`, 'the token with a character added'],
      ]),
    );
    results.push(await this.#timing());
    results.push(await this.#busy());
    if (this.#o.keepRunning) {
      results.push({ rule: 'shutdown-200', verdict: 'SKIP', why: '--keep-running: the shutdown was not asked for' });
      results.push({ rule: 'shutdown-exits', verdict: 'SKIP', why: '--keep-running: the shutdown was not asked for' });
      return results;
    }
    const accepted = await this.#shutdownAccepted();
    results.push(accepted);
    results.push(accepted.verdict === 'PASS' ? await this.#ends() : { rule: 'shutdown-exits', verdict: 'SKIP', why: 'no shutdown was accepted' });
    return results;
  }

  // GET /v1/system/health answers 200 with a version, in drover's form or the CIRIS agent's.
  async #healthVersion(): Promise<RuleResult> {
    const rule = 'health-version';
    let res: HttpResponse;
    let withToken = false;
    try {
      res = await this.#http.request({ method: 'GET', url: this.#url(HEALTH), retry: false });
      // An agent may require its token on health too (the SDK's healthRequiresToken): ask again with it.
      if (res.status === 401) {
        withToken = true;
        res = await this.#http.request({ method: 'GET', url: this.#url(HEALTH), headers: { authorization: `Bearer service:${this.#o.serviceToken}` }, retry: false });
      }
    } catch (error) {
      return fail(rule, `GET ${HEALTH} failed (${describeFailure(error)}); is the agent running at ${this.#o.url.origin}?`);
    }
    if (res.status !== 200) return fail(rule, `GET ${HEALTH} answered ${res.status}, not 200${withToken ? ' (with and without the token)' : ''}`);
    let body: unknown;
    try {
      body = JSON.parse(res.body.toString('utf8'));
    } catch {
      return fail(rule, `GET ${HEALTH} answered a body that is not JSON`);
    }
    const reading = readAgentHealth(body);
    if (reading === undefined) {
      const hasVersion = typeof body === 'object' && body !== null && ('version' in body || ('data' in body && typeof body.data === 'object' && body.data !== null && 'version' in body.data));
      return fail(rule, hasVersion ? `GET ${HEALTH} answered in neither drover's form ({status, version, busy?}) nor the CIRIS agent's` : `GET ${HEALTH} reports no version`);
    }
    if (reading.version.trim() === '') return fail(rule, `GET ${HEALTH} reports an empty version`);
    // droverd sends the token on health; the manager's push-mode probe does not, so it would not see this agent's health.
    const note = withToken ? '; it requires the service token, which droverd sends but push mode does not (push mode would not see its health)' : '';
    return pass(rule, `version ${reading.version}, status ${reading.reported}${note}`, { version: reading.version, status: reading.status, requiresToken: withToken });
  }

  // Every listed Authorization is refused with 401 (and nothing else: a 400 or 403 would tell a
  // caller something a refusal should not, and a 200 stops the agent).
  async #refused(rule: RuleName, cases: [string | undefined, string][]): Promise<RuleResult> {
    for (const [authorization, what] of cases) {
      let res: HttpResponse;
      try {
        res = await this.#shutdown(authorization, `${rule} (this request must be refused)`);
      } catch (error) {
        return fail(rule, `${what}: the request failed (${describeFailure(error)})`);
      }
      if (res.status !== 401) return fail(rule, `${what}: answered ${res.status}, not 401${res.status === 200 ? ' (the agent accepted a shutdown it should have refused)' : ''}`);
    }
    return pass(rule, `${cases.length} request(s) refused with 401`);
  }

  // dudect over HTTP: wrong tokens sharing a long prefix with the right one against tokens sharing
  // nothing, interleaved at random; an early-exit comparison refuses the second class faster.
  async #timing(): Promise<RuleResult> {
    const rule = 'auth-timing';
    const token = this.#o.serviceToken;
    const warmup = Math.min(200, Math.ceil(this.#o.samples / 10));
    const total = warmup + this.#o.samples;
    const bits = randomBytes(total);
    const classes = new Uint8Array(total);
    const headers: string[] = [];
    for (let i = 0; i < total; i++) {
      classes[i] = (bits[i] ?? 0) & 1;
      headers.push(`Bearer service:${classes[i] === 0 ? sharingPrefix(token) : sharingNothing(token)}`);
    }
    const times = new Float64Array(this.#o.samples);
    const deadline = Date.now() + this.#o.timingSeconds * 1000;
    let measured = 0;
    for (let i = 0; i < total; i++) {
      if (i >= warmup && Date.now() > deadline) break;
      const start = process.hrtime.bigint();
      let status: number;
      try {
        status = (await this.#shutdown(headers[i], 'auth-timing (this request must be refused)')).status;
      } catch (error) {
        return fail(rule, `a timed request failed (${describeFailure(error)})`);
      }
      const elapsed = Number(process.hrtime.bigint() - start);
      if (status !== 401) return fail(rule, `a wrong token was answered ${status}, not 401`);
      if (i >= warmup) times[measured++] = elapsed;
    }
    if (measured < 20) return fail(rule, `only ${measured} timed request(s) fit in ${this.#o.timingSeconds} s; the agent answers too slowly to tell`);
    const result = dudect(times.subarray(0, measured), classes.subarray(warmup, warmup + measured));
    const t = Math.abs(result.worst.t);
    const [prefixMs, noneMs] = result.tests[0]?.mean.map((ns) => ns / 1e6) ?? [0, 0];
    const details = {
      samples: measured,
      t: Number(Math.min(t, 1e9).toFixed(3)),
      threshold: DUDECT_THRESHOLD,
      crop: result.worst.crop,
      meanMs: { sharingPrefix: Number((prefixMs ?? 0).toFixed(3)), sharingNothing: Number((noneMs ?? 0).toFixed(3)) },
    };
    const summary = `|t| = ${details.t} over ${measured} wrong tokens (dudect, threshold ${DUDECT_THRESHOLD}); mean ${details.meanMs.sharingPrefix} ms with a shared prefix, ${details.meanMs.sharingNothing} ms without`;
    return result.pass ? pass(rule, `no leak found: ${summary}`, details) : fail(rule, `the refusal time depends on how much of the token is right: ${summary}. Compare tokens in constant time (hash both sides, then a constant-time compare)`, details);
  }

  // With the agent made busy by the user's command, a shutdown is refused 503 with Retry-After.
  async #busy(): Promise<RuleResult> {
    const rule = 'busy-503';
    const command = this.#o.busyCommand;
    if (command === undefined) return { rule, verdict: 'SKIP', why: 'pass --busy-command CMD (a command that makes the agent busy) to check it' };
    const exit = await runShell(command, { ...this.#o.env, DROVER_AGENT_URL: this.#o.url.href, DROVER_SERVICE_TOKEN: this.#o.serviceToken });
    if (exit !== 0) return fail(rule, `--busy-command exited ${exit}, so the agent may not be busy; fix the command`);
    let res: HttpResponse;
    try {
      res = await this.#shutdown(`Bearer service:${this.#o.serviceToken}`, 'busy-503 (a busy agent must refuse this with 503)');
    } catch (error) {
      return fail(rule, `the shutdown request failed (${describeFailure(error)})`);
    }
    if (res.status !== 503) return fail(rule, `a busy agent answered ${res.status}, not 503${res.status === 200 ? ' (it accepted the shutdown while busy)' : ''}`);
    const retryAfter = res.headers['retry-after'];
    if (parseRetryAfter(retryAfter) === undefined) return fail(rule, `503 without a valid Retry-After header (seconds or an HTTP date)${retryAfter === undefined ? '' : `: got "${String(retryAfter).slice(0, 40)}"`}`);
    return pass(rule, `503 with Retry-After: ${String(retryAfter)}`);
  }

  // The shutdown with the right token is accepted with 200 (a busy agent is asked again as it says).
  async #shutdownAccepted(): Promise<RuleResult> {
    const rule = 'shutdown-200';
    const deadline = Date.now() + this.#o.busyWaitSeconds * 1000;
    for (;;) {
      let res: HttpResponse;
      try {
        res = await this.#shutdown(`Bearer service:${this.#o.serviceToken}`, 'shutdown-200 (accept this and exit)');
      } catch (error) {
        return fail(rule, `the shutdown request failed (${describeFailure(error)})`);
      }
      if (res.status === 200) return pass(rule, 'the shutdown with the right token was accepted (200)');
      if (res.status === 503 && Date.now() < deadline) {
        await sleep(Math.min(parseRetryAfter(res.headers['retry-after']) ?? 1000, 5000, Math.max(0, deadline - Date.now())));
        continue;
      }
      const hint = res.status === 401 ? ' (is --token-file the agent\'s service token?)' : res.status === 503 ? ` (still busy after ${this.#o.busyWaitSeconds} s)` : '';
      return fail(rule, `the shutdown with the right token answered ${res.status}, not 200${hint}`);
    }
  }

  // After the 200, the agent ends within its drain time: its port stops answering, or its health fails.
  async #ends(): Promise<RuleResult> {
    const rule = 'shutdown-exits';
    const started = Date.now();
    const deadline = started + this.#o.drainSeconds * 1000;
    while (Date.now() <= deadline) {
      try {
        const res = await this.#http.request({ method: 'GET', url: this.#url(HEALTH), headers: { authorization: `Bearer service:${this.#o.serviceToken}` }, retry: false, timeoutMs: 1000 });
        if (res.status !== 200) return pass(rule, `health answered ${res.status} ${((Date.now() - started) / 1000).toFixed(1)} s after the 200`, { seconds: (Date.now() - started) / 1000 });
      } catch (error) {
        return pass(rule, `the agent stopped answering ${((Date.now() - started) / 1000).toFixed(1)} s after the 200 (${describeFailure(error)})`, { seconds: (Date.now() - started) / 1000 });
      }
      await sleep(100);
    }
    return fail(rule, `the agent still answered health ${this.#o.drainSeconds} s after accepting the shutdown (--drain-seconds); it must drain and exit`);
  }
}

/** Runs `command` with /bin/sh; resolves with its exit code (127 when it cannot start, 124 after 60 s). */
function runShell(command: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 });
    child.on('error', () => {
      resolve(127);
    });
    child.on('close', (code, signal) => {
      resolve(code ?? (signal === 'SIGTERM' ? 124 : 1));
    });
  });
}
