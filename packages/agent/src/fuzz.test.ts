import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentResponseCodes } from './index.js';
import type { Agent } from './index.js';
import { AUTH, TOKEN, adapters, call, makeAgent } from '../test/harness.js';
import type { Reply, Running, TestAgent } from '../test/harness.js';

// Any request, however malformed, gets a 4xx with a stable code, or a 200/503: never a 5xx, never
// a crash. Each run gets a fresh agent (behind one long-lived server) so an accepted shutdown in
// one run does not turn every later run into a 409.

const stableCodes = new Set(Object.keys(agentResponseCodes));

/** An Agent that forwards every call to whichever agent the current run uses. */
function switchable(): { agent: Agent; use(t: TestAgent): void } {
  let current = makeAgent().agent;
  const agent = new Proxy({} as Agent, {
    get(_, key: keyof Agent) {
      const value: unknown = Reflect.get(current, key);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(current) : value;
    },
  });
  return {
    agent,
    use(t) {
      current = t.agent;
    },
  };
}

const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'];
const paths = fc.oneof(
  fc.constantFrom('/v1/system/shutdown', '/v1/system/health', '/v1/system/shutdown?force=true', '/v1/system/health/', '/', '/v1/system/%2e%2e'),
  fc.stringMatching(/^\/[A-Za-z0-9._~%/-]{0,40}$/),
);
// Header names the HTTP framing depends on are left out: node:http itself answers those before
// any handler runs, so they test Node, not the agent.
const framing = new Set(['content-length', 'transfer-encoding', 'host', 'connection', 'expect', 'upgrade', 'te', 'trailer', 'keep-alive']);
const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,24}$/).filter((name) => !framing.has(name));
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,80}$/).map((v) => v.trim());
const authorization = fc.oneof(
  fc.constant(AUTH.authorization),
  fc.constant(undefined),
  fc.string({ maxLength: 60 }).map((s) => `Bearer service:${s.replace(/[^\x21-\x7e]/g, '')}`),
  headerValue,
  fc.constant(`Bearer service:${TOKEN.slice(0, -1)}`),
);
const jsonValue = fc.oneof(fc.boolean(), fc.constant(null), fc.integer(), fc.string({ maxLength: 30 }), fc.array(fc.integer(), { maxLength: 3 }));
const shutdownBody = fc.record(
  { reason: fc.oneof(fc.string({ maxLength: 200 }), jsonValue), force: fc.oneof(fc.boolean(), jsonValue), confirm: fc.oneof(fc.constant(true), jsonValue) },
  { requiredKeys: [] },
);
const body = fc.oneof(
  fc.constant(undefined),
  shutdownBody.map((b) => JSON.stringify(b)),
  fc.json({ maxDepth: 3 }),
  fc.string({ maxLength: 200 }),
  fc.uint8Array({ maxLength: 200 }),
  fc.nat({ max: 40_000 }).map((n) => JSON.stringify({ reason: 'x'.repeat(n), confirm: true })),
);
const requests = (adapter: string) => fc.record({
  // The fetch spec forbids TRACE in a Request, so no Web runtime hands one to the Web adapter.
  method: fc.constantFrom(...methods.filter((m) => adapter !== 'web' || m !== 'TRACE')),
  path: paths,
  authorization,
  contentType: fc.option(fc.oneof(fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', '/', 'application/json; charset=latin1'), headerValue), { nil: undefined }),
  extra: fc.dictionary(headerName, headerValue, { maxKeys: 4 }),
  body,
  busy: fc.boolean(),
  chunked: fc.boolean(),
});

const agentPaths = new Set(['/v1/system/shutdown', '/v1/system/health']);

function stable(reply: Reply, method: string, path: string, adapter: string): boolean {
  if (reply.status >= 500 && reply.status !== 503) return false;
  if (reply.status === 200 || reply.status === 503) return true;
  if (reply.status < 400 || reply.status >= 500) return false;
  if (method === 'HEAD') return true; // no body to carry a code
  const code = (reply.json as { error?: { code?: unknown } } | undefined)?.error?.code;
  if (typeof code === 'string' && stableCodes.has(code)) return true;
  // Outside the plugin's two routes, Fastify's router answers (its 404 or bad-URL 400, its body).
  return adapter === 'fastify' && !agentPaths.has(path.split('?', 1)[0] ?? '');
}

describe.each(adapters)('fuzzing the $name adapter', ({ name, start }) => {
  const target = switchable();
  let server: Running;
  beforeAll(async () => {
    server = await start(target.agent);
  });
  afterAll(async () => {
    await server.close();
  });

  it('never answers 5xx and always names a stable code', async () => {
    await fc.assert(
      fc.asyncProperty(requests(name), async (r) => {
        const t = makeAgent();
        target.use(t);
        let release = (): void => undefined;
        if (r.busy) void t.agent.critical('fuzz-work', () => new Promise<void>((resolve) => (release = resolve)));
        const headers: Record<string, string> = { ...r.extra };
        if (r.authorization !== undefined) headers.authorization = r.authorization;
        if (r.contentType !== undefined) headers['content-type'] = r.contentType;
        // GET and HEAD bodies are not portable (a Web Request cannot carry one).
        const withBody = r.method === 'GET' || r.method === 'HEAD' ? undefined : r.body;
        try {
          const reply = await call(server.port, { method: r.method, path: r.path, headers, body: withBody, chunked: r.chunked }, 15_000);
          expect(stable(reply, r.method, r.path, name), `${reply.status} ${reply.text.slice(0, 200)}`).toBe(true);
          expect(reply.text).not.toContain(TOKEN);
          if (reply.status === 503) expect(reply.headers['retry-after']).toMatch(/^\d+$/);
        } finally {
          release();
        }
        expect(JSON.stringify(t.lines)).not.toContain(TOKEN);
      }),
      { numRuns: 200, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
  }, 60_000);
});

describe('fuzzing the core handler directly', () => {
  it('any method, path, header object and body: a response with a status below 500', async () => {
    const anyHeaders = fc.dictionary(fc.string({ maxLength: 20 }), fc.oneof(fc.string({ maxLength: 80 }), fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }), fc.constant(undefined)), {
      maxKeys: 5,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 12 }),
        fc.oneof(paths, fc.string({ maxLength: 60 })),
        anyHeaders,
        fc.boolean(),
        fc.oneof(body, fc.constant(undefined)),
        fc.boolean(),
        async (method, path, headers, withAuth, b, tooLarge) => {
          const t = makeAgent();
          const response = await t.agent.handle({ method, path, headers: withAuth ? { ...headers, ...AUTH } : headers, body: b, bodyTooLarge: tooLarge });
          expect(response.status === 200 || response.status === 503 || (response.status >= 400 && response.status < 500)).toBe(true);
          if (response.status !== 200) {
            const parsed = JSON.parse(response.body) as { error: { code: string } };
            expect(stableCodes.has(parsed.error.code)).toBe(true);
          }
          response.sent?.();
        },
      ),
      { numRuns: 500 },
    );
  });
});
