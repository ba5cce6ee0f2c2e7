// bench/run-all.ts: runs every bench script of bench/ in turn, each as its own child process under
// tsx with a time limit, collects the JSON line each prints into bench/results.json and prints a
// summary. A bench that fails, times out or prints no JSON is recorded as such; the exit code is 1
// if any did.
//
//   npm run bench            (builds first: bench/checkin.ts, bench/crypto.ts and bench/rollout.ts use the built packages)
//
// The benches run one after the other, never together, so that they do not compete for the cores.
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';

interface BenchRun {
  script: string;
  ok: boolean;
  seconds: number;
  exitCode: number | null;
  timedOut: boolean;
  result?: Record<string, unknown>;
  error?: string;
  /** The bench's own target check, read from the field it prints (met, meetsTarget, pass, ...). */
  verdict?: string;
}

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const tsx = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));
const resultsPath = fileURLToPath(new URL('results.json', import.meta.url));
const self = 'run-all.ts';

/** Time limit per bench script; the rollout bench enrols 10,000 simulated hosts and is the longest. */
const TIMEOUT_MS: Record<string, number> = { 'rollout.ts': 600_000, 'checkin.ts': 300_000, 'update.ts': 300_000 };
const DEFAULT_TIMEOUT_MS = 300_000;
/** tsx options of a bench script: bench/checkin.ts measures the built packages (see its header). */
const TSX_OPTIONS: Record<string, string[]> = { 'checkin.ts': ['--tsconfig', 'bench/tsconfig.dist.json'] };

/** The last line of `stdout` that parses as a JSON object, if any. */
function lastJsonLine(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout.split('\n').map((line) => line.trim()).filter((line) => line.startsWith('{'));
  for (const line of lines.reverse()) {
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
    } catch {
      // not JSON: keep looking
    }
  }
  return undefined;
}

/** The process group of the bench running now, ended with it if this runner is interrupted. */
let running: number | undefined;

function endGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // The benches run detached (their own process group, so a timeout can end everything they
    // started); a Ctrl-C on this runner would not reach them without this.
    if (running !== undefined) endGroup(running);
    process.exit(130);
  });
}

function runBench(script: string): Promise<BenchRun> {
  const timeoutMs = TIMEOUT_MS[script] ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(tsx, [...(TSX_OPTIONS[script] ?? []), `bench/${script}`], { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    running = child.pid;
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      // The bench runs in its own process group; end it and whatever it started.
      if (child.pid !== undefined) endGroup(child.pid);
    }, timeoutMs);
    child.once('error', (error) => {
      // tsx missing or not executable: a failed run, recorded like any other.
      clearTimeout(timer);
      running = undefined;
      resolve({ script, ok: false, seconds: Math.round((Date.now() - started) / 100) / 10, exitCode: null, timedOut: false, error: `could not start: ${error.message}` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      running = undefined;
      const seconds = Math.round((Date.now() - started) / 100) / 10;
      const result = lastJsonLine(stdout);
      const ok = !timedOut && code === 0 && result !== undefined;
      const error = timedOut
        ? `timed out after ${timeoutMs / 1000} s`
        : code !== 0
          ? `exited with ${code}: ${stderr.trim().split('\n').slice(-5).join('\n')}`
          : result === undefined
            ? 'printed no JSON line'
            : undefined;
      resolve({ script, ok, seconds, exitCode: code, timedOut, ...(result !== undefined ? { result } : {}), ...(error !== undefined ? { error } : {}) });
    });
  });
}

/** One line per bench: whether its own target check passed, from the field each bench prints. */
function verdict(run: BenchRun): string {
  const r = run.result;
  if (!run.ok || r === undefined) return `FAILED (${run.error ?? 'unknown'})`;
  const targets = r['targets'];
  const met = r['met'];
  if (typeof r['meetsTarget'] === 'boolean') return r['meetsTarget'] ? 'target met' : 'target NOT met';
  if (typeof r['withinTarget'] === 'boolean') return r['withinTarget'] ? 'target met' : 'target NOT met';
  if (typeof r['pass'] === 'boolean') return r['pass'] ? 'target met' : 'target NOT met';
  if (typeof met === 'object' && met !== null) return Object.values(met).every((v) => v === true) ? 'targets met' : 'a target NOT met';
  if (typeof targets === 'object' && targets !== null) {
    const all = Object.values(targets).every((t) => typeof t === 'object' && t !== null && (t as { met?: unknown }).met === true);
    return all ? 'targets met' : 'a target NOT met';
  }
  return 'no target check printed';
}

async function main(): Promise<void> {
  const scripts = readdirSync(benchDir)
    .filter((name) => name.endsWith('.ts') && name !== self && !name.endsWith('.d.ts'))
    .sort();
  const runs: BenchRun[] = [];
  for (const script of scripts) {
    process.stderr.write(`bench: ${script} ...\n`);
    const run = await runBench(script);
    process.stderr.write(`bench: ${script} ${run.ok ? 'done' : 'FAILED'} in ${run.seconds} s\n`);
    runs.push({ ...run, verdict: verdict(run) });
  }
  const report = { date: new Date().toISOString(), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', runs };
  writeFileSync(resultsPath, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nBench results (${report.date}, Node ${report.node}, ${report.cpus} cores), written to bench/results.json:`);
  for (const run of runs) console.log(`  ${run.script.padEnd(18)} ${String(run.seconds).padStart(6)} s  ${run.verdict ?? ''}`);
  if (runs.some((run) => !run.ok)) process.exitCode = 1;
}

await main();
