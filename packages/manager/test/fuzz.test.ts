// Fuzzes every manager endpoint over real HTTP with malformed input: the answer is always a 4xx
// with a stable code in DESIGN.md's error body (or a success, when the random input happens to be
// valid), never a 5xx and never Fastify's own error shape; on SQLite and on PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { skipWithoutServices } from '../../../test/helpers/services.js';
import type { CreateManagerOptions } from '../src/server/create.js';
import { checkinBody, commandsOf, errorOf, inventory, startTestManager } from './harness.js';
import type { EnrolledAgent, HttpResult, TestManager } from './harness.js';
import { createTestDatabase } from './postgres-database.js';

let m: TestManager;
let agent: EnrolledAgent;
let enrollmentToken: string;

const RUNS = 60; // per property: bounded, so the suite stays fast

function checkAnswer(res: HttpResult): void {
  expect(res.status, res.text).toBeLessThan(500);
  if (res.status >= 400) {
    expect(errorOf(res)['code'], res.text).toMatch(/^[A-Z][A-Z0-9_]*$/);
    expect(typeof errorOf(res)['message']).toBe('string');
  }
}

// A segment for a URL path: anything, percent-encoded, plus the classics.
const segment = fc.oneof(
  fc.string({ maxLength: 40 }).map(encodeURIComponent),
  fc.constantFrom('..', '.', '%2e%2e', '%00', 'a%2Fb', '%', '%zz', 'x'.repeat(300), agent0()),
);
function agent0(): string {
  return 'agent-0000000000000000';
}
const printable = fc.string({ maxLength: 80, unit: fc.constantFrom(...' !#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~'.split('')) });
const anyJson = fc.jsonValue({ maxDepth: 4 });
const body = fc.oneof(
  anyJson.map((value) => ({ kind: 'json' as const, text: JSON.stringify(value) })),
  fc.string({ maxLength: 200 }).map((text) => ({ kind: 'json' as const, text })),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ kind: 'bytes' as const, bytes })),
);
const contentType = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/octet-stream', 'multipart/form-data; boundary=x', '');

type Auth = 'none' | 'agent' | 'admin' | 'deploy' | 'garbage';
const auth = fc.constantFrom<Auth>('none', 'agent', 'admin', 'deploy', 'garbage');
function authHeader(kind: Auth, garbage: string): Record<string, string> {
  switch (kind) {
    case 'none':
      return {};
    case 'agent':
      return { authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId };
    case 'admin':
      return { authorization: `Bearer ${m.adminToken}` };
    case 'deploy':
      return { authorization: `Bearer ${m.deployToken}` };
    case 'garbage':
      return { authorization: garbage };
  }
}

async function send(method: string, path: string, headers: Record<string, string>, payload: { kind: 'json'; text: string } | { kind: 'bytes'; bytes: Uint8Array } | undefined, type: string): Promise<HttpResult> {
  const h = { ...headers };
  if (type !== '') h['content-type'] = type;
  const data = payload === undefined ? undefined : payload.kind === 'json' ? payload.text : payload.bytes;
  return m.request(method, path, { headers: h, ...(data === undefined ? {} : { body: data }) });
}

// Replaces one top-level field of a valid body with anything.
function mutate(valid: Record<string, unknown>): fc.Arbitrary<string> {
  const keys = Object.keys(valid);
  return fc.tuple(fc.constantFrom(...keys, 'extraField'), anyJson, fc.boolean()).map(([key, value, drop]) => {
    const copy = new Map<string, unknown>(Object.entries(valid));
    if (drop) copy.delete(key);
    else copy.set(key, value);
    return JSON.stringify(Object.fromEntries(copy));
  });
}

// Every property runs against a manager on each store: SQLite, and PostgreSQL where it is installed
// (a database of its own on the test server; DROVER_REQUIRE_POSTGRES=1 makes its absence a failure).
const stores: { name: string; skip: boolean; open: () => Promise<{ options: Partial<CreateManagerOptions>; dispose: () => Promise<void> }> }[] = [
  { name: 'SQLite', skip: false, open: () => Promise.resolve({ options: {}, dispose: () => Promise.resolve() }) },
  {
    name: 'PostgreSQL',
    skip: skipWithoutServices('the fuzz suite on PostgreSQL', 'postgres'),
    open: async () => {
      const database = await createTestDatabase();
      return { options: { database: database.config }, dispose: () => database.dispose() };
    },
  },
];

for (const store of stores) {
  describe.skipIf(store.skip)(`fuzzing every endpoint (${store.name})`, () => {
    let dispose: () => Promise<void> = () => Promise.resolve();
    beforeAll(async () => {
      const opened = await store.open();
      dispose = opened.dispose;
      m = await startTestManager({ settings: { minAgentVersion: '1.0.0' }, ...opened.options });
      enrollmentToken = await m.createEnrollmentToken(1000);
      agent = await m.enroll({ token: enrollmentToken });
      await m.publish({ version: '1.1.0' });
      await m.app.manager.queueUpdate({ agentId: agent.agentId, deploymentId: 'fuzz', artifact: 'agent', version: '1.1.0' });
    }, 120_000);
    afterAll(async () => {
      expect(await m.verifyAudit()).toMatchObject({ ok: true });
      expect(await m.leakedSecrets()).toEqual([]);
      await m.close();
      await dispose();
    }, 60_000);

    it('POST /v1/agents/enroll', async () => {
      const valid = { enrollmentToken: 'x'.repeat(43), machineId: 'a'.repeat(64), hostname: 'h', platform: 'linux-x64', arch: 'x64', agentVersion: '1.0.0', daemonVersion: '1.0.0', inventory };
      await fc.assert(
        fc.asyncProperty(fc.oneof(body, mutate(valid).map((text) => ({ kind: 'json' as const, text }))), contentType, printable, async (payload, type, machine) => {
          checkAnswer(await send('POST', '/v1/agents/enroll', { 'x-machine-id': machine }, payload, type));
        }),
        { numRuns: RUNS },
      );
    });

    it('POST /v1/agents/{agentId}/checkin', async () => {
      const valid = checkinBody('1.0.0', '0.5.0');
      const headers = fc.record({
        'x-machine-id': fc.oneof(fc.constant(agent.machineId), printable),
        'x-agent-version': fc.oneof(fc.constantFrom('1.0.0', '0.1.0', 'v2', 'abcdef1'), printable),
        'x-daemon-version': fc.oneof(fc.constant('0.5.0'), printable),
        'x-update-nonce': printable,
      });
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(fc.constant(agent.agentId), segment),
          auth,
          printable,
          headers,
          fc.oneof(body, mutate(valid).map((text) => ({ kind: 'json' as const, text }))),
          contentType,
          async (agentId, kind, garbage, extra, payload, type) => {
            const res = await send('POST', `/v1/agents/${agentId}/checkin`, { ...extra, ...authHeader(kind, garbage) }, payload, type);
            checkAnswer(res);
          },
        ),
        { numRuns: RUNS * 2 },
      );
    });

    it('check-in results with malformed results and nonces', async () => {
      const result = fc.record({
        commandId: fc.oneof(fc.constantFrom('cmd-0000000000000000'), printable),
        outcome: fc.constantFrom('succeeded', 'failed', 'rolled_back', 'rejected', 'deferred', 'other'),
        detail: fc.oneof(fc.constant({}), anyJson),
        nonce: fc.oneof(printable, fc.constant('eyJ2IjoxfQ.AAAA'), fc.string({ maxLength: 10, unit: fc.constantFrom('a', '.', '_') })),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(result, { maxLength: 3 }), fc.array(printable, { maxLength: 3 }), async (results, acks) => {
          const res = await m.checkin(agent, { body: checkinBody('1.0.0', '0.5.0', { results, acks }) });
          checkAnswer(res);
        }),
        { numRuns: RUNS },
      );
    });

    it('the release routes (publish, upload, latest, by version)', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('POST /v1/releases', 'PUT /v1/releases/A/V/P/artifact', 'GET /v1/releases/latest', 'GET /v1/releases/A/V'),
          segment,
          segment,
          segment,
          auth,
          printable,
          fc.oneof(body, anyJson.map((release) => ({ kind: 'json' as const, text: JSON.stringify({ release }) }))),
          contentType,
          fc.dictionary(fc.constantFrom('artifact', 'platform', 'channel', 'x', 'expires'), printable, { maxKeys: 3 }),
          async (route, a, v, p, kind, garbage, payload, type, query) => {
            const [method = 'GET', template = '/'] = route.split(' ');
            const path = template.replace('A', a).replace('V', v).replace('P', p);
            const qs = new URLSearchParams(query).toString();
            checkAnswer(await send(method, qs === '' ? path : `${path}?${qs}`, authHeader(kind, garbage), method === 'GET' ? undefined : payload, method === 'GET' ? '' : type));
          },
        ),
        { numRuns: RUNS * 2 },
      );
    });

    it('GET /v1/download/{artifact}/{version}/{platform}', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(fc.constant(['agent', '1.1.0', 'linux-x64']), fc.tuple(segment, segment, segment)),
          auth,
          printable,
          fc.record({ expires: fc.oneof(printable, fc.nat().map(String)), sig: fc.oneof(printable, fc.constant('0'.repeat(64))) }, { requiredKeys: [] }),
          fc.record({ range: printable, 'if-range': printable, 'if-none-match': printable }, { requiredKeys: [] }),
          async ([a, v, p], kind, garbage, query, extra) => {
            const qs = new URLSearchParams(query).toString();
            const path = `/v1/download/${a}/${v}/${p}${qs === '' ? '' : `?${qs}`}`;
            checkAnswer(await send('GET', path, { ...extra, ...authHeader(kind, garbage) }, undefined, ''));
          },
        ),
        { numRuns: RUNS * 2 },
      );
    });

    it('the operator routes', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('GET /v1/agents', 'GET /v1/agents/X', 'POST /v1/agents/X/commands', 'POST /v1/enrollment-tokens', 'GET /v1/enrollment-tokens', 'DELETE /v1/enrollment-tokens/X'),
          segment,
          auth,
          printable,
          body,
          contentType,
          fc.dictionary(fc.constantFrom('limit', 'after', 'x'), printable, { maxKeys: 2 }),
          async (route, x, kind, garbage, payload, type, query) => {
            const [method = 'GET', template = '/'] = route.split(' ');
            const qs = new URLSearchParams(query).toString();
            const path = template.replace('X', x) + (qs === '' ? '' : `?${qs}`);
            checkAnswer(await send(method, path, authHeader(kind, garbage), method === 'POST' ? payload : undefined, method === 'POST' ? type : ''));
          },
        ),
        { numRuns: RUNS * 2 },
      );
    });

    it('unknown routes and methods', async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'), fc.array(segment, { maxLength: 4 }), async (method, parts) => {
          const res = await send(method, `/${parts.join('/')}`, {}, method === 'GET' || method === 'OPTIONS' || method === 'DELETE' ? undefined : { kind: 'json', text: '{}' }, 'application/json');
          checkAnswer(res);
        }),
        { numRuns: RUNS },
      );
    });

    it('still serves the fuzzed agent afterwards', async () => {
      const res = await m.checkin(agent);
      expect(res.status).toBe(200);
      expect(commandsOf(res)).toHaveLength(1);
      // The enrollment token's 1000 seats were not spent by malformed enrollments.
      const [token] = (await m.app.manager.listEnrollmentTokens()).filter((t) => t.seats === 1000);
      expect(token?.used).toBe(1);
      expect(m.secrets.has(enrollmentToken)).toBe(true);
    });
  });
}
