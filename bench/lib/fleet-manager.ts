// A real manager (SQLite file, audit log, Fastify) on loopback with `agents` agents in the store
// and an active canary rollout over all of them (its targets pending: the engine is not started,
// so nothing moves between measurements). bench/metrics.ts scrapes it; bench/console.ts also
// renders its fleet page in Chromium. Agents are enrolled through the store API (what is measured
// is reading them, not enrollment).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { Ed25519PrivateKey, createReleasePayload, ed25519AuditSigner, signRelease, trustPolicyDocument } from '../../packages/protocol/src/index.js';
import { generateFernetKey } from '../../packages/protocol/src/internal.js';
import { newSecret } from '../../packages/manager/src/secrets.js';
import { createManager } from '../../packages/manager/src/server/create.js';
import { seedAgents } from './seed-agents.js';

export interface FleetManager {
  url: string;
  adminToken: string;
  /** Targets of the rollout over the fleet. */
  targets: number;
  /** One GET /metrics: its time and size (throws unless it reports every agent). */
  scrape(): Promise<{ ms: number; bytes: number }>;
  close(): Promise<void>;
}

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? Number.NaN;
}

export async function startFleetManager(agentCount: number): Promise<FleetManager> {
  const dir = await mkdtemp(join(tmpdir(), 'drover-bench-fleet-'));
  const auditKey = Ed25519PrivateKey.generate();
  const releaseKey = Ed25519PrivateKey.generate();
  const metricsToken = newSecret();
  const adminToken = newSecret();
  const app = await createManager({
    dataDir: dir,
    adminTokens: [adminToken],
    metricsTokens: [metricsToken],
    encryptionKey: generateFernetKey(),
    managerKey: Ed25519PrivateKey.generate(),
    auditSigner: { signer: ed25519AuditSigner(auditKey), publicKey: auditKey.publicKey },
    trustPolicy: trustPolicyDocument([releaseKey.publicKey]),
    // Targets stay where the rollout put them: every measurement reads the same store.
    rollout: { autoStart: false },
    env: {},
  });
  try {
    const core = app.manager;
    await seedAgents(core, agentCount, { agentVersion: '1.0.0', daemonVersion: '0.5.0' });
    // A signed release and a canary rollout of it over the whole fleet.
    const bytes = randomBytes(1024);
    const payload = createReleasePayload({
      artifact: 'agent',
      version: '2.0.0',
      platform: 'linux-x64',
      file: { name: 'agent.tar.gz', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') },
      changelog: 'bench',
    });
    await core.registerRelease(signRelease(payload, [releaseKey]));
    await core.uploadArtifact({ artifact: 'agent', version: '2.0.0', platform: 'linux-x64' }, Readable.from([bytes]));
    const notified = await core.notifyUpdate({ version: '2.0.0', strategy: 'canary' });
    const targets = (await core.context.store.listTargets(notified.deployment_id)).length;
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    return {
      url,
      adminToken,
      targets,
      async scrape() {
        const start = process.hrtime.bigint();
        const response = await request(`${url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` }, headersTimeout: 10_000, bodyTimeout: 10_000 });
        const text = await response.body.text();
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        if (response.statusCode !== 200) throw new Error(`GET /metrics answered ${response.statusCode}`);
        if (!text.includes(`drover_agents ${agentCount}`)) throw new Error('the scrape does not report the seeded agents');
        return { ms, bytes: Buffer.byteLength(text) };
      },
      async close() {
        await app.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await app.close();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** The median of `count` scrapes after 5 warm-up ones (JIT, SQLite page cache, connection), with p95, max and size. */
export async function measureScrapes(fleet: FleetManager, count: number): Promise<{ scrapeMs: number; p95Ms: number; maxMs: number; bytes: number }> {
  for (let i = 0; i < 5; i += 1) await fleet.scrape();
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < count; i += 1) {
    const scraped = await fleet.scrape();
    times.push(scraped.ms);
    bytes = scraped.bytes;
  }
  times.sort((a, b) => a - b);
  return {
    scrapeMs: Number(percentile(times, 0.5).toFixed(2)),
    p95Ms: Number(percentile(times, 0.95).toFixed(2)),
    maxMs: Number((times[times.length - 1] ?? Number.NaN).toFixed(2)),
    bytes,
  };
}
