import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { hmacAuditSigner } from '@drover/protocol';
import type { AuditListResponse, AuditVerifyResponse } from '@drover/protocol';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithoutServices } from '../../../test/helpers/services.js';
import { refusal, startTestManager } from './harness.js';
import type { EnrolledAgent, TestManager } from './harness.js';
import { createTestDatabase } from './postgres-database.js';
import type { TestDatabase } from './postgres-database.js';

// The audit read API (GET /manager/v1/audit, /manager/v1/audit/verify): the console's audit page.
// On both places a chain is kept: the log file (SQLite, one manager) and the store (PostgreSQL).

// Replaces, in place and at the same length, record 2's outcome: its hash no longer matches.
const EDIT = ['"outcome":"success"', '"outcome":"succes5"'] as const;

async function editFileRecord2(m: TestManager): Promise<void> {
  const handle = await open(join(m.dir, 'audit', 'audit.jsonl'), 'r+');
  try {
    const text = (await handle.readFile()).toString('utf8');
    const lineStart = text.indexOf('\n') + 1;
    const at = text.indexOf(EDIT[0], lineStart);
    expect(at).toBeLessThan(text.indexOf('\n', lineStart));
    await handle.write(EDIT[1], Buffer.byteLength(text.slice(0, at)));
  } finally {
    await handle.close();
  }
}

describe('the audit read API (a log file)', () => {
  auditReadSuite(() => startTestManager(), editFileRecord2);
});

describe('the audit read API (a log file MACed with a local hmac-sha256 key)', () => {
  // signers.json holds no secret; the manager verifies its own MACs with the key it holds.
  const { signer, key } = hmacAuditSigner(randomBytes(32), 'audit-hmac-1');
  auditReadSuite(() => startTestManager({ auditSigner: { signer, publicKey: key } }), editFileRecord2);
});

const skipPostgres = skipWithoutServices('the audit read API on PostgreSQL', 'postgres');
describe.skipIf(skipPostgres)('the audit read API (the chain in PostgreSQL)', () => {
  let database: TestDatabase | undefined;
  afterAll(async () => {
    await database?.dispose();
  }, 60_000);
  auditReadSuite(
    async () => {
      database = await createTestDatabase();
      return startTestManager({ database: database.config });
    },
    async () => {
      const client = new pg.Client({ connectionString: database?.config.url });
      await client.connect();
      try {
        const edited = await client.query('UPDATE audit_chain SET line = replace(line, $1, $2) WHERE seq = 2', [...EDIT]);
        expect(edited.rowCount).toBe(1);
      } finally {
        await client.end();
      }
    },
  );
});

function auditReadSuite(start: () => Promise<TestManager>, editRecord2: (m: TestManager) => Promise<void>): void {
  let m: TestManager;
  let agents: EnrolledAgent[];
  beforeAll(async () => {
    m = await start();
    agents = [await m.enroll(), await m.enroll()];
    for (const agent of agents) expect((await m.checkin(agent)).status).toBe(200);
  }, 120_000);
  afterAll(async () => {
    await m.close();
  }, 60_000);

  const admin = (): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${m.adminToken}` } });
  const list = async (query: string): Promise<AuditListResponse> => {
    const res = await m.request('GET', `/manager/v1/audit${query}`, admin());
    expect(res.status, res.text).toBe(200);
    return res.json as AuditListResponse;
  };

  it('pages the chain newest first by seq, as the log holds it', async () => {
    const first = await list('?limit=3');
    expect(first.records.map((r) => r.seq)).toEqual([...first.records.map((r) => r.seq)].sort((a, b) => b - a));
    expect(first.records).toHaveLength(3);
    // The page's newest record is one the log holds, whole (hash, signature and all).
    const newest = first.records[0];
    expect((await m.auditRecords()).find((r) => r.seq === newest?.seq)).toEqual(newest);
    const next = first.next ?? 0;
    expect(next).toBe(first.records[2]?.seq);
    const second = await list(`?limit=3&before=${next}`);
    expect(second.records.map((r) => r.seq)).toEqual([next - 1, next - 2, next - 3]);
    const start = await list('?limit=500&before=3');
    expect(start.records.map((r) => r.seq)).toEqual([2, 1]);
    expect(start.next).toBeNull();
  });

  it('filters by host, actor and event (a name ending in "." takes the events it starts)', async () => {
    const agent = agents[0] as EnrolledAgent;
    const byHost = await list(`?agent_id=${agent.agentId}&limit=500`);
    expect(byHost.records.length).toBeGreaterThan(0);
    expect(byHost.records.every((r) => r.agentId === agent.agentId)).toBe(true);
    expect(byHost.records.map((r) => r.event)).toContain('agent.enrolled');
    const byEvent = await list('?event=agent.&limit=500');
    expect(new Set(byEvent.records.map((r) => r.event.split('.')[0]))).toEqual(new Set(['agent']));
    const byActor = await list('?actor=system&limit=500');
    expect(byActor.records.every((r) => r.actor === 'system')).toBe(true);
    expect((await list('?event=no.such&limit=5')).records).toEqual([]);
  });

  it('answers the chain verdict, and the first broken seq with its code once a record is edited', async () => {
    const verified = await m.request('GET', '/manager/v1/audit/verify', admin());
    expect(verified.status).toBe(200);
    const intact = verified.json as AuditVerifyResponse & { ok: true };
    expect(intact.ok).toBe(true);
    expect(intact.lastHash).toMatch(/^[0-9a-f]{64}$/);
    expect(intact.lastSeq).toBeGreaterThan(5);
    expect(intact.count).toBe(intact.lastSeq);
    await editRecord2(m);
    const broken = (await m.request('GET', '/manager/v1/audit/verify', admin())).json as AuditVerifyResponse;
    expect(broken).toMatchObject({ ok: false, seq: 2, line: 2, count: 1, reason: 'HASH_MISMATCH' });
  });

  it('is for operators: the deploy token is refused', async () => {
    expect(refusal(await m.request('GET', '/manager/v1/audit', { headers: { authorization: `Bearer ${m.deployToken}` } }))).toEqual([403, 'TOKEN_SCOPE_INSUFFICIENT']);
    expect(refusal(await m.request('GET', '/manager/v1/audit/verify', { headers: { authorization: `Bearer ${m.deployToken}` } }))).toEqual([403, 'TOKEN_SCOPE_INSUFFICIENT']);
    expect(refusal(await m.request('GET', '/manager/v1/audit?limit=0', admin()))[0]).toBe(400);
  });
}
