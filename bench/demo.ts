// bench/demo.ts: how long README's main job takes. Runs the end-to-end demo (examples/demo: a real
// manager and six real droverd hosts, two rollouts, the refusals, the report) as a newcomer does,
// and prints its figures as one JSON line: the demo's own total, each rollout from notify to its
// end, and the process's wall time. Issue 7's target for the whole demo is under 90 s. The demo's
// expectations are checked by the demo itself (and by test/e2e/demo.test.ts); this only times it.
//
//   npm run bench:demo       (the packages must be built: npm run build, or npm run bench)
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TARGET_SECONDS = 90;
const root = fileURLToPath(new URL('..', import.meta.url));
const tsx = join(root, 'node_modules/.bin/tsx');

interface Report {
  totalSeconds: number;
  rollouts: { label: string; seconds: number }[];
  expectations: { ok: boolean }[];
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'drover-bench-demo-'));
  try {
    const reportPath = join(dir, 'report.json');
    const started = performance.now();
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(tsx, ['examples/demo/demo.ts'], { cwd: root, env: { ...process.env, DROVER_DEMO_REPORT: reportPath }, stdio: ['ignore', 'ignore', 'inherit'] });
      child.once('error', reject);
      child.once('exit', resolve);
    });
    const wallSeconds = (performance.now() - started) / 1000;
    if (code !== 0) {
      console.error(`bench/demo.ts: the demo exited ${String(code)}; run \`npm run demo\` to see why`);
      return 1;
    }
    const report = JSON.parse(await readFile(reportPath, 'utf8')) as Report;
    const round = (seconds: number): number => Math.round(seconds * 10) / 10;
    console.log(
      JSON.stringify({
        bench: 'demo',
        hosts: 6,
        demoSeconds: round(report.totalSeconds),
        rolloutSeconds: Object.fromEntries(report.rollouts.map((r) => [r.label, round(r.seconds)])),
        wallSeconds: round(wallSeconds),
        expectationsHeld: report.expectations.filter((e) => e.ok).length,
        targets: { demoSeconds: TARGET_SECONDS },
        met: { demo: report.totalSeconds < TARGET_SECONDS },
        node: process.version,
      }),
    );
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
