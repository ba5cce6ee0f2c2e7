// `drover manager migrate-store` (issue 12): a manager on its SQLite file runs a real canary
// rollout over a simulated fleet (the check-in protocol over HTTP), stops, and moves to an empty
// PostgreSQL database. Started again on it, the manager shows the same fleet and rollout, the
// hosts check in with the credentials they had, new rows continue the old ones, and the audit
// chain, still in the directory, verifies across the move. A database holding drover rows, and a
// directory already moved, are refused with nothing changed.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey } from '@drover/protocol';
import type { DeploymentStatus } from '@drover/protocol';
import { drover } from '../helpers/cli.js';
import { ManagerProcess, initManagerDir, publishRandomRelease } from '../helpers/manager-process.js';
import { skipWithoutServices, startServices } from '../helpers/services.js';
import type { Services } from '../helpers/services.js';
import { FleetSimulator, waitFor } from '../fleet/fleet-simulator.js';

const skip = skipWithoutServices('the migrate-store suite', 'postgres');
const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };

let dir = '';
let services: Services | undefined;
const running = new Set<ManagerProcess>();
const suffix = randomBytes(4).toString('hex');

function urlOf(database: string): string {
  const url = new URL(services?.postgres?.url ?? '');
  url.pathname = `/${database}`;
  return url.toString();
}

async function startManager(): Promise<ManagerProcess> {
  const manager = await ManagerProcess.start(join(dir, 'm'), env);
  running.add(manager);
  void manager.exited.then(() => running.delete(manager));
  return manager;
}

beforeAll(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'drover-migrate-store-'));
  services = await startServices('postgres');
  const admin = new pg.Client({ connectionString: services.postgres?.url });
  await admin.connect();
  try {
    for (const name of ['moved', 'busy']) await admin.query(`CREATE DATABASE ${name}_${suffix}`);
  } finally {
    await admin.end();
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([...running].map((manager) => manager.stop(2_000)));
  await services?.stop();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
}, 60_000);

describe.skipIf(skip)('drover manager migrate-store: SQLite to PostgreSQL', () => {
  it('moves a manager that ran a rollout; on PostgreSQL it shows the same fleet and rollout, its hosts check in with their credentials, and the audit chain verifies', async () => {
    let movedAt = 0;
    const releaseKey = Ed25519PrivateKey.generate();
    const { enrollmentToken, adminToken, deployToken } = await initManagerDir(join(dir, 'm'), releaseKey, env, { rolloutTickMs: 50 }, 10);
    const configPath = join(dir, 'm', 'manager.json');
    const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

    // On SQLite: two releases, four hosts, a canary rollout to 2.0.0 run to its end.
    let manager = await startManager();
    for (const version of ['1.0.0', '2.0.0']) await publishRandomRelease(manager.url, deployToken, releaseKey, version);
    const fleet = new FleetSimulator(manager.url, { checkinEveryMs: 30 });
    try {
      await fleet.enroll(enrollmentToken, Array.from({ length: 4 }, () => ({ installMs: 50 })));
      fleet.start();
      const notified = await manager.call('POST', '/manager/v1/updates/notify', bearer(deployToken), { version: '2.0.0', strategy: 'canary', metadata: { rollout: { soakSeconds: 0.3, healthGraceSeconds: 0.2, targetDeadlineSeconds: 30 } } });
      expect(notified.status).toBe(200);
      const id = (notified.json as { deployment_id: string }).deployment_id;
      const statusOn = async (m: ManagerProcess): Promise<DeploymentStatus> => (await m.call('GET', `/manager/v1/updates/status?deployment_id=${id}`, bearer(adminToken))).json as DeploymentStatus;
      const before = await waitFor('the rollout to complete on SQLite', async () => {
        const s = await statusOn(manager);
        return s.completed_at !== null ? s : undefined;
      }, 30_000);
      expect(before).toMatchObject({ status: 'completed', agents_updated: 4 });
      await fleet.stop();
      const agentsBefore = (await manager.call('GET', '/v1/agents', bearer(adminToken))).json as { agents: { agentId: string; agentVersion: string }[] };
      // Not while the manager runs: what it wrote after the copy would be lost.
      const whileRunning = await drover(['manager', 'migrate-store', '--dir', join(dir, 'm'), '--to', urlOf(`moved_${suffix}`)], { env });
      expect([whileRunning.code === 0, whileRunning.stderr]).toEqual([false, expect.stringContaining('MANAGER_RUNNING')]);
      expect(await manager.stop()).toBe(0);

      // A database that holds drover rows is refused, and nothing changes.
      const other = await drover(['manager', 'init', '--dir', join(dir, 'other'), '--database', urlOf(`busy_${suffix}`), '--json'], { env });
      expect(other.code, other.stderr).toBe(0);
      const configBefore = await readFile(configPath, 'utf8');
      const refused = await drover(['manager', 'migrate-store', '--dir', join(dir, 'm'), '--to', urlOf(`busy_${suffix}`)], { env });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('STORE_NOT_EMPTY');
      expect(await readFile(configPath, 'utf8')).toBe(configBefore);
      expect((await drover(['manager', 'migrate-store', '--help'], { env })).stdout).toContain('STORE_NOT_EMPTY');

      // The move.
      const moved = await drover(['manager', 'migrate-store', '--dir', join(dir, 'm'), '--to', urlOf(`moved_${suffix}`), '--json'], { env });
      expect(moved.code, moved.stderr).toBe(0);
      const report = JSON.parse(moved.stdout) as { rows: Record<string, number>; schemaVersion: number; database: { url: string } };
      expect(report.rows).toMatchObject({ agents: 4, deployments: 1, deployment_targets: 4, releases: 2, enrollment_tokens: 1 });
      expect(report.rows['commands']).toBeGreaterThanOrEqual(4);
      expect(report.rows['deployment_events']).toBeGreaterThan(0);
      expect(moved.stderr).toContain('copied agents: 4 row(s)');
      const movedConfig = JSON.parse(await readFile(configPath, 'utf8')) as { database?: { url: string } };
      expect(movedConfig.database?.url).toBe(report.database.url);
      expect((await stat(configPath)).mode & 0o777).toBe(0o600);
      const again = await drover(['manager', 'migrate-store', '--dir', join(dir, 'm'), '--to', urlOf(`busy_${suffix}`)], { env });
      expect([again.code === 0, again.stderr.includes('CONFIG_INVALID')]).toEqual([false, true]);

      // On PostgreSQL: the same fleet and rollout, and the hosts go on with their credentials.
      movedAt = Date.now();
      manager = await startManager();
      const after = await statusOn(manager);
      expect(after).toMatchObject({ status: before.status, agents_updated: before.agents_updated, completed_at: before.completed_at });
      expect(after.agents.map((a) => [a.agent_id, a.state]).sort()).toEqual(before.agents.map((a) => [a.agent_id, a.state]).sort());
      expect(after.events.length).toBe(before.events.length);
      const agentsAfter = (await manager.call('GET', '/v1/agents', bearer(adminToken))).json as { agents: { agentId: string; agentVersion: string }[] };
      expect(agentsAfter.agents.map((a) => [a.agentId, a.agentVersion]).sort()).toEqual(agentsBefore.agents.map((a) => [a.agentId, a.agentVersion]).sort());
      await fleet.retarget(manager.url);
      fleet.start();
      await fleet.checkInRounds(2);
      for (const host of fleet.hosts) expect(host.lastStatus).toBe(200);
      // New rows continue the copied ones: a second token, and its audit record on the same chain.
      const token = await drover(['enroll-token', 'create', '--manager', manager.url, '--token-file', join(dir, 'm', 'secrets', 'admin.token'), '--json'], { env });
      expect(token.code, token.stderr).toBe(0);
    } finally {
      await fleet.close();
    }
    expect(await manager.stop()).toBe(0);
    // The check-ins after the move went to PostgreSQL.
    const db = new pg.Client({ connectionString: urlOf(`moved_${suffix}`) });
    await db.connect();
    try {
      const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM agents WHERE last_checkin_at > $1', [movedAt]);
      expect(Number(rows[0]?.n)).toBe(4);
    } finally {
      await db.end();
    }
    // The file's chain was copied into the database at the first start there, and continued there
    // (decision 0038): the file stays as it was, and the database's chain is the longer one.
    const verified = await drover(['audit', 'verify', '--signers', join(dir, 'm', 'audit', 'signers.json'), join(dir, 'm', 'audit', 'audit.jsonl')], { env });
    expect([verified.code, verified.stdout]).toEqual([0, expect.stringMatching(/^VERIFIED \d+ records/)]);
    const inDatabase = await drover(['audit', 'verify', '--dir', join(dir, 'm')], { env });
    expect([inDatabase.code, inDatabase.stdout], inDatabase.stderr).toEqual([0, expect.stringMatching(/^VERIFIED \d+ records/)]);
    const count = (text: string): number => Number(/^VERIFIED (\d+) records/.exec(text)?.[1]);
    expect(count(inDatabase.stdout)).toBeGreaterThan(count(verified.stdout));
  }, 120_000);
});
