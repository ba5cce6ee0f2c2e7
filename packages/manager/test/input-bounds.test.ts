// Hostile values in every JSON field of every mutating route (issue 18): a lone surrogate (in a
// value or a key), nesting deeper than the manager takes, a number beyond a double, more values or
// more bytes than the route takes, a string beyond its field's bounds. Each is refused with a 4xx
// and its code, never a 5xx, and nothing changed: the store's tables and the audit log are what
// they were before the request (http/request-bounds.ts, decision 0022). On SQLite and on PostgreSQL.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createReleasePayload, signRelease } from '@drover/protocol';
import type { DsseEnvelope } from '@drover/protocol';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { managerLimits } from '../src/config.js';
import pg from 'pg';
import { skipWithoutServices } from '../../../test/helpers/services.js';
import type { CreateManagerOptions } from '../src/server/create.js';
import { checkinBody, errorOf, snapshotState, startTestManager } from './harness.js';
import type { EnrolledAgent, HttpResult, StateSnapshot, TestManager } from './harness.js';
import { createTestDatabase, snapshotPostgresState } from './postgres-database.js';

const RUNS = 25; // per route and property: bounded, so the suite stays within a few seconds

let m: TestManager;
let agent: EnrolledAgent;
let enrollmentToken: string;
let deploymentId: string;
let envelope: DsseEnvelope;
let snapshot: () => Promise<StateSnapshot>;

const admin = (): Record<string, string> => ({ authorization: `Bearer ${m.adminToken}` });


const fullInventory = {
  os: { platform: 'linux', distro: 'Debian', release: '12', codename: 'bookworm', kernel: '6.1.0', arch: 'x64' },
  cpu: { manufacturer: 'AMD', brand: 'EPYC', cores: 2, physicalCores: 1, speedGHz: 2.5 },
  memory: { totalBytes: 1024, availableBytes: 512 },
  disks: [{ mount: '/', fs: '/dev/sda1', type: 'ext4', sizeBytes: 100, availableBytes: 50 }],
  uptimeSeconds: 10,
  facts: { rack: 'r4', slots: 2, virtual: true, owner: null },
};

interface Route {
  name: string;
  method: string;
  path: () => string;
  headers: () => Record<string, string>;
  /** A valid body with every optional field present, so that every field is exercised. */
  body: () => Record<string, unknown>;
  bodyLimit: number;
  /** Fields whose content the schema leaves free (a notification's metadata, a release to publish). */
  freeForm: (path: readonly string[]) => boolean;
}

const strict = (): boolean => false;
const routes: Route[] = [
  {
    name: 'POST /v1/agents/enroll',
    method: 'POST',
    path: () => '/v1/agents/enroll',
    headers: () => ({ 'x-machine-id': 'b'.repeat(64) }),
    body: () => ({
      enrollmentToken,
      machineId: 'b'.repeat(64),
      hostname: 'web-9',
      platform: 'linux-x64',
      arch: 'x64',
      agentVersion: '1.0.0',
      daemonVersion: '0.5.0',
      inventory: fullInventory,
    }),
    bodyLimit: managerLimits.enrollBodyMaxBytes,
    freeForm: strict,
  },
  {
    name: 'POST /v1/agents/{agentId}/checkin',
    method: 'POST',
    path: () => `/v1/agents/${agent.agentId}/checkin`,
    headers: () => ({ authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId, 'x-agent-version': '1.0.0', 'x-daemon-version': '0.5.0' }),
    body: () => ({
      ...checkinBody('1.0.0', '0.5.0'),
      state: { agentVersion: '1.0.0', daemonVersion: '0.5.0', update: { commandId: 'cmd-1', step: 'downloading', nonce: 'a.b' } },
      health: { status: 'healthy', version: '1.0.0', busy: true, busyWith: ['migration'], checkedAt: '2026-01-01T00:00:00.000Z' },
      acks: ['cmd-1'],
      results: [{ commandId: 'cmd-1', outcome: 'deferred', detail: { code: 'AGENT_BUSY', message: 'busy' }, nonce: 'a.b' }],
      inventory: fullInventory,
    }),
    bodyLimit: managerLimits.checkinBodyMaxBytes,
    freeForm: strict,
  },
  {
    name: 'POST /v1/agents/{agentId}/commands',
    method: 'POST',
    path: () => `/v1/agents/${agent.agentId}/commands`,
    headers: admin,
    body: () => ({ deploymentId: 'manual-1', artifact: 'agent', version: '1.1.0', platform: 'linux-x64', rollback: false, force: false, drainTimeoutSeconds: 60, deadlineSeconds: 3600 }),
    bodyLimit: managerLimits.adminBodyMaxBytes,
    freeForm: strict,
  },
  {
    name: 'PUT /v1/agents/{agentId}/rollout',
    method: 'PUT',
    path: () => `/v1/agents/${agent.agentId}/rollout`,
    headers: admin,
    body: () => ({ group: 'explorer', pushUrl: 'http://10.0.0.5:8080' }),
    bodyLimit: managerLimits.adminBodyMaxBytes,
    freeForm: strict,
  },
  {
    name: 'POST /v1/agents/import',
    method: 'POST',
    path: () => '/v1/agents/import',
    headers: admin,
    body: () => ({
      source: 'ciris-registry',
      registrySha256: 'c'.repeat(64),
      agents: [{ agentId: 'datum-main', name: 'Datum', pushUrl: 'http://10.0.0.5:8001', serviceToken: 'A'.repeat(43), group: 'explorer', agentVersion: '1.0.0' }],
    }),
    bodyLimit: managerLimits.importBodyMaxBytes,
    freeForm: strict,
  },
  {
    name: 'POST /v1/enrollment-tokens',
    method: 'POST',
    path: () => '/v1/enrollment-tokens',
    headers: admin,
    body: () => ({ seats: 5, expiresInSeconds: 3600, note: 'rack 4' }),
    bodyLimit: managerLimits.adminBodyMaxBytes,
    freeForm: strict,
  },
  {
    name: 'POST /v1/releases',
    method: 'POST',
    path: () => '/v1/releases',
    headers: () => ({ authorization: `Bearer ${m.deployToken}` }),
    body: () => ({ release: envelope }),
    bodyLimit: managerLimits.releaseBodyMaxBytes,
    // Anything that is not a verifiable envelope is refused (and audited) as RELEASE_MALFORMED by design.
    freeForm: (path) => path[0] === 'release',
  },
  {
    name: 'POST /manager/v1/updates/notify',
    method: 'POST',
    path: () => '/manager/v1/updates/notify',
    headers: () => ({ authorization: `Bearer ${m.deployToken}` }),
    body: () => ({
      agent_image: 'ghcr.io/example/agent:2',
      gui_image: 'ghcr.io/example/gui:2',
      nginx_image: 'nginx:1',
      version: '2.0.0',
      commit_sha: 'abcdef1',
      changelog: 'fix: a bug',
      risk_level: 'low',
      strategy: 'canary',
      message: 'Update available',
      metadata: { team: 'core', nested: { list: [1, 'two', null] }, rollout: { maxInFlight: 5, percentages: [50, 100] } },
      source: 'github-actions',
      artifact: 'agent',
      release: envelope,
      supersede: true,
    }),
    bodyLimit: 256 * 1024,
    freeForm: (path) => path[0] === 'metadata' && path.length > 1,
  },
  ...(['pause', 'resume', 'abort', 'promote', 'rollback'] as const).map(
    (action): Route => ({
      name: `POST /manager/v1/updates/{id}/${action}`,
      method: 'POST',
      path: () => `/manager/v1/updates/${deploymentId}/${action}`,
      headers: admin,
      body: () => ({ reason: 'maintenance window' }),
      bodyLimit: managerLimits.adminBodyMaxBytes,
      freeForm: strict,
    }),
  ),
];

/** The path of every value in a body, containers included (the body itself is []). */
function fieldPaths(value: unknown, path: string[] = []): string[][] {
  const paths = [path];
  if (Array.isArray(value)) value.forEach((item, i) => paths.push(...fieldPaths(item, [...path, String(i)])));
  else if (typeof value === 'object' && value !== null) for (const [key, item] of Object.entries(value)) paths.push(...fieldPaths(item, [...path, key]));
  return paths;
}

const MARK = '\u0000hostile\u0000';
/** The body's JSON text with the value at `path` replaced by `hostile` (JSON text of any depth). */
function bodyText(body: Record<string, unknown>, path: readonly string[], hostile: string): string {
  if (path.length === 0) return hostile;
  const copy = structuredClone(body);
  let parent: Record<string, unknown> = copy;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, unknown>;
  parent[path.at(-1) ?? ''] = MARK;
  return JSON.stringify(copy).replace(JSON.stringify(MARK), () => hostile);
}

/** A hostile JSON text and the codes it may be refused with (BODY_TOO_LARGE wherever it is too big). */
interface Hostile {
  kind: string;
  json: (original: unknown) => string;
  codes: string[];
}

const ascii = fc.string({ maxLength: 12, unit: 'grapheme-ascii' });
const surrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));
// A lone surrogate: an ASCII neighbour on each side, so it can never pair up.
const lone = fc.tuple(ascii, surrogate, ascii).map(([a, s, b]) => `${a}${s}${b}`);

function hostile(route: Route, path: readonly string[]): fc.Arbitrary<Hostile> {
  const kinds: fc.Arbitrary<Hostile>[] = [
    lone.map((text) => ({
      kind: 'lone surrogate in a string',
      // A field that holds text keeps it, with the surrogate appended: every other check would pass.
      json: (original) => JSON.stringify(typeof original === 'string' ? `${original}${text}` : text),
      codes: ['TEXT_MALFORMED'],
    })),
    lone.map((key) => ({
      kind: 'lone surrogate in a key',
      json: (original) => JSON.stringify({ ...(typeof original === 'object' && original !== null && !Array.isArray(original) ? original : {}), [key]: 1 }),
      codes: ['TEXT_MALFORMED'],
    })),
    fc.tuple(fc.integer({ min: 33, max: 20_000 }), fc.boolean()).map(([depth, arrays]) => ({
      kind: `nested ${depth} deep`,
      json: () => (arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}0${'}'.repeat(depth)}`),
      codes: ['JSON_TOO_DEEP', 'BODY_TOO_LARGE'],
    })),
    fc.constantFrom('1e400', '-1e999', '2e308').map((number) => ({ kind: `number ${number}`, json: () => number, codes: ['NUMBER_OUT_OF_RANGE'] })),
    fc.integer({ min: managerLimits.requestJsonMaxValues + 1, max: 2 * managerLimits.requestJsonMaxValues }).map((count) => ({
      kind: `${count} values`,
      json: () => `[${Array.from({ length: count }, () => '0').join(',')}]`,
      codes: ['JSON_TOO_LARGE', 'BODY_TOO_LARGE'],
    })),
    fc.nat(4096).map((extra) => ({ kind: 'a string over the body limit', json: () => JSON.stringify('x'.repeat(route.bodyLimit + extra)), codes: ['BODY_TOO_LARGE'] })),
  ];
  // A typed field has a length or a pattern: a long string of `~` breaks both. (A free-form field
  // takes any string its route's body limit lets through; that bound is the one above.)
  if (!route.freeForm(path)) {
    kinds.push(fc.constant({ kind: 'a string beyond its field', json: () => JSON.stringify('~'.repeat(70_000)), codes: ['SCHEMA_INVALID', 'BODY_TOO_LARGE'] }));
  }
  return fc.oneof(...kinds);
}

function valueAt(body: unknown, path: readonly string[]): unknown {
  let value = body;
  for (const key of path) value = (value as Record<string, unknown>)[key];
  return value;
}

async function refusedAndUnchanged(send: () => Promise<HttpResult>, codes: readonly string[] | undefined, what: string): Promise<void> {
  const before = await snapshot();
  const res = await send();
  expect(res.status, `${what}: ${res.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(res.status, `${what}: ${res.text.slice(0, 300)}`).toBeLessThan(500);
  const code = errorOf(res)['code'];
  expect(code, what).toMatch(/^[A-Z][A-Z0-9_]*$/);
  if (codes !== undefined) expect(codes, what).toContain(code);
  const after = await snapshot();
  expect(after.audit === before.audit, `${what}: the audit log changed`).toBe(true);
  expect(after.tables, `${what}: the store changed`).toEqual(before.tables);
}

// Every property runs against a manager on each store: SQLite, and PostgreSQL where it is installed
// (a database of its own; DROVER_REQUIRE_POSTGRES=1 makes its absence a failure). "Nothing changed"
// compares every row of every table of the store, and the audit log, before and after.
const stores: { name: string; skip: boolean; open: () => Promise<{ options: Partial<CreateManagerOptions>; snapshot: (m: TestManager) => Promise<StateSnapshot>; dispose: () => Promise<void> }> }[] = [
  {
    name: 'SQLite',
    skip: false,
    open: () => {
      let db: Database.Database | undefined;
      return Promise.resolve({
        options: {},
        snapshot: (manager: TestManager) => snapshotState(manager, (db ??= new Database(join(manager.dir, 'manager.db'), { readonly: true, fileMustExist: true }))),
        dispose: () => {
          db?.close();
          return Promise.resolve();
        },
      });
    },
  },
  {
    name: 'PostgreSQL',
    skip: skipWithoutServices('the input-bounds suite on PostgreSQL', 'postgres'),
    open: async () => {
      const database = await createTestDatabase();
      const reader = new pg.Client({ connectionString: database.config.url });
      await reader.connect();
      return {
        options: { database: database.config },
        snapshot: (manager: TestManager) => snapshotPostgresState(manager, reader),
        dispose: async () => {
          await reader.end();
          await database.dispose();
        },
      };
    },
  },
];

for (const store of stores) {
  describe.skipIf(store.skip)(`hostile values in every JSON field of every mutating route: 4xx with a code, nothing changed (${store.name})`, () => {
    let dispose: () => Promise<void> = () => Promise.resolve();
    beforeAll(async () => {
      const opened = await store.open();
      dispose = opened.dispose;
      // The rollout engine stays still: a tick between two snapshots would be a change of its own.
      m = await startTestManager({ rollout: { autoStart: false }, ...opened.options });
      snapshot = () => opened.snapshot(m);
      enrollmentToken = await m.createEnrollmentToken(100);
      agent = await m.enroll({ token: enrollmentToken });
      await m.publish({ version: '1.1.0' });
      const created = await m.request('POST', '/manager/v1/updates/notify', { headers: { authorization: `Bearer ${m.deployToken}` }, json: { version: '1.1.0', strategy: 'manual' } });
      deploymentId = (created.json as { deployment_id: string }).deployment_id;
      const bytes = Buffer.from('the bytes of 2.0.0');
      envelope = signRelease(
        createReleasePayload({ artifact: 'agent', version: '2.0.0', platform: 'linux-x64', file: { name: 'agent.tar.gz', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } }),
        [m.releaseKey],
      );
    }, 120_000);
    afterAll(async () => {
      expect(await m.verifyAudit()).toMatchObject({ ok: true });
      await m.close();
      await dispose();
    }, 60_000);

    it('every JSON field of every mutating route, each a property of its own', async () => {
      for (const route of routes) {
        const paths = fieldPaths(route.body());
        await fc.assert(
          fc.asyncProperty(
            fc.constantFrom(...paths).chain((path) => fc.tuple(fc.constant(path), hostile(route, path))),
            async ([path, value]) => {
              const body = route.body();
              const text = bodyText(body, path, value.json(valueAt(body, path)));
              await refusedAndUnchanged(
                () => m.request(route.method, route.path(), { headers: { ...route.headers(), 'content-type': 'application/json' }, body: text }),
                value.codes,
                `${route.name} /${path.join('/')}: ${value.kind}`,
              );
            },
          ),
          { numRuns: RUNS },
        );
      }
    });

    it('hostile path segments on every mutating route', async () => {
      const segments = fc.constantFrom('%ED%A0%80', '%ED%B0%80', '%F0%90%80', '%C0%AF', '%00', '%2e%2e', 'x'.repeat(300), `a${'%E2%80%8B'.repeat(60)}`, '%FF');
      const templates = [
        'POST /v1/agents/X/checkin',
        'POST /v1/agents/X/commands',
        'PUT /v1/agents/X/rollout',
        'DELETE /v1/enrollment-tokens/X',
        'PUT /v1/releases/X/1.1.0/linux-x64/artifact',
        'PUT /v1/releases/agent/X/linux-x64/artifact',
        'POST /manager/v1/updates/X/pause',
        'POST /manager/v1/updates/X/abort',
      ];
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...templates), segments, async (template, segment) => {
          const [method = 'POST', route = '/'] = template.split(' ');
          const upload = route.endsWith('/artifact');
          const headers = route.includes('/checkin')
            ? { authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId, 'x-agent-version': '1.0.0', 'x-daemon-version': '0.5.0' }
            : admin();
          const body = method === 'DELETE' ? undefined : upload ? Buffer.from('bytes') : JSON.stringify(route.includes('/checkin') ? checkinBody() : {});
          await refusedAndUnchanged(
            () => m.request(method, route.replace('X', segment), { headers: { ...headers, ...(body === undefined ? {} : { 'content-type': upload ? 'application/octet-stream' : 'application/json' }) }, ...(body === undefined ? {} : { body }) }),
            undefined,
            `${template} with ${segment.slice(0, 40)}`,
          );
        }),
        { numRuns: RUNS },
      );
    });

    it('the examples of issue 18: nothing is created, paused or stored', async () => {
      const note = await m.request('POST', '/v1/enrollment-tokens', { headers: { ...admin(), 'content-type': 'application/json' }, body: '{"seats":5,"note":"\\ud800"}' });
      expect([note.status, errorOf(note)['code']]).toEqual([400, 'TEXT_MALFORMED']);
      expect((await m.app.manager.listEnrollmentTokens()).some((t) => t.seats === 5)).toBe(false);

      for (const action of ['pause', 'abort', 'rollback']) {
        const res = await m.request('POST', `/manager/v1/updates/${deploymentId}/${action}`, { headers: { ...admin(), 'content-type': 'application/json' }, body: '{"reason":"\\udc00 x"}' });
        expect([res.status, errorOf(res)['code']], action).toEqual([400, 'TEXT_MALFORMED']);
      }
      expect((await m.app.manager.deploymentStatus(deploymentId))?.status).toBe('pending');

      const deep = `{"version":"2.0.0","supersede":true,"metadata":{"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}}`;
      const notify = await m.request('POST', '/manager/v1/updates/notify', { headers: { authorization: `Bearer ${m.deployToken}`, 'content-type': 'application/json' }, body: deep });
      expect([notify.status, errorOf(notify)['code']]).toEqual([400, 'JSON_TOO_DEEP']);
      expect(errorOf(notify)['message']).toMatch(/^Field metadata of the request body/);
      expect((await m.app.manager.context.store.listDeployments({ limit: 10 })).map((d) => d.id)).toEqual([deploymentId]);
    });

    it('still takes valid requests afterwards, well-formed surrogate pairs included', async () => {
      const before = (await m.auditRecords()).length;
      const token = await m.request('POST', '/v1/enrollment-tokens', { headers: admin(), json: { seats: 5, expiresInSeconds: 3600, note: 'rack 4 \u{1F600}' } });
      expect(token.status).toBe(201);
      const abort = await m.request('POST', `/manager/v1/updates/${deploymentId}/abort`, { headers: admin(), json: { reason: 'done \u{1F600}' } });
      expect(abort.status).toBe(200);
      const records = (await m.auditRecords()).slice(before);
      expect(records.map((r) => r.event)).toEqual(['token.used', 'enrollment_token.created', 'token.used', 'deployment.abort']);
      expect(records[1]?.details['note']).toBe('rack 4 \u{1F600}');
    });
  });
}
