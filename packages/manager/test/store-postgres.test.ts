// The Store contract (store-conformance.ts) on the PostgreSQL store, against a real server: the
// one DROVER_TEST_DATABASE_URL names, or a throwaway cluster scripts/services.sh starts for this
// file. Each test gets its own schema (dropped after); "another store on the same database" is a
// second pool, as a second replica would have. Then what only PostgreSQL has: migrations under an
// advisory lock, a bad password that no error repeats, an unreachable server.
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { skipWithoutServices, startServices } from '../../../test/helpers/services.js';
import type { Services } from '../../../test/helpers/services.js';
import { ManagerError } from '../src/errors.js';
import { redactDatabaseUrl } from '../src/store/postgres/connection.js';
import { postgresMigrations } from '../src/store/postgres/migrations.js';
import { PostgresStore } from '../src/store/postgres/store.js';
import { describeStoreConformance } from './store-conformance.js';

const skip = skipWithoutServices('the PostgreSQL store suite', 'postgres');

let services: Services | undefined;
let admin: pg.Pool | undefined;
let url = '';

const adminPool = (): pg.Pool => {
  if (admin === undefined) throw new Error('PostgreSQL did not start');
  return admin;
};

async function freshSchema(): Promise<string> {
  const schema = `drover_test_${randomBytes(6).toString('hex')}`;
  await adminPool().query(`CREATE SCHEMA ${schema}`);
  return schema;
}

beforeAll(async () => {
  if (skip) return;
  services = await startServices('postgres');
  url = services.postgres?.url ?? '';
  admin = new pg.Pool({ connectionString: url, max: 2 });
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await services?.stop();
}, 60_000);

describeStoreConformance(
  'PostgreSQL',
  async () => {
    const schema = await freshSchema();
    const options = { url, schema, poolSize: 4 };
    return {
      store: await PostgresStore.open(options),
      open: () => PostgresStore.open(options),
      addFutureMigration: async (version) => {
        await adminPool().query(`INSERT INTO ${schema}.schema_migrations (version, name, applied_at) VALUES ($1, 'future', 0)`, [version]);
      },
      dispose: async () => {
        await adminPool().query(`DROP SCHEMA ${schema} CASCADE`);
      },
    };
  },
  skip,
);

describe.skipIf(skip)('PostgresStore', () => {
  it('migrates once when several managers start together on an empty database, and records each migration', async () => {
    const schema = await freshSchema();
    try {
      const stores = await Promise.all([1, 2, 3].map(() => PostgresStore.open({ url, schema, poolSize: 2 })));
      try {
        expect(await stores[0]?.appliedMigrations()).toEqual(postgresMigrations.map((m) => m.version));
        const { rows } = await adminPool().query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.schema_migrations`);
        expect(rows[0]?.n).toBe(postgresMigrations.length);
        // Opening again runs nothing.
        expect(await stores[1]?.migrate()).toEqual([]);
      } finally {
        for (const store of stores) await store.close();
      }
    } finally {
      await adminPool().query(`DROP SCHEMA ${schema} CASCADE`);
    }
  });

  it('names the database without its password, and a bad password is in no error message', async () => {
    const role = `drover_pw_${randomBytes(4).toString('hex')}`;
    const right = `right-${randomBytes(8).toString('hex')}`;
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const pool = adminPool();
    // The throwaway cluster trusts 127.0.0.1: this role alone is made to present a password
    // (scram-sha-256), by a first line in pg_hba.conf, removed after.
    const hbaFile = (await pool.query<{ hba_file: string }>('SHOW hba_file')).rows[0]?.hba_file ?? '';
    const original = await readFile(hbaFile, 'utf8');
    const lines = [`host all ${role} 127.0.0.1/32 scram-sha-256`, ...original.split('\n')];
    const writeHba = async (content: string[]): Promise<void> => {
      await pool.query(`COPY (SELECT line FROM unnest($1::text[]) WITH ORDINALITY AS l(line, n) ORDER BY n) TO '${hbaFile}'`.replace('$1::text[]', `ARRAY[${content.map((l) => `'${l.replace(/'/g, "''")}'`).join(',')}]::text[]`));
      await pool.query('SELECT pg_reload_conf()');
    };
    await pool.query(`CREATE ROLE ${role} LOGIN PASSWORD '${right}'`);
    await writeHba(lines);
    try {
      const parsed = new URL(url);
      parsed.username = role;
      const withPassword = (password: string): string => {
        const u = new URL(parsed);
        u.password = password;
        return u.toString();
      };
      expect(redactDatabaseUrl(withPassword(wrong))).not.toContain(wrong);
      // The right password connects (the rule is in force), through the URL or the password option.
      const schema = await freshSchema();
      await pool.query(`GRANT ALL ON SCHEMA ${schema} TO ${role}`);
      for (const good of [{ url: parsed.toString(), password: right }, { url: withPassword(right) }]) {
        const store = await PostgresStore.open({ ...good, schema, poolSize: 1 });
        await store.ping();
        await store.close();
      }
      await pool.query(`DROP SCHEMA ${schema} CASCADE`);
      for (const attempt of [() => PostgresStore.open({ url: withPassword(wrong), poolSize: 1 }), () => PostgresStore.open({ url: parsed.toString(), password: wrong, poolSize: 1 })]) {
        let caught: unknown;
        try {
          await attempt();
        } catch (error) {
          caught = error;
        }
        expect(caught).toBeInstanceOf(ManagerError);
        expect((caught as ManagerError).code).toBe('STORE_UNAVAILABLE');
        const everything = `${String(caught)} ${(caught as Error).stack ?? ''} ${JSON.stringify(caught)} ${JSON.stringify((caught as Error).cause ?? null)}`;
        expect(everything).toContain('28P01');
        expect(everything).not.toContain(wrong);
        expect(everything).not.toContain(withPassword(wrong));
      }
    } finally {
      await writeHba(original.split('\n'));
      await pool.query(`DROP ROLE ${role}`);
    }
  });

  it('replaces connections the server terminated and retries the call, so a restart of a backend is invisible', async () => {
    const schema = await freshSchema();
    const store = await PostgresStore.open({ url, schema, poolSize: 3 });
    try {
      await Promise.all([store.setMeta('a', '1'), store.setMeta('b', '2'), store.getMeta('a')]);
      const killed = await adminPool().query<{ n: number }>(
        "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = 'drover-manager' AND datname = current_database() AND pid <> pg_backend_pid()",
      );
      expect(killed.rows[0]?.n).toBeGreaterThan(0);
      // Every pooled connection is dead now: the calls reconnect (a lost connection is retried) and succeed.
      expect(await Promise.all([store.getMeta('a'), store.getMeta('b')])).toEqual(['1', '2']);
      await store.setMeta('c', '3');
      expect(await store.getMeta('c')).toBe('3');
      await store.ping();
    } finally {
      await store.close();
      await adminPool().query(`DROP SCHEMA ${schema} CASCADE`);
    }
  });

  it('bounds every statement by the statement timeout: a write stuck behind a lock answers STORE_UNAVAILABLE and changes nothing', async () => {
    const schema = await freshSchema();
    const store = await PostgresStore.open({ url, schema, poolSize: 2, statementTimeoutMs: 300 });
    const holder = await adminPool().connect();
    try {
      await store.setMeta('k', 'before');
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM ${schema}.meta WHERE key = 'k' FOR UPDATE`);
      const started = Date.now();
      await expectRejection(store.setMeta('k', 'after'), ManagerError, 'STORE_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(5_000);
      await holder.query('ROLLBACK');
      expect(await store.getMeta('k')).toBe('before');
    } finally {
      holder.release();
      await store.close();
      await adminPool().query(`DROP SCHEMA ${schema} CASCADE`);
    }
  });

  it('answers STORE_UNAVAILABLE, naming the database without its password, when the server cannot be reached', async () => {
    const secret = `s3cret-${randomBytes(6).toString('hex')}`;
    const unreachable = `postgres://drover:${secret}@127.0.0.1:1/drover`;
    let caught: unknown;
    try {
      await PostgresStore.open({ url: unreachable, connectTimeoutMs: 1000, maxAttempts: 2 });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ManagerError);
    expect((caught as ManagerError).code).toBe('STORE_UNAVAILABLE');
    expect((caught as Error).message).toContain('postgres://drover@127.0.0.1:1/drover');
    expect(`${(caught as Error).message} ${(caught as Error).stack ?? ''}`).not.toContain(secret);
    await expectRejection(PostgresStore.open({ url: 'mysql://x@y/z' }), ManagerError, 'CONFIG_INVALID');
  });

  it('leases: one holder at a time across stores, a dead holder lets go at once, and a write fenced with an older token is refused', async () => {
    const schema = await freshSchema();
    const [a, b] = await Promise.all([PostgresStore.open({ url, schema, poolSize: 3 }), PostgresStore.open({ url, schema, poolSize: 3 })]);
    const outbox = async (): Promise<number> => (await adminPool().query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.audit_outbox`)).rows[0]?.n ?? -1;
    try {
      const first = await a.lease('rollouts', { wait: false, holder: 'a' });
      expect(first?.token).toBe(1);
      // Held: another store does not get it, whether it asks once or waits briefly.
      expect(await b.lease('rollouts', { wait: false, holder: 'b' })).toBeUndefined();
      await expectRejection(b.lease('rollouts', { wait: true, waitMs: 300, holder: 'b' }), ManagerError, 'LEASE_BUSY');
      // A waiting store gets it as soon as the holder lets go.
      const waiting = b.lease('rollouts', { wait: true, holder: 'b' });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await first?.release();
      const second = await waiting;
      expect(second?.token).toBe(2);
      // A write fenced with the current token goes through.
      await b.writeRollout({ audit: [{ body: '{"event":"fenced.ok"}' }], fence: { name: 'rollouts', token: 2 } });
      expect(await outbox()).toBe(1);
      // The holder's session ends (as when its process is killed): the lease is free at once.
      await adminPool().query(`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
      const third = await a.lease('rollouts', { wait: true, waitMs: 2000, holder: 'a' });
      expect(third?.token).toBe(3);
      await expect.poll(() => second?.lost, { timeout: 5000 }).toBe(true);
      // The old holder's late write is refused, and nothing of it is written.
      await expectRejection(b.writeRollout({ audit: [{ body: '{"event":"fenced.stale"}' }], fence: { name: 'rollouts', token: 2 } }), ManagerError, 'LEASE_LOST');
      await expectRejection(
        b.createDeployment({ id: 'never' } as never, [], [], [], [{ body: '{"event":"fenced.stale"}' }], { name: 'rollouts', token: 2 }),
        ManagerError,
        'LEASE_LOST',
      );
      expect(await outbox()).toBe(1);
      await second?.release(); // a lost lease lets go without an error
      await third?.release();
      await third?.release(); // idempotent
      expect((await b.lease('rollouts', { wait: false, holder: 'b' }))?.token).toBe(4);
    } finally {
      await a.close();
      await b.close();
      await adminPool().query(`DROP SCHEMA ${schema} CASCADE`);
    }
  });

  it('leases: a replica that stalls holding the lease loses it within about 10 s, and its write after waking is refused', async () => {
    const schema = await freshSchema();
    const store = await PostgresStore.open({ url, schema, poolSize: 2 });
    const holder = spawn(process.execPath, [fileURLToPath(new URL('../../../test/fixtures/lease-holder.mjs', import.meta.url)), url, schema], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: holder.stdout })[Symbol.asyncIterator]();
    const next = async (): Promise<Record<string, unknown>> => JSON.parse(String((await lines.next()).value)) as Record<string, unknown>;
    try {
      const { token } = await next();
      expect(token).toBe(1);
      expect(await store.lease('rollouts', { wait: false, holder: 'b' })).toBeUndefined();
      // Stalled: no heartbeat, its session idle; the server ends it, and the lease is free.
      holder.kill('SIGSTOP');
      const stalledAt = Date.now();
      let taken: Awaited<ReturnType<PostgresStore['lease']>>;
      do {
        await new Promise((resolve) => setTimeout(resolve, 250));
        taken = await store.lease('rollouts', { wait: false, holder: 'b' });
      } while (taken === undefined && Date.now() - stalledAt < 20_000);
      expect(taken?.token).toBe(2);
      expect(Date.now() - stalledAt).toBeLessThan(15_000);
      // Awake again, it tries the write it was about to make: refused, nothing written.
      holder.kill('SIGCONT');
      holder.stdin.write('write\n');
      expect(await next()).toEqual({ code: 'LEASE_LOST' });
      expect((await adminPool().query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.audit_outbox`)).rows[0]?.n).toBe(0);
      await taken?.release();
    } finally {
      holder.kill('SIGKILL');
      await store.close();
      await adminPool().query(`DROP SCHEMA ${schema} CASCADE`);
    }
  }, 40_000);

  it('audit chain: starts no chain beside one still kept in a file (its head in meta), and chains in order once it is there', async () => {
    const schema = await freshSchema();
    const store = await PostgresStore.open({ url, schema, poolSize: 2 });
    try {
      await store.appendAudit([{ body: '{"event":"waiting"}' }]);
      await store.setMeta('audit.head', JSON.stringify({ seq: 7, hash: 'a'.repeat(64) }));
      const build = (last: string | undefined, rows: readonly { id: number; body: string }[]): Promise<{ lines: { seq: number; line: string }[]; head: string }> => {
        const start = last === undefined ? 1 : (JSON.parse(last) as { seq: number }).seq + 1;
        const lines = rows.map((row, i) => ({ seq: start + i, line: JSON.stringify({ seq: start + i, body: row.body }) }));
        return Promise.resolve({ lines, head: JSON.stringify({ seq: start + rows.length - 1 }) });
      };
      await expectRejection(store.chainAuditOutbox(32, build, 'audit.head'), ManagerError, 'AUDIT_UNAVAILABLE');
      expect(await store.readAuditChain(0, 10)).toEqual([]);
      // The file's chain copied in: appends continue it.
      const fileLines = (async function* () {
        for (const seq of [1, 2, 3, 4, 5, 6, 7]) yield await Promise.resolve({ seq, line: JSON.stringify({ seq }) });
      })();
      const imported = await store.importAuditChain(fileLines, 'audit.head', JSON.stringify({ seq: 7 }));
      expect(imported).toBe(true);
      expect(await store.chainAuditOutbox(32, build, 'audit.head')).toBe(1);
      expect((await store.readAuditChain(0, 100)).map((l) => l.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      // The audit read API pages backwards: the last lines below a seq.
      expect((await store.readAuditChain(0, 3, { latest: true, before: 6 })).map((l) => l.seq)).toEqual([3, 4, 5]);
      expect(await store.listAuditOutbox(10)).toEqual([]);
    } finally {
      await store.close();
      await adminPool().query(`DROP SCHEMA ${schema} CASCADE`);
    }
  });
});
