// Two manager replicas (real `drover manager start` processes) on one PostgreSQL database, 200
// simulated daemons split between them, a three-phase canary rollout; a replica is SIGKILLed in
// each phase and started again while its hosts turn to the other one (issue 12, decision 0038,
// the scenario in replica-failover.ts). The rollout completes, no host receives two commands for
// the deployment, the other replica takes the rollout over at once, a watcher of one replica's
// event stream receives every event in order whichever replica made it, and the one audit chain
// both replicas appended to verifies from either directory.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithoutServices } from '../helpers/services.js';
import { createTestDatabase } from '../../packages/manager/test/postgres-database.js';
import type { TestDatabase } from '../../packages/manager/test/postgres-database.js';
import { replicaFailover } from './replica-failover.js';

const skip = skipWithoutServices('the manager-replicas suite', 'postgres');

let database: TestDatabase | undefined;

beforeAll(async () => {
  if (!skip) database = await createTestDatabase();
}, 120_000);

afterAll(async () => {
  await database?.dispose();
}, 60_000);

describe.skipIf(skip)('two manager replicas on one PostgreSQL database', () => {
  it('carry a three-phase rollout of 200 hosts through a SIGKILL of a replica in each phase: completed, no duplicate command, one event stream, one audit chain that verifies', async () => {
    const result = await replicaFailover({ databaseUrl: database?.config.url ?? '', hostsPerReplica: 100, checkinEveryMs: 400 });
    expect(result.phasesKilledIn).toEqual(['10%', '30%', '100%']);
    expect(result.final.status).toBe('completed');
    expect(result.final.agents_updated).toBe(200);
    expect([result.hosts, result.duplicateCommands, result.hostsNotUpdated]).toEqual([200, 0, 0]);
    // A dead replica holds nothing: the other takes the lease on its next tick (100 ms here).
    expect(result.takeoverSeconds).toHaveLength(3);
    for (const seconds of result.takeoverSeconds) expect(seconds).toBeLessThan(10);
    expect(result.streamedEventIds).toEqual(result.eventSeqs);
    for (const verified of result.auditVerify) expect([verified.code, verified.line], verified.replica).toEqual([0, expect.stringMatching(/^VERIFIED \d+ records$/)]);
    expect(result.auditVerify.map((v) => v.replica)).toEqual(['a', 'b']);
  }, 240_000);
});
