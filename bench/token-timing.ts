// dudect-style timing test of the agent's service-token check (Reparaz, Balasch, Verbauwhede:
// "Dude, is my code constant time?"). Two classes of wrong tokens are sent to the shutdown route,
// interleaved at random:
//   prefix: the right token with only its last character changed (shares a long prefix),
//   none:   a random token of the same length whose first character differs (shares nothing).
// An early-exit comparison would refuse `none` faster than `prefix`; Welch's t-test on the two
// timing distributions looks for that difference. |t| < 4.5 is dudect's "no leak found" bound.
//
// Why the core handler and not a socket: the route is timed through `agent.handle()`, the
// transport-neutral core every adapter calls, so each sample covers exactly what a token goes
// through (Authorization parsing, hashing, constant-time compare, the refusal and its log line).
// Over a socket, even a keep-alive one on loopback, the kernel and event-loop scheduling add tens
// of microseconds of jitter per request, which would bury a nanosecond-scale leak and make the test
// pass for the wrong reason. The adapters only translate bytes and do the same work for every token.
//
// Usage: npm run bench:timing [-- --samples 200000]
import { randomBytes, randomInt } from 'node:crypto';
import { generateServiceToken } from '@drover/protocol';
import { createAgent } from '@drover/agent';
import type { AgentRequest } from '@drover/agent';
import { DUDECT_THRESHOLD as THRESHOLD, dudect } from '../packages/cli/src/agent-check/dudect.js';

function argument(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const raw = index === -1 ? undefined : process.argv[index + 1];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} takes a positive integer`);
  return value;
}

const SAMPLES = Math.max(100_000, argument('samples', 200_000)); // timed requests, both classes together
const WARMUP = 20_000; // untimed requests first, so the JIT has settled before measuring

const token = generateServiceToken();
const agent = createAgent({ version: 'bench', serviceToken: token, drainTimeoutMs: 0, exit: false, onShutdown: () => undefined });

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
function otherThan(char: string): string {
  for (;;) {
    const candidate = alphabet[randomInt(alphabet.length)] ?? 'A';
    if (candidate !== char) return candidate;
  }
}

function sharingPrefix(): string {
  return token.slice(0, -1) + otherThan(token.slice(-1));
}

function sharingNothing(): string {
  const random = randomBytes(32).toString('base64url').slice(0, token.length);
  return otherThan(token[0] ?? 'A') + random.slice(1);
}

const body = JSON.stringify({ reason: 'bench', confirm: true });
// Every header is built the same way whatever its class, as a flat string (a string built by `+`
// is a rope until first read, and a difference in representation would be a difference in time
// that has nothing to do with the comparison).
function request(presented: string): AgentRequest {
  const authorization = Buffer.from(`Bearer service:${presented}`, 'latin1').toString('latin1');
  return { method: 'POST', path: '/v1/system/shutdown', headers: { authorization }, body };
}

// dudect prepares every input before measuring, in the order it will be used: random
// interleaving of the classes, so drift in the machine's state (and where each input sits in
// memory) falls on both classes alike instead of on one pool per class.
function prepare(count: number): { classes: Uint8Array; requests: AgentRequest[] } {
  const classes = new Uint8Array(count);
  const bits = randomBytes(count);
  const requests: AgentRequest[] = [];
  for (let i = 0; i < count; i++) {
    const c = (bits[i] ?? 0) & 1;
    classes[i] = c;
    requests.push(request(c === 0 ? sharingPrefix() : sharingNothing()));
  }
  return { classes, requests };
}

const warmup = prepare(WARMUP);
for (const req of warmup.requests) {
  const response = await agent.handle(req);
  if (response.status !== 401) throw new Error(`expected 401, got ${response.status}`);
}

const { classes, requests } = prepare(SAMPLES);
const times = new Float64Array(SAMPLES);
for (let i = 0; i < SAMPLES; i++) {
  const req = requests[i] as AgentRequest;
  const start = process.hrtime.bigint();
  await agent.handle(req);
  times[i] = Number(process.hrtime.bigint() - start);
}

// dudect's statistic, shared with `drover agent-check` (which runs it over HTTP).
const { tests, worst, pass } = dudect(times, classes);
const sorted = Float64Array.from(times).sort();
const percentile = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Infinity;

console.log(
  JSON.stringify({
    bench: 'token-timing',
    route: 'POST /v1/system/shutdown (agent.handle, 401)',
    samples: { total: SAMPLES, prefix: tests[0]?.n[0], none: tests[0]?.n[1] },
    tokenLength: token.length,
    sharedPrefix: { prefix: token.length - 1, none: 0 },
    '|t|': Number(Math.abs(worst.t).toFixed(3)),
    worstCrop: worst.crop,
    threshold: THRESHOLD,
    pass,
    meanNs: { prefix: Math.round(tests[0]?.mean[0] ?? 0), none: Math.round(tests[0]?.mean[1] ?? 0) },
    medianNs: Math.round(percentile(0.5)),
    tests: tests.map((x) => ({ crop: x.crop, t: Number(x.t.toFixed(3)), n: x.n })),
    node: process.version,
  }),
);
