// A PostgreSQL database of its own for a manager suite that runs on both stores: created on the
// server test/helpers/services.ts gives (DROVER_TEST_DATABASE_URL, or a throwaway cluster started
// for the file), dropped after. `skipWithoutServices` decides first whether PostgreSQL is there.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startServices } from '../../../test/helpers/services.js';
import type { DatabaseConfig } from '../src/server/database.js';
import type { StateSnapshot, TestManager } from './harness.js';

export interface TestDatabase {
  /** For ManagerOptions.database. */
  config: DatabaseConfig;
  /** The seq of every event of a deployment, in order. */
  seqs(deploymentId: string): Promise<number[]>;
  /** Drops the database (its managers closed first) and stops what was started for it. */
  dispose(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const services = await startServices('postgres');
  const server = services.postgres?.url ?? '';
  const name = `drover_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    config: { url: url.toString() },
    seqs: async (deploymentId) => {
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      try {
        return (await client.query<{ seq: string }>('SELECT seq FROM deployment_events WHERE deployment_id = $1 ORDER BY seq', [deploymentId])).rows.map((row) => Number(row.seq));
      } finally {
        await client.end();
      }
    },
    dispose: async () => {
      const cleanup = new pg.Client({ connectionString: server });
      await cleanup.connect();
      try {
        await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await cleanup.end();
      }
      await services.stop();
    },
  };
}

/** Every row of every table of the manager's PostgreSQL database (through `client`), the audit chain included (decision 0038): snapshotState's twin. */
export async function snapshotPostgresState(m: TestManager, client: pg.Client): Promise<StateSnapshot> {
  await m.app.manager.context.store.ping(); // writes out buffered liveness first
  const tables: Record<string, string[]> = {};
  const names = await client.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1");
  for (const { name } of names.rows) {
    tables[name] = (await client.query(`SELECT * FROM "${name}"`)).rows.map((row) => JSON.stringify(row)).sort();
  }
  return { tables, audit: (await client.query<{ line: string }>('SELECT line FROM audit_chain ORDER BY seq')).rows.map((row) => `${row.line}\n`).join('') };
}
