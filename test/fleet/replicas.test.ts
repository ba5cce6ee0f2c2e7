// Two manager replicas (real `drover manager start` processes) on one PostgreSQL database, 200
// simulated daemons split between them, a three-phase canary rollout; a replica is SIGKILLed in
// each phase and started again while its hosts turn to the other one (issue 12, decision 0038,
// the scenario in replica-failover.ts). The rollout completes, no host receives two commands for
// the deployment, the other replica takes the rollout over at once, a watcher of one replica's
// event stream receives every event in order whichever replica made it, and the one audit chain
// both replicas appended to verifies from either directory. The same on the command channel
// (decision 0041, issue 16): every host holds its check-in and checks in only once a minute
// otherwise, so only the channel moves the rollout; the killed replica's hosts lose their held
// check-ins, check in again with the other replica and get their commands there.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithoutServices } from '../helpers/services.js';
import { createTestDatabase } from '../../packages/manager/test/postgres-database.js';
import type { TestDatabase } from '../../packages/manager/test/postgres-database.js';
import { replicaFailover } from './replica-failover.js';
import type { ReplicaFailoverResult } from './replica-failover.js';

const skip = skipWithoutServices('the manager-replicas suite', 'postgres');

let database: TestDatabase | undefined;

beforeAll(async () => {
  if (!skip) database = await createTestDatabase();
}, 120_000);

afterAll(async () => {
  await database?.dispose();
}, 60_000);

/** Another empty database on the same server, dropped after `fn`. */
async function withDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: database?.config.url ?? '' });
  await admin.connect();
  const name = `drover_test_${randomBytes(6).toString('hex')}`;
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(database?.config.url ?? '');
    url.pathname = `/${name}`;
    return await fn(url.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

/** What both variants must show: completed, every host updated once, quick takeovers, one event stream, one audit chain. */
function expectCarriedThrough(result: ReplicaFailoverResult): void {
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
}

function summary(result: ReplicaFailoverResult): string {
  const { rolloutSeconds, deliverySeconds, movedHosts, checkinsSent, redeliveredCommands, takeoverSeconds } = result;
  return JSON.stringify({ rolloutSeconds, deliverySeconds, movedHosts, checkinsSent, redeliveredCommands, takeoverSeconds });
}

describe.skipIf(skip)('two manager replicas on one PostgreSQL database', () => {
  it('carry a three-phase rollout of 200 hosts through a SIGKILL of a replica in each phase: completed, no duplicate command, one event stream, one audit chain that verifies', async () => {
    const result = await replicaFailover({ databaseUrl: database?.config.url ?? '', hostsPerReplica: 100, checkinEveryMs: 400 });
    expectCarriedThrough(result);
    console.info(`replicas, check-ins every 400 ms: ${summary(result)}`);
  }, 240_000);

  it('on the command channel (held check-ins, an interval of a minute): the killed replica\'s hosts check in again with the other and get their commands there; completed, no duplicate command', async () => {
    // Ten hosts at a time: a phase lasts several batches, so a kill lands with commands still to send.
    const result = await withDatabase((databaseUrl) => replicaFailover({ databaseUrl, hostsPerReplica: 100, checkinEveryMs: 60_000, channelWaitSeconds: 50, rollout: { maxInFlight: 10 } }));
    expectCarriedThrough(result);
    // In every phase, hosts of the killed replica got commands of the rollout from the other one.
    expect(result.movedHosts).toHaveLength(3);
    for (const moved of result.movedHosts) expect(moved).toBeGreaterThan(0);
    // No interval (a minute) and no held check-in's end (50 s) passed before any command arrived:
    // the channel carried each one, across replicas (NOTIFY) and across the kills.
    expect(result.deliverySeconds.max).toBeLessThan(20);
    console.info(`replicas on the channel: ${summary(result)}`);
  }, 240_000);
});
