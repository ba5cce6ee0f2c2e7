// The failover scenario of issue 12, shared by test/fleet/replicas.test.ts (which asserts on it)
// and bench/failover.ts (which prints it): two manager replicas (real `drover manager start`
// processes, copies of one directory) on one PostgreSQL database, simulated daemons split between
// them, a three-phase canary rollout, and the replica named for each phase SIGKILLed once the phase
// is under way and started again, its hosts sent to the other replica meanwhile, as a load
// balancer would. Decision 0038. With `channelWaitSeconds` every host holds its check-in (the
// command channel, decision 0041): a killed replica's held check-ins fail and its hosts check in
// again, after droverd's backoff, with the other one.
import { cp, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Pool } from 'undici';
import { Ed25519PrivateKey } from '@drover/protocol';
import type { DeploymentStatus } from '@drover/protocol';
import { drover } from '../helpers/cli.js';
import { ManagerProcess, initManagerDir, publishRandomRelease } from '../helpers/manager-process.js';
import { FleetSimulator, waitFor } from './fleet-simulator.js';

type Replica = 'a' | 'b';

export interface ReplicaFailoverOptions {
  /** The database both replicas use (it must exist and be empty). */
  databaseUrl: string;
  hostsPerReplica: number;
  checkinEveryMs: number;
  /** The replica killed in each phase, in phase order (the canary phases are 10%, 30%, 100%). */
  kills?: readonly Replica[];
  /** Seconds each host asks the manager to hold its check-in (the command channel); absent or 0: plain check-ins. */
  channelWaitSeconds?: number;
  /** The deployment's `metadata.rollout`, over this scenario's (soak 0.5 s, health grace 0.3 s, target deadline 60 s). */
  rollout?: Record<string, number>;
}

export interface ReplicaFailoverResult {
  deploymentId: string;
  /** Each phase name seen under way when its replica was killed. */
  phasesKilledIn: string[];
  final: DeploymentStatus;
  /** Hosts that received more than one command for the deployment. */
  duplicateCommands: number;
  /** Hosts not at the new version at the end. */
  hostsNotUpdated: number;
  hosts: number;
  /** Seconds from each SIGKILL until the other replica took the rollout lease. */
  takeoverSeconds: number[];
  /** For each kill: hosts of the killed replica that received a command of the deployment through the other replica while theirs was down. */
  movedHosts: number[];
  /** Seconds from the notification until the rollout completed (the manager's completed_at). */
  rolloutSeconds: number;
  /** Seconds from each command's write (its created_at) until its host first received it: the median and the longest. */
  deliverySeconds: { median: number; max: number };
  /** Check-ins the hosts sent, answered or not. */
  checkinsSent: number;
  /** Commands of the deployment the manager sent more than once (an answer lost on the way: cut by a kill or a retarget). */
  redeliveredCommands: number;
  /** Event ids a watcher of replica b received (from b's first restart on), and the database's event seqs. */
  streamedEventIds: number[];
  eventSeqs: number[];
  /** `drover audit verify --dir` of each replica's directory: its exit code and first line. */
  auditVerify: { replica: Replica; code: number | null; line: string }[];
}

interface EventStream {
  ids: number[];
  close(): void;
}

// A server-sent events watcher of one deployment: the ids of its `deployment` events, as received.
function watchEvents(url: string, token: string, deploymentId: string): EventStream {
  const ids: number[] = [];
  const controller = new AbortController();
  void (async () => {
    const pool = new Pool(url, { connections: 1 });
    try {
      const res = await pool.request({ method: 'GET', path: `/manager/v1/updates/events?deployment_id=${deploymentId}`, headers: { authorization: `Bearer ${token}` }, signal: controller.signal, bodyTimeout: 0 });
      let buffered = '';
      for await (const chunk of res.body) {
        buffered += (chunk as Buffer).toString('utf8');
        const frames = buffered.split('\n\n');
        buffered = frames.pop() ?? '';
        for (const frame of frames) {
          const id = /^id: (\d+)$/m.exec(frame);
          if (id?.[1] !== undefined && frame.includes('event: deployment')) ids.push(Number(id[1]));
        }
      }
    } catch {
      // aborted at the end
    } finally {
      await pool.destroy();
    }
  })();
  return {
    ids,
    close: () => {
      controller.abort();
    },
  };
}

/** Runs the scenario to the end of the rollout; every process it started is stopped before it returns. */
export async function replicaFailover(options: ReplicaFailoverOptions): Promise<ReplicaFailoverResult> {
  const dir = await mkdtemp(join(tmpdir(), 'drover-replicas-'));
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir(), DROVER_DATABASE_URL: options.databaseUrl };
  const db = new pg.Client({ connectionString: options.databaseUrl });
  await db.connect();
  const running = new Set<ManagerProcess>();
  const start = async (name: Replica): Promise<ManagerProcess> => {
    const manager = await ManagerProcess.start(join(dir, name), env);
    running.add(manager);
    void manager.exited.then(() => running.delete(manager));
    return manager;
  };
  let fleets: Record<Replica, FleetSimulator> | undefined;
  let stream: EventStream | undefined;
  try {
    const releaseKey = Ed25519PrivateKey.generate();
    // Replica b is a copy of a's directory (the same keys, tokens and database); the artifacts are
    // shared as a bucket would share them.
    const { enrollmentToken, adminToken, deployToken } = await initManagerDir(join(dir, 'a'), releaseKey, env, { rolloutTickMs: 100 }, 2 * options.hostsPerReplica);
    await cp(join(dir, 'a'), join(dir, 'b'), { recursive: true });
    await rm(join(dir, 'b', 'blobs'), { recursive: true, force: true });
    await symlink(join(dir, 'a', 'blobs'), join(dir, 'b', 'blobs'));

    const managers: Record<Replica, ManagerProcess> = { a: await start('a'), b: await start('b') };
    await publishRandomRelease(managers.a.url, deployToken, releaseKey, '1.0.0');
    await publishRandomRelease(managers.b.url, deployToken, releaseKey, '2.0.0');
    const fleetOptions = { checkinEveryMs: options.checkinEveryMs, channelWaitSeconds: options.channelWaitSeconds ?? 0 };
    fleets = { a: new FleetSimulator(managers.a.url, fleetOptions), b: new FleetSimulator(managers.b.url, fleetOptions) };
    for (const fleet of Object.values(fleets)) await fleet.enroll(enrollmentToken, Array.from({ length: options.hostsPerReplica }, () => ({ installMs: 100 })));
    for (const fleet of Object.values(fleets)) fleet.start();
    const notifiedAt = Date.now();
    const notified = await managers.a.call('POST', '/manager/v1/updates/notify', { authorization: `Bearer ${deployToken}` }, {
      version: '2.0.0',
      strategy: 'canary',
      metadata: { rollout: { soakSeconds: 0.5, healthGraceSeconds: 0.3, targetDeadlineSeconds: 60, ...options.rollout } },
    });
    if (notified.status !== 200) throw new Error(`notify: HTTP ${notified.status} ${JSON.stringify(notified.json)}`);
    const deploymentId = (notified.json as { deployment_id: string }).deployment_id;
    // Asked of either replica: both answer from the one database.
    const status = async (from: Replica): Promise<DeploymentStatus | undefined> => {
      const res = await managers[from].call('GET', `/manager/v1/updates/status?deployment_id=${deploymentId}`, { authorization: `Bearer ${adminToken}` }).catch(() => undefined);
      return res?.status === 200 ? (res.json as DeploymentStatus) : undefined;
    };
    const takeoverSeconds: number[] = [];
    const movedHosts: number[] = [];
    const kill = async (name: Replica): Promise<void> => {
      const other: Replica = name === 'a' ? 'b' : 'a';
      const killed = `:${managers[name].pid}`;
      await managers[name].kill();
      const killedAt = Date.now();
      await fleets?.[name].retarget(managers[other].url);
      // Taken over: the lease row names another holder, taken after the kill.
      const taken = await waitFor('another replica to take the rollout lease', async () => {
        const { rows } = await db.query<{ holder: string; acquired_at: string }>("SELECT holder, acquired_at FROM leases WHERE name = 'rollouts'");
        const row = rows[0];
        return row !== undefined && !row.holder.endsWith(killed) && Number(row.acquired_at) >= killedAt ? Number(row.acquired_at) : undefined;
      }, 30_000, 10);
      takeoverSeconds.push(Math.max(0, taken - killedAt) / 1000);
      // Hosts of the killed replica that got a command of the rollout from the other one since the kill.
      const otherUrl = managers[other].url;
      const moved = (): number =>
        (fleets?.[name].hosts ?? []).filter((host) => host.received.some((c) => c.deploymentId === deploymentId && c.via === otherUrl && c.receivedAt >= killedAt)).length;
      // On the channel it stays down until one has (for at most 20 s; the count says whether one
      // did): a batch of the phase goes quicker than a restart, which would otherwise find every
      // moved host without a command yet and take them back.
      if ((options.channelWaitSeconds ?? 0) > 0) {
        await waitFor('a host of the killed replica to get a command through the other one', () => (moved() > 0 ? true : undefined), 20_000).catch(() => undefined);
      }
      movedHosts.push(moved());
      managers[name] = await start(name);
      // New check-ins go to it again; those held by the other replica stay there until answered.
      await fleets?.[name].retarget(managers[name].url, { drain: true });
    };
    const phasesKilledIn: string[] = [];
    const inPhase = (s: DeploymentStatus | undefined, phase: string): boolean => s?.canary_phase === phase && s.agents.some((a) => a.phase === phase && a.state !== 'pending');
    const kills = options.kills ?? ['a', 'b', 'a'];
    for (const [i, phase] of ['10%', '30%', '100%'].entries()) {
      const name = kills[i] ?? 'a';
      const seen = await waitFor(`phase ${phase} under way`, async () => {
        const s = await status(name === 'a' ? 'b' : 'a');
        if (s?.completed_at !== null && s !== undefined) throw new Error(`the rollout ended (${s.status}) before phase ${phase}`);
        return inPhase(s, phase) ? s : undefined;
      }, 60_000);
      phasesKilledIn.push(seen.canary_phase ?? '');
      await kill(name);
      // From the middle on, a watcher on replica b: it must see what either replica writes.
      if (name === 'b') stream ??= watchEvents(managers.b.url, deployToken, deploymentId);
    }
    stream ??= watchEvents(managers.b.url, deployToken, deploymentId);
    const final = await waitFor('the rollout to complete', async () => {
      const s = await status('b');
      return s?.completed_at !== null && s !== undefined ? s : undefined;
    }, 90_000);
    const rolloutSeconds = (Date.parse(final.completed_at ?? '') - notifiedAt) / 1000;
    const eventSeqs = (await db.query<{ seq: string }>('SELECT seq FROM deployment_events WHERE deployment_id = $1 ORDER BY seq', [deploymentId])).rows.map((row) => Number(row.seq));
    await waitFor('the event stream to catch up', () => ((stream?.ids.at(-1) ?? 0) >= (eventSeqs.at(-1) ?? 0) ? true : undefined), 10_000);
    const hosts = [...fleets.a.hosts, ...fleets.b.hosts];
    const commands = (await db.query<{ id: string; created_at: string; delivered_count: number }>('SELECT id, created_at, delivered_count FROM commands WHERE deployment_id = $1', [deploymentId])).rows;
    const written = new Map(commands.map((row) => [row.id, Number(row.created_at)]));
    const delays = hosts
      .flatMap((host) => host.received.filter((c) => c.deploymentId === deploymentId).map((c) => (c.receivedAt - (written.get(c.id) ?? c.receivedAt)) / 1000))
      .sort((x, y) => x - y);
    const auditVerify: ReplicaFailoverResult['auditVerify'] = [];
    for (const replica of ['a', 'b'] as const) {
      const verified = await drover(['audit', 'verify', '--dir', join(dir, replica)], { env });
      auditVerify.push({ replica, code: verified.code, line: (verified.stdout.split('\n')[0] ?? '') + verified.stderr });
    }
    return {
      deploymentId,
      phasesKilledIn,
      final,
      duplicateCommands: hosts.filter((host) => new Set(host.received.filter((c) => c.deploymentId === deploymentId).map((c) => c.id)).size > 1).length,
      hostsNotUpdated: hosts.filter((host) => host.version !== '2.0.0').length,
      hosts: hosts.length,
      takeoverSeconds,
      movedHosts,
      rolloutSeconds,
      deliverySeconds: { median: delays[Math.floor(delays.length / 2)] ?? 0, max: delays.at(-1) ?? 0 },
      checkinsSent: hosts.reduce((sum, host) => sum + host.sent, 0),
      redeliveredCommands: commands.filter((row) => row.delivered_count > 1).length,
      streamedEventIds: [...stream.ids],
      eventSeqs,
      auditVerify,
    };
  } finally {
    stream?.close();
    if (fleets !== undefined) for (const fleet of Object.values(fleets)) await fleet.close();
    await Promise.all([...running].map((m) => m.stop(5_000)));
    await db.end();
    await rm(dir, { recursive: true, force: true });
  }
}
