// bench/metrics.ts: GET /metrics on a real manager (SQLite file, audit log, Fastify) on loopback
// with 10,000 agents in the store and an active canary rollout over all of them (its targets
// pending: the engine is not started, so nothing moves between scrapes). Each scrape reads the
// rollout gauges (active deployments, their targets by state) and the agent count from the store.
// Prints one JSON line: scrapeMs (median), p95Ms, maxMs over --scrapes scrapes, and the size.
//
//   npm run bench:metrics [-- --agents 10000 --scrapes 50]
//
// Target: a scrape under 50 ms at 10,000 agents (issue 13). Agents are enrolled through the store
// API (the scrape is what is measured, not enrollment).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { Ed25519PrivateKey, createReleasePayload, ed25519AuditSigner, signRelease, trustPolicyDocument } from '../packages/protocol/src/index.js';
import { generateFernetKey } from '../packages/protocol/src/internal.js';
import { newSecret } from '../packages/manager/src/secrets.js';
import { createManager } from '../packages/manager/src/server/create.js';
import { seedAgents } from './lib/seed-agents.js';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '10000' },
    scrapes: { type: 'string', default: '50' },
  },
});

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const agentCount = Number(values.agents);
  const scrapes = Number(values.scrapes);
  const dir = await mkdtemp(join(tmpdir(), 'drover-bench-metrics-'));
  const auditKey = Ed25519PrivateKey.generate();
  const releaseKey = Ed25519PrivateKey.generate();
  const metricsToken = newSecret();
  const app = await createManager({
    dataDir: dir,
    adminTokens: [newSecret()],
    metricsTokens: [metricsToken],
    encryptionKey: generateFernetKey(),
    managerKey: Ed25519PrivateKey.generate(),
    auditSigner: { signer: ed25519AuditSigner(auditKey), publicKey: auditKey.publicKey },
    trustPolicy: trustPolicyDocument([releaseKey.publicKey]),
    // Targets stay where the rollout put them: every scrape reads the same store.
    rollout: { autoStart: false },
    env: {},
  });
  try {
    const core = app.manager;
    const { store } = core.context;
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
    const targets = (await store.listTargets(notified.deployment_id)).length;

    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const scrape = async (): Promise<{ ms: number; bytes: number }> => {
      const start = process.hrtime.bigint();
      const response = await request(`${url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` }, headersTimeout: 10_000, bodyTimeout: 10_000 });
      const text = await response.body.text();
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (response.statusCode !== 200) throw new Error(`GET /metrics answered ${response.statusCode}`);
      if (!text.includes(`drover_agents ${agentCount}`)) throw new Error('the scrape does not report the seeded agents');
      return { ms, bytes: Buffer.byteLength(text) };
    };
    // Warm-up: JIT, SQLite page cache, connection.
    for (let i = 0; i < 5; i += 1) await scrape();
    const times: number[] = [];
    let size = 0;
    for (let i = 0; i < scrapes; i += 1) {
      const { ms, bytes: length } = await scrape();
      times.push(ms);
      size = length;
    }
    times.sort((a, b) => a - b);
    const scrapeMs = Number(percentile(times, 0.5).toFixed(2));
    const target = { scrapeMs: 50 };
    console.log(
      JSON.stringify({
        bench: 'metrics',
        agents: agentCount,
        rolloutTargets: targets,
        scrapes,
        scrapeMs,
        p95Ms: Number(percentile(times, 0.95).toFixed(2)),
        maxMs: Number((times[times.length - 1] ?? Number.NaN).toFixed(2)),
        bytes: size,
        target,
        meetsTarget: scrapeMs < target.scrapeMs,
        cpus: cpus().length,
        node: process.version,
      }),
    );
  } finally {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
