// Two manager replicas (real `drover manager start` processes) on one PostgreSQL database, 200
// simulated daemons split between them, a three-phase canary rollout; a replica is SIGKILLed in
// each phase and started again while its hosts turn to the other one, as a load balancer would
// send them (issue 12, decision 0038). The rollout completes, no host receives two commands for
// the deployment, and the one audit chain both replicas appended to verifies.
import { cp, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey } from '@drover/protocol';
import type { DeploymentStatus } from '@drover/protocol';
import { drover } from '../helpers/cli.js';
import { ManagerProcess, initManagerDir, publishRandomRelease } from '../helpers/manager-process.js';
import { skipWithoutServices } from '../helpers/services.js';
import { createTestDatabase } from '../../packages/manager/test/postgres-database.js';
import type { TestDatabase } from '../../packages/manager/test/postgres-database.js';
import { FleetSimulator, waitFor } from './fleet-simulator.js';

const skip = skipWithoutServices('the manager-replicas suite', 'postgres');
const HOSTS_PER_REPLICA = 100;

let dir = '';
let database: TestDatabase | undefined;
const running = new Set<ManagerProcess>();
let env: NodeJS.ProcessEnv = {};

beforeAll(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'drover-replicas-'));
  database = await createTestDatabase();
  env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir(), DROVER_DATABASE_URL: database.config.url };
}, 120_000);

afterAll(async () => {
  await Promise.all([...running].map((m) => m.stop(2_000)));
  await database?.dispose();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
}, 60_000);

async function start(name: string): Promise<ManagerProcess> {
  const manager = await ManagerProcess.start(join(dir, name), env);
  running.add(manager);
  void manager.exited.then(() => running.delete(manager));
  return manager;
}

async function http(url: string, method: 'GET' | 'POST', path: string, token: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const pool = new Pool(url, { connections: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });
  try {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await pool.request({ method, path, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.body.text();
    return { status: res.statusCode, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
  } finally {
    await pool.close();
  }
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
      // aborted at the end of the test
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

describe.skipIf(skip)('two manager replicas on one PostgreSQL database', () => {
  it('carry a three-phase rollout of 200 hosts through a SIGKILL of a replica in each phase: completed, no duplicate command, one audit chain that verifies', async () => {
    const releaseKey = Ed25519PrivateKey.generate();
    // Replica b is a copy of a's directory (the same keys, tokens and database); the artifacts are
    // shared as a bucket would share them.
    const { enrollmentToken, adminToken, deployToken } = await initManagerDir(join(dir, 'a'), releaseKey, env, { rolloutTickMs: 100 }, 2 * HOSTS_PER_REPLICA);
    await cp(join(dir, 'a'), join(dir, 'b'), { recursive: true });
    await rm(join(dir, 'b', 'blobs'), { recursive: true, force: true });
    await symlink(join(dir, 'a', 'blobs'), join(dir, 'b', 'blobs'));

    const managers: Record<'a' | 'b', ManagerProcess> = { a: await start('a'), b: await start('b') };
    await publishRandomRelease(managers.a.url, deployToken, releaseKey, '1.0.0');
    await publishRandomRelease(managers.b.url, deployToken, releaseKey, '2.0.0');
    const fleets = { a: new FleetSimulator(managers.a.url, { checkinEveryMs: 400 }), b: new FleetSimulator(managers.b.url, { checkinEveryMs: 400 }) };
    try {
      for (const fleet of Object.values(fleets)) await fleet.enroll(enrollmentToken, Array.from({ length: HOSTS_PER_REPLICA }, () => ({ installMs: 100 })));
      for (const fleet of Object.values(fleets)) fleet.start();
      const notified = await http(managers.a.url, 'POST', '/manager/v1/updates/notify', deployToken, {
        version: '2.0.0',
        strategy: 'canary',
        metadata: { rollout: { soakSeconds: 0.5, healthGraceSeconds: 0.3, targetDeadlineSeconds: 60 } },
      });
      expect(notified.status, JSON.stringify(notified.json)).toBe(200);
      const id = (notified.json as { deployment_id: string }).deployment_id;
      // Asked of either replica: both answer from the one database.
      const status = async (from: 'a' | 'b'): Promise<DeploymentStatus | undefined> => {
        const res = await http(managers[from].url, 'GET', `/manager/v1/updates/status?deployment_id=${id}`, adminToken).catch(() => undefined);
        return res?.status === 200 ? (res.json as DeploymentStatus) : undefined;
      };
      const kill = async (name: 'a' | 'b'): Promise<void> => {
        const other = name === 'a' ? 'b' : 'a';
        await managers[name].kill();
        await fleets[name].retarget(managers[other].url);
        managers[name] = await start(name);
        await fleets[name].retarget(managers[name].url);
      };
      const inPhase = (s: DeploymentStatus | undefined, phase: string): boolean => s?.canary_phase === phase && s.agents.some((a) => a.phase === phase && a.state !== 'pending');
      let stream: EventStream | undefined;
      for (const [phase, name] of [['10%', 'a'], ['30%', 'b'], ['100%', 'a']] as const) {
        const seen = await waitFor(`phase ${phase} under way`, async () => {
          const s = await status(name === 'a' ? 'b' : 'a');
          if (s?.completed_at !== null && s !== undefined) throw new Error(`the rollout ended (${s.status}) before phase ${phase}`);
          return inPhase(s, phase) ? s : undefined;
        }, 60_000);
        expect(seen.canary_phase).toBe(phase);
        await kill(name);
        // From the middle on, a watcher on replica b: it must see what either replica writes.
        if (name === 'b') stream = watchEvents(managers.b.url, deployToken, id);
      }
      const final = await waitFor('the rollout to complete', async () => {
        const s = await status('b');
        return s?.completed_at !== null && s !== undefined ? s : undefined;
      }, 60_000);
      expect(final.status).toBe('completed');
      expect(final.agents_updated).toBe(2 * HOSTS_PER_REPLICA);
      for (const host of [...fleets.a.hosts, ...fleets.b.hosts]) {
        const ids = host.received.filter((c) => c.deploymentId === id).map((c) => c.id);
        expect(new Set(ids).size, host.name).toBe(1);
        expect(host.version, host.name).toBe('2.0.0');
      }
      // The stream replica b served carries every event of the deployment, in order, whichever
      // replica made it (it polls the one database; events are written under the rollout lease).
      const seqs = await database?.seqs(id);
      await waitFor('the event stream to catch up', () => ((stream?.ids.at(-1) ?? 0) >= (seqs?.at(-1) ?? 0) ? true : undefined), 10_000);
      stream?.close();
      expect(stream?.ids).toEqual(seqs);
      // One chain in the database, appended to by both replicas, whichever directory asks.
      for (const name of ['a', 'b']) {
        const verified = await drover(['audit', 'verify', '--dir', join(dir, name)], { env });
        expect([verified.code, verified.stdout], verified.stderr).toEqual([0, expect.stringMatching(/^VERIFIED \d+ records/)]);
      }
    } finally {
      for (const fleet of Object.values(fleets)) await fleet.close();
    }
  }, 240_000);
});
