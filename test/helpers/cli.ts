import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const droverBin = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command as a real child process and collects its output; bounded by `timeoutMs`. */
export function run(command: string, args: readonly string[], options: { cwd?: string; input?: string | Uint8Array; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], timeout: options.timeoutMs ?? 20_000 });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
    });
    child.stdin.end(options.input);
  });
}

/** Runs the built `drover` CLI (the test command builds it first). */
export function drover(args: readonly string[], options: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  if (!existsSync(droverBin)) throw new Error(`${droverBin} is missing: run \`npm run build\` first (\`npm test\` does).`);
  return run(process.execPath, [droverBin, ...args], options);
}

/** `result`, when the command exited 0; else an Error with its output, naming `what`. */
export function expectOk(result: RunResult, what: string): RunResult {
  if (result.code !== 0) throw new Error(`${what} failed (${String(result.code)}): ${result.stdout}${result.stderr}`);
  return result;
}
