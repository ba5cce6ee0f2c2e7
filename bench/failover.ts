// bench/failover.ts: the failover scenario of issue 12 (test/fleet/replica-failover.ts): two
// manager replicas on one PostgreSQL database, --hosts simulated daemons (default 200) split
// between them, a three-phase canary rollout, the replica of each phase SIGKILLed and restarted.
// Prints one JSON line: whether the rollout completed, hosts with a duplicate command, the seconds
// from each SIGKILL until the other replica took the rollout lease (target: under 10), and whether
// the one audit chain verifies from both directories. With --channel-wait every host holds its
// check-in that many seconds (the command channel, decision 0041); --max-in-flight sets the
// rollout's batch (ten hosts at a time make a phase outlast a kill on the channel).
//
//   npm run bench:failover [-- --hosts 200 --checkin-ms 400 --database postgres://...]
//   npm run bench:failover -- --checkin-ms 60000 --channel-wait 50 --max-in-flight 10
//
// Without --database (or DROVER_TEST_DATABASE_URL), a throwaway PostgreSQL is started with
// scripts/services.sh and stopped after. Needs `npm run build` first (the replicas are the built
// `drover manager start`).
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { replicaFailover } from '../test/fleet/replica-failover.js';
import { startOwnPostgres } from '../test/helpers/services.js';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '200' },
    'checkin-ms': { type: 'string', default: '400' },
    'channel-wait': { type: 'string', default: '0' },
    'max-in-flight': { type: 'string' },
    database: { type: 'string' },
  },
});

const hosts = Number(values.hosts);
if (!Number.isSafeInteger(hosts) || hosts < 2 || hosts % 2 !== 0) {
  console.error('--hosts must be an even number of at least 2 (split between the two replicas)');
  process.exit(2);
}
const own = values.database === undefined && process.env['DROVER_TEST_DATABASE_URL'] === undefined ? await startOwnPostgres() : undefined;
const server = values.database ?? process.env['DROVER_TEST_DATABASE_URL'] ?? own?.url ?? '';
const name = `drover_failover_${randomBytes(6).toString('hex')}`;
const admin = new pg.Client({ connectionString: server });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(server);
url.pathname = `/${name}`;
const started = Date.now();
try {
  const maxInFlight = values['max-in-flight'] === undefined ? undefined : Number(values['max-in-flight']);
  const result = await replicaFailover({
    databaseUrl: url.toString(),
    hostsPerReplica: hosts / 2,
    checkinEveryMs: Number(values['checkin-ms']),
    channelWaitSeconds: Number(values['channel-wait']),
    ...(maxInFlight === undefined ? {} : { rollout: { maxInFlight } }),
  });
  const takeoverSeconds = Math.max(...result.takeoverSeconds);
  const auditVerified = result.auditVerify.every((v) => v.code === 0 && v.line.startsWith('VERIFIED'));
  const rolloutCompleted = result.final.status === 'completed' && result.hostsNotUpdated === 0;
  console.log(
    JSON.stringify({
      bench: 'failover',
      replicas: 2,
      hosts: result.hosts,
      phasesKilledIn: result.phasesKilledIn,
      rolloutCompleted,
      duplicateCommands: result.duplicateCommands,
      takeoverSeconds,
      takeoverSecondsEach: result.takeoverSeconds,
      channelWaitSeconds: Number(values['channel-wait']),
      rolloutSeconds: result.rolloutSeconds,
      deliverySeconds: result.deliverySeconds,
      movedHosts: result.movedHosts,
      checkinsSent: result.checkinsSent,
      redeliveredCommands: result.redeliveredCommands,
      eventsStreamedInOrder: result.streamedEventIds.join(',') === result.eventSeqs.join(','),
      auditVerified,
      auditRecords: Number(/VERIFIED (\d+)/.exec(result.auditVerify[0]?.line ?? '')?.[1] ?? 0),
      seconds: Number(((Date.now() - started) / 1000).toFixed(1)),
      target: { takeoverSeconds: 10 },
      meetsTarget: rolloutCompleted && result.duplicateCommands === 0 && takeoverSeconds < 10 && auditVerified,
      cpus: cpus().length,
      node: process.version,
    }),
  );
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
  await own?.stop();
}
