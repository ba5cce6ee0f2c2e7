// A change and its audit record commit together or not at all (issue 18, decision 0024). The
// record goes to the store's audit outbox in the change's own transaction, then into the log:
//
// - with the outbox insert of a route's record failing (a trigger in the real SQLite file makes
//   exactly that insert fail), every mutating route changes nothing: tables and log as before;
//   without the fault, the same request makes the change and the log gains its record;
// - an entry the log could never take (a lone surrogate reaching the core past the HTTP bounds)
//   stops the change before its transaction;
// - with the log unwritable the change commits with its record waiting in the outbox, /readyz
//   says so, and the record reaches the log once the log can be written again;
// - a crash between the log's fsync and the outbox's cleanup leaves no duplicate: the restarted
//   manager matches the log's extra records to the outbox rows;
// - as a property over any input to every mutating route, with or without the fault: either the
//   request succeeds and both the change and its record exist, or it fails and neither does.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { createReleasePayload, signRelease } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { enrollBody, machineId, snapshotState, startTestManager } from './harness.js';
import type { EnrolledAgent, StateSnapshot, TestManager } from './harness.js';

let m: TestManager;
let agent: EnrolledAgent;
let enrollmentToken: string;
let deploymentId: string;
let db: Database.Database;

const admin = (): Record<string, string> => ({ authorization: `Bearer ${m.adminToken}` });
const deploy = (): Record<string, string> => ({ authorization: `Bearer ${m.deployToken}` });

beforeAll(async () => {
  m = await startTestManager({ rollout: { autoStart: false } });
  enrollmentToken = await m.createEnrollmentToken(100);
  agent = await m.enroll({ token: enrollmentToken });
  await m.publish({ version: '1.1.0' });
  const created = await m.request('POST', '/manager/v1/updates/notify', { headers: deploy(), json: { version: '1.1.0', strategy: 'manual' } });
  deploymentId = (created.json as { deployment_id: string }).deployment_id;
  db = new Database(join(m.dir, 'manager.db'), { fileMustExist: true });
});
afterAll(async () => {
  db.close();
  expect(await m.verifyAudit()).toMatchObject({ ok: true });
  await m.close();
});

const snapshot = (): Promise<StateSnapshot> => snapshotState(m, db);

// A snapshot without the records of operator tokens' use (and the head they moved).
function withoutTokenUse(state: StateSnapshot): { tables: Record<string, string[]>; audit: string[] } {
  return {
    tables: {
      ...state.tables,
      meta: (state.tables['meta'] ?? []).filter((row) => !row.includes('"key":"audit.head"')),
      sqlite_sequence: (state.tables['sqlite_sequence'] ?? []).filter((row) => !row.includes('"name":"audit_outbox"')),
    },
    audit: state.audit.split('\n').filter((line) => !line.includes('"event":"token.used"')),
  };
}

function failOutboxInsertOf(event: string): () => void {
  db.exec(`CREATE TRIGGER fail_audit BEFORE INSERT ON audit_outbox WHEN json_extract(NEW.body, '$.event') = '${event}' BEGIN SELECT RAISE(ABORT, 'injected: the audit outbox is failing'); END`);
  return () => db.exec('DROP TRIGGER fail_audit');
}

interface Change {
  name: string;
  event: string;
  request: () => Promise<{ status: number }>;
}

const releaseEnvelope = (version: string): unknown => {
  const bytes = Buffer.from(`the bytes of ${version}`);
  return signRelease(
    createReleasePayload({ artifact: 'agent', version, platform: 'linux-x64', file: { name: 'agent.tar.gz', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } }),
    [m.releaseKey],
  );
};

const changes: Change[] = [
  { name: 'create an enrollment token', event: 'enrollment_token.created', request: () => m.request('POST', '/v1/enrollment-tokens', { headers: admin(), json: { seats: 5, note: 'rack 4' } }) },
  {
    name: 'enroll a machine',
    event: 'agent.enrolled',
    request: () => {
      const id = machineId();
      return m.request('POST', '/v1/agents/enroll', { headers: { 'x-machine-id': id }, json: enrollBody(enrollmentToken, id) });
    },
  },
  { name: "set an agent's rollout settings", event: 'agent.rollout_settings', request: () => m.request('PUT', `/v1/agents/${agent.agentId}/rollout`, { headers: admin(), json: { group: 'explorer' } }) },
  {
    name: 'queue an update command',
    event: 'command.queued',
    request: () => m.request('POST', `/v1/agents/${agent.agentId}/commands`, { headers: admin(), json: { deploymentId: 'manual-1', artifact: 'agent', version: '1.1.0', platform: 'linux-x64' } }),
  },
  { name: 'register a release', event: 'release.registered', request: () => m.request('POST', '/v1/releases', { headers: deploy(), json: { release: releaseEnvelope('3.0.0') } }) },
  { name: 'pause a deployment', event: 'deployment.pause', request: () => m.request('POST', `/manager/v1/updates/${deploymentId}/pause`, { headers: admin(), json: { reason: 'maintenance window' } }) },
  { name: 'resume a deployment', event: 'deployment.resume', request: () => m.request('POST', `/manager/v1/updates/${deploymentId}/resume`, { headers: admin(), json: {} }) },
  {
    name: 'create a deployment, superseding the active one',
    event: 'deployment.created',
    request: () => m.request('POST', '/manager/v1/updates/notify', { headers: deploy(), json: { version: '1.1.0', strategy: 'manual', supersede: true } }),
  },
];

describe('a change and its audit record commit together', () => {
  for (const change of changes) {
    it(`${change.name}: nothing changes when its record cannot be written; both exist when it can`, async () => {
      const before = await snapshot();
      const heal = failOutboxInsertOf(change.event);
      let failed;
      try {
        failed = await change.request();
      } finally {
        heal();
      }
      expect(failed.status, JSON.stringify(failed)).toBeGreaterThanOrEqual(500);
      // The operator token's use happened and stays audited; nothing else changed.
      expect(withoutTokenUse(await snapshot())).toEqual(withoutTokenUse(before));

      const count = (await m.auditRecords()).filter((r) => r.event === change.event).length;
      const done = await change.request();
      expect(done.status).toBeLessThan(300);
      expect((await m.auditRecords()).filter((r) => r.event === change.event)).toHaveLength(count + 1);
      expect(db.prepare('SELECT count(*) AS n FROM audit_outbox').get()).toEqual({ n: 0 });
    });
  }

  it('an entry the log could never take stops the change before its transaction', async () => {
    const [active] = await m.app.manager.context.store.listDeployments({ active: true, limit: 1 });
    expect(active?.status).toBe('pending');
    const before = await snapshot();
    await expectRejection(m.app.manager.createEnrollmentToken({ seats: 5, note: '\ud800' }), Error, 'CANONICAL_JSON_UNSUPPORTED');
    await expectRejection(m.app.manager.rollouts.act(active?.id ?? deploymentId, 'pause', { name: 'operator:test' }, '\ud800'), Error, 'CANONICAL_JSON_UNSUPPORTED');
    expect(await snapshot()).toEqual(before);
  });

  it('with the log unwritable, the change commits with its record waiting, /readyz says so, and the record lands later', async () => {
    const trail = m.app.manager.context.audit;
    const log = trail.log;
    if (log === undefined) throw new Error('this manager keeps its audit log in a file');
    const appendMany = log.appendMany.bind(log);
    log.appendMany = () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
    let token;
    try {
      token = await m.request('POST', '/v1/enrollment-tokens', { headers: admin(), json: { seats: 2, note: 'while the disk is full' } });
      expect(token.status).toBe(201);
      // The token's use and the token's creation wait in the outbox.
      expect(db.prepare("SELECT json_extract(body, '$.event') AS event FROM audit_outbox ORDER BY id").all()).toEqual([{ event: 'token.used' }, { event: 'enrollment_token.created' }]);
      const ready = await m.request('GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(JSON.stringify(ready.json), JSON.stringify(ready.json)).toContain('AUDIT_UNAVAILABLE');
    } finally {
      log.appendMany = appendMany;
    }
    await trail.flush();
    expect((await m.request('GET', '/readyz')).status).toBe(200);
    const created = (await m.auditRecords()).filter((r) => r.event === 'enrollment_token.created' && r.details['note'] === 'while the disk is full');
    expect(created).toHaveLength(1);
    expect(db.prepare('SELECT count(*) AS n FROM audit_outbox').get()).toEqual({ n: 0 });
  });
});

// Inputs a route may get: ordinary, odd, hostile (lone surrogates, control characters, long and
// empty strings, wrong types). The request either passes validation or is refused; either way the
// property below must hold.
const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ maxLength: 40, unit: 'binary' }),
  fc.tuple(fc.string({ maxLength: 8 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string({ maxLength: 8 })).map(([a, code, b]) => `${a}${String.fromCharCode(code)}${b}`),
  fc.constantFrom('', ' ', 'x'.repeat(300), 'rack 4', '\u0000', '\u202e', 'a\nb'),
);
const anything = fc.oneof(text, fc.integer({ min: -10, max: 2_000_000 }), fc.constant(null), fc.boolean(), fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }));
/** Mostly a value the route takes, sometimes anything: so both outcomes are common. */
const mostly = <T,>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ arbitrary: valid, weight: 4 }, { arbitrary: anything, weight: 1 });
const version = mostly(fc.constantFrom('1.1.0', '1.1.0', '9.9.9'));

interface AnyInputChange {
  name: string;
  event: string;
  input: fc.Arbitrary<Record<string, unknown>>;
  request: (input: Record<string, unknown>) => Promise<{ status: number }>;
  /** Brings the state to where the change can happen (before the snapshot): a deployment running to pause, a paused one to resume. */
  prepare?: () => Promise<void>;
}

const pausedIs = async (paused: boolean): Promise<void> => {
  const id = await activeDeployment();
  const deployment = await m.app.manager.context.store.getDeployment(id);
  if ((deployment?.status === 'paused') !== paused) await m.request('POST', `/manager/v1/updates/${id}/${paused ? 'pause' : 'resume'}`, { headers: admin(), json: {} });
};

const activeDeployment = async (): Promise<string> => (await m.app.manager.context.store.listDeployments({ active: true, limit: 1 }))[0]?.id ?? deploymentId;

const anyInputChanges: AnyInputChange[] = [
  {
    name: 'create an enrollment token',
    event: 'enrollment_token.created',
    input: fc.record({ seats: mostly(fc.integer({ min: 1, max: 1_000 })), note: fc.option(mostly(fc.string({ maxLength: 40 })), { nil: undefined }) }, { requiredKeys: ['seats'] }),
    request: (input) => m.request('POST', '/v1/enrollment-tokens', { headers: admin(), json: input }),
  },
  {
    name: 'enroll a machine',
    event: 'agent.enrolled',
    input: fc.record({ hostname: mostly(fc.constantFrom('web-1', 'db.example', 'h')), agentVersion: version }),
    request: (input) => {
      const id = machineId();
      return m.request('POST', '/v1/agents/enroll', { headers: { 'x-machine-id': id }, json: { ...enrollBody(enrollmentToken, id), ...input } });
    },
  },
  {
    name: "set an agent's rollout settings",
    event: 'agent.rollout_settings',
    input: fc.record({ group: mostly(fc.constantFrom('explorer', 'early_adopter', 'general')) }),
    request: (input) => m.request('PUT', `/v1/agents/${agent.agentId}/rollout`, { headers: admin(), json: input }),
  },
  {
    name: 'queue an update command',
    event: 'command.queued',
    input: fc.record({ deploymentId: mostly(fc.constantFrom('manual-1', 'manual-2')), artifact: mostly(fc.constant('agent')), version, platform: mostly(fc.constant('linux-x64')) }),
    request: (input) => m.request('POST', `/v1/agents/${agent.agentId}/commands`, { headers: admin(), json: input }),
  },
  {
    name: 'pause a deployment',
    event: 'deployment.pause',
    input: fc.record({ reason: mostly(fc.string({ maxLength: 40 })) }),
    prepare: () => pausedIs(false),
    request: async (input) => m.request('POST', `/manager/v1/updates/${await activeDeployment()}/pause`, { headers: admin(), json: input }),
  },
  {
    name: 'resume a deployment',
    event: 'deployment.resume',
    input: fc.record({ reason: mostly(fc.string({ maxLength: 40 })) }, { requiredKeys: [] }),
    prepare: () => pausedIs(true),
    request: async (input) => m.request('POST', `/manager/v1/updates/${await activeDeployment()}/resume`, { headers: admin(), json: input }),
  },
  {
    name: 'create a deployment',
    event: 'deployment.created',
    input: fc.record(
      { version: fc.constant('1.1.0'), strategy: mostly(fc.constantFrom('manual', 'canary', 'immediate')), supersede: mostly(fc.constant(true)), message: mostly(fc.string({ maxLength: 40 })) },
      { requiredKeys: ['version', 'strategy', 'supersede'] },
    ),
    request: (input) => m.request('POST', '/manager/v1/updates/notify', { headers: deploy(), json: input }),
  },
];

describe('for any input to every mutating route, with or without a failing audit append', () => {
  for (const change of anyInputChanges) {
    it(`${change.name}: the change and its record both exist, or neither does`, async () => {
      await fc.assert(
        fc.asyncProperty(change.input, fc.boolean(), async (input, fault) => {
          await change.prepare?.();
          const before = await snapshot();
          const recordsBefore = (await m.auditRecords()).filter((r) => r.event === change.event).length;
          const heal = fault ? failOutboxInsertOf(change.event) : () => undefined;
          let answer;
          try {
            answer = await change.request(input);
          } finally {
            heal();
          }
          const after = await snapshot();
          const records = (await m.auditRecords()).filter((r) => r.event === change.event).length;
          // What a request may leave behind whatever its outcome: its token's use, and the record of a
          // refusal (outcome "denied", e.g. deployment.rejected), which is audited by design.
          const settled = (state: StateSnapshot): string => {
            const kept = withoutTokenUse(state);
            return JSON.stringify({ ...kept, audit: kept.audit.filter((line) => !line.includes('"outcome":"denied"')) });
          };
          const changed = settled(after) !== settled(before);
          if (answer.status < 300) {
            // Both: the state moved, and exactly one record of it reached the log.
            expect(fault, JSON.stringify(answer)).toBe(false);
            expect(changed).toBe(true);
            expect(records).toBe(recordsBefore + 1);
          } else {
            // Neither; and a refusal of the input is a 4xx, only the injected fault a 5xx.
            expect(changed, JSON.stringify(answer)).toBe(false);
            expect(records).toBe(recordsBefore);
            if (!fault) expect(answer.status, JSON.stringify(answer)).toBeLessThan(500);
          }
          expect(db.prepare('SELECT count(*) AS n FROM audit_outbox').get()).toEqual({ n: 0 });
        }),
        { numRuns: 30 },
      );
    }, 120_000);
  }
});

describe('a crash between the log and the outbox', () => {
  it('leaves no duplicate: the restarted manager matches the records the log holds to the outbox rows', async () => {
    const other = await startTestManager({ rollout: { autoStart: false } });
    try {
      const store = other.app.manager.context.store;
      // The outbox cleanup never commits, as if the manager died right after the log's fsync.
      store.completeAuditOutbox = () => Promise.reject(new Error('killed before the outbox cleanup'));
      await other.app.manager.createEnrollmentToken({ seats: 1, note: 'once' });
      expect((await other.auditRecords()).filter((r) => r.details['note'] === 'once')).toHaveLength(1);
      const restarted = await other.restart();
      try {
        const records = await restarted.auditRecords();
        expect(records.filter((r) => r.details['note'] === 'once')).toHaveLength(1);
        expect(await restarted.verifyAudit()).toMatchObject({ ok: true });
        const reopened = new Database(join(restarted.dir, 'manager.db'), { readonly: true, fileMustExist: true });
        try {
          expect(reopened.prepare('SELECT count(*) AS n FROM audit_outbox').get()).toEqual({ n: 0 });
        } finally {
          reopened.close();
        }
        expect(restarted.logs.some((line) => line.includes('"event":"audit.reconciled"'))).toBe(true);
      } finally {
        await restarted.close();
      }
    } catch (error) {
      await other.close().catch(() => undefined);
      throw error;
    }
  });
});
