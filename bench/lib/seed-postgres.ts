// Seeding a bench database on PostgreSQL in bulk: 100,000 agents one enrollment transaction at a
// time would take minutes, so the rows enrollAgent writes are inserted in batches (what a bench
// measures is what comes after enrollment). The schema comes from opening the store (migrations).
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Fernet } from '@drover/protocol/internal';
import { hashSecret, newSecret } from '../../packages/manager/src/secrets.js';
import type { SeededAgent } from './seed-agents.js';

const BATCH = 5_000;

/** Inserts `count` enrolled agents (ids `agent-<16 hex>`) at `agentVersion`/`daemonVersion` into the database at `url`. */
export async function seedAgentsInPostgres(url: string, fernet: Fernet, count: number, versions: { agentVersion: string; daemonVersion: string }): Promise<SeededAgent[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const agents: SeededAgent[] = [];
  const now = Date.now();
  try {
    for (let start = 0; start < count; start += BATCH) {
      const rows: { id: string; machineId: string; hostname: string; credentialHash: string; token: string }[] = [];
      for (let i = start; i < Math.min(count, start + BATCH); i += 1) {
        const credential = newSecret();
        const agent = { id: `agent-${i.toString(16).padStart(16, '0')}`, credential, machineId: createHash('sha256').update(randomBytes(16)).digest('hex') };
        agents.push(agent);
        rows.push({ id: agent.id, machineId: agent.machineId, hostname: `host-${i}`, credentialHash: hashSecret(credential), token: fernet.encrypt(newSecret()) });
      }
      await client.query(
        `INSERT INTO agents (id, machine_id, hostname, platform, arch, agent_version, daemon_version, credential_hash, service_token_enc, enrolled_at, credential_issued_at, inventory_json)
         SELECT id, machine_id, hostname, 'linux-x64', 'x64', $6, $7, credential_hash, token, $8, $8, '{"os":{"platform":"linux"}}'
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS r(id, machine_id, hostname, credential_hash, token)`,
        [rows.map((r) => r.id), rows.map((r) => r.machineId), rows.map((r) => r.hostname), rows.map((r) => r.credentialHash), rows.map((r) => r.token), versions.agentVersion, versions.daemonVersion, now],
      );
    }
    await client.query('ANALYZE agents');
  } finally {
    await client.end();
  }
  return agents;
}
