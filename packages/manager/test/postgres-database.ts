// A PostgreSQL database of its own for a manager suite that runs on both stores: created on the
// server test/helpers/services.ts gives (DROVER_TEST_DATABASE_URL, or a throwaway cluster started
// for the file), dropped after. `skipWithoutServices` decides first whether PostgreSQL is there.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startServices } from '../../../test/helpers/services.js';
import type { DatabaseConfig } from '../src/server/database.js';

export interface TestDatabase {
  /** For ManagerOptions.database. */
  config: DatabaseConfig;
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
