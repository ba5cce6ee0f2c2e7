// bench/metrics.ts: GET /metrics on a real manager (SQLite file, audit log, Fastify) on loopback
// with 10,000 agents in the store and an active canary rollout over all of them (bench/lib/
// fleet-manager.ts). Each scrape reads the rollout gauges (active deployments, their targets by
// state) and the agent count from the store. Prints one JSON line: scrapeMs (median), p95Ms, maxMs
// over --scrapes scrapes, and the size.
//
//   npm run bench:metrics [-- --agents 10000 --scrapes 50]
//
// Target: a scrape under 50 ms at 10,000 agents (issue 13).
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { measureScrapes, startFleetManager } from './lib/fleet-manager.js';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '10000' },
    scrapes: { type: 'string', default: '50' },
  },
});

async function main(): Promise<void> {
  const agentCount = Number(values.agents);
  const scrapes = Number(values.scrapes);
  const fleet = await startFleetManager(agentCount);
  try {
    const measured = await measureScrapes(fleet, scrapes);
    const target = { scrapeMs: 50 };
    console.log(
      JSON.stringify({
        bench: 'metrics',
        agents: agentCount,
        rolloutTargets: fleet.targets,
        scrapes,
        ...measured,
        target,
        meetsTarget: measured.scrapeMs < target.scrapeMs,
        cpus: cpus().length,
        node: process.version,
      }),
    );
  } finally {
    await fleet.close();
  }
}

await main();
