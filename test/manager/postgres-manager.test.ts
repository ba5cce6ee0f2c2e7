// The manager on PostgreSQL as operators run it (issue 12): `drover manager init --database
// postgres://...` (the password moved out of manager.json), `drover manager migrate` on a current
// and an empty database, a real `drover manager start` that enrolls and checks in, a restart that
// keeps the agent, a database migrated by a newer drover refused at migrate and at start, and, with
// the PostgreSQL server stopped under the running manager, /readyz and a check-in answering 503
// STORE_UNAVAILABLE. The database password appears in nothing any process printed.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnrollResponse } from '@drover/protocol';
import { drover } from '../helpers/cli.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import { skipWithoutServices, startOwnPostgres } from '../helpers/services.js';
import { enrollBody } from '../../packages/manager/test/harness.js';

const skip = skipWithoutServices('the manager-on-PostgreSQL suite', 'postgres');

let dir = '';
let postgres: Awaited<ReturnType<typeof startOwnPostgres>> | undefined;
const running = new Set<ManagerProcess>();
const printed: string[] = [];
const password = `pw-${randomBytes(9).toString('hex')}`;
const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };

async function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const result = await drover(args, { env: { ...env, ...extraEnv } });
  printed.push(result.stdout, result.stderr);
  return result;
}

async function startManager(extraEnv: Record<string, string> = {}): Promise<ManagerProcess> {
  const manager = await ManagerProcess.start(join(dir, 'm'), { ...env, ...extraEnv });
  running.add(manager);
  void manager.exited.then(() => {
    running.delete(manager);
    printed.push(manager.output());
  });
  return manager;
}

/** The URL of `database` on the suite's server, with the password in it. */
function urlOf(database: string): string {
  const url = new URL(postgres?.url ?? '');
  url.password = password;
  url.pathname = `/${database}`;
  return url.toString();
}

beforeAll(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'drover-pg-manager-'));
  postgres = await startOwnPostgres();
  const admin = new pg.Client({ connectionString: postgres.url });
  await admin.connect();
  try {
    await admin.query('CREATE DATABASE fleet');
    await admin.query('CREATE DATABASE spare');
  } finally {
    await admin.end();
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([...running].map((manager) => manager.stop(2_000)));
  await postgres?.stop();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
}, 60_000);

describe.skipIf(skip)('drover manager on PostgreSQL', () => {
  it('inits on a database, migrates, enrolls and checks in across a restart, refuses a newer schema, and answers 503 STORE_UNAVAILABLE once the database is gone', async () => {
    // init: connected and migrated first; manager.json keeps the URL without the password.
    const init = await cli(['manager', 'init', '--dir', join(dir, 'm'), '--database', urlOf('fleet'), '--json']);
    expect(init.code, init.stderr).toBe(0);
    const created = JSON.parse(init.stdout) as { enrollmentToken: string; files: Record<string, string> };
    const config = JSON.parse(await readFile(join(dir, 'm', 'manager.json'), 'utf8')) as { database: { url: string; passwordFile: string } };
    expect(config.database).toEqual({ url: urlOf('fleet').replace(`:${password}@`, '@'), passwordFile: 'secrets/database.password' });
    expect((await readFile(join(dir, 'm', 'secrets', 'database.password'), 'utf8')).trim()).toBe(password);
    expect((await stat(join(dir, 'm', 'secrets', 'database.password'))).mode & 0o777).toBe(0o600);
    expect(created.files['database']).toBe(config.database.url);

    // migrate: nothing on the database init made; all five on an empty one (DROVER_DATABASE_URL wins).
    const current = await cli(['manager', 'migrate', '--dir', join(dir, 'm')]);
    expect(current.code, current.stderr).toBe(0);
    expect(current.stdout).toContain('schema current: nothing to apply');
    expect(current.stdout).toContain('schema version 6');
    const spare = await cli(['manager', 'migrate', '--dir', join(dir, 'm'), '--json'], { DROVER_DATABASE_URL: urlOf('spare') });
    expect(spare.code, spare.stderr).toBe(0);
    expect(JSON.parse(spare.stdout)).toMatchObject({ store: 'postgres', database: urlOf('spare').replace(`:${password}@`, '@'), applied: [{ version: 1 }, { version: 2 }, { version: 3 }, { version: 4 }, { version: 5 }, { version: 6 }], version: 6 });
    expect((await cli(['manager', 'migrate', '--help'])).stdout).toContain('STORE_SCHEMA_TOO_NEW');

    // A real manager: enroll, check in, ready.
    let manager = await startManager();
    const machineId = createHash('sha256').update(randomBytes(8)).digest('hex');
    const enrolled = await manager.call('POST', '/v1/agents/enroll', { 'x-machine-id': machineId }, enrollBody(created.enrollmentToken, machineId, { inventory: {} }));
    expect(enrolled.status).toBe(200);
    const agent = enrolled.json as EnrollResponse;
    const checkin = (m: ManagerProcess): Promise<{ status: number; json: unknown }> =>
      m.call(
        'POST',
        `/v1/agents/${agent.agentId}/checkin`,
        { authorization: `Bearer ${agent.credential}`, 'x-machine-id': machineId, 'x-agent-version': '1.0.0', 'x-daemon-version': '0.5.0' },
        { state: { agentVersion: '1.0.0', daemonVersion: '0.5.0' }, health: { status: 'healthy', version: '1.0.0', busy: false }, acks: [], results: [] },
      );
    expect((await checkin(manager)).status).toBe(200);
    expect(await manager.call('GET', '/readyz', {})).toEqual({ status: 200, json: { status: 'ready' } });
    expect(manager.output()).toContain('"store":"postgres"');
    expect(await manager.stop()).toBe(0);

    // A database a newer drover migrated: migrate and start both refuse it, and change nothing.
    const spareDb = new pg.Client({ connectionString: urlOf('spare') });
    await spareDb.connect();
    await spareDb.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'from the future', 0)");
    await spareDb.end();
    const refused = await cli(['manager', 'migrate', '--dir', join(dir, 'm')], { DROVER_DATABASE_URL: urlOf('spare') });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('STORE_SCHEMA_TOO_NEW');
    await expect(startManager({ DROVER_DATABASE_URL: urlOf('spare') })).rejects.toThrow(/STORE_SCHEMA_TOO_NEW/);

    // Restarted on its own database: the agent is still enrolled.
    manager = await startManager();
    expect((await checkin(manager)).status).toBe(200);

    // The database goes away under the running manager: not ready, and a check-in is a 503, never a 500.
    await postgres?.stop();
    postgres = undefined;
    const readyz = await manager.call('GET', '/readyz', {});
    expect(readyz).toMatchObject({ status: 503, json: { error: { code: 'STORE_UNAVAILABLE' } } });
    expect(JSON.stringify(readyz.json)).not.toContain(password);
    expect(await checkin(manager)).toMatchObject({ status: 503, json: { error: { code: 'STORE_UNAVAILABLE' } } });
    await manager.stop(5_000);

    // The password is in no line any process printed.
    const everything = printed.join('\n');
    expect(everything).toContain('STORE_UNAVAILABLE');
    expect(everything).not.toContain(password);
  }, 120_000);
});
