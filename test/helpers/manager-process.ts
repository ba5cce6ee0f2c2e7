// A real manager for cross-package suites: `drover manager start --dir DIR --port 0` as a child
// process of the built CLI (or any program serving the manager, such as examples/manager), its JSON
// log collected, and a small admin client over undici.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { request } from 'undici';
import { createReleasePayload, signRelease, trustPolicyDocument } from '@drover/protocol';
import type { Ed25519PrivateKey } from '@drover/protocol';
import { drover, droverBin } from './cli.js';
import { until } from './wait.js';

/** A command as the operator API shows it (GET /v1/agents/:id). */
export interface CommandView {
  id: string;
  deploymentId: string | null;
  /** How many check-in answers carried it. */
  deliveredCount: number;
  ackedAt: string | null;
  outcome: string | null;
  outcomeDetail: { code?: string; message?: string } | null;
}

export class ManagerProcess {
  readonly url: string;
  readonly #child: ChildProcessByStdio<null, Readable, Readable>;
  readonly #output: () => string;
  readonly exited: Promise<number | null>;

  private constructor(child: ChildProcessByStdio<null, Readable, Readable>, url: string, output: () => string, exited: Promise<number | null>) {
    this.#child = child;
    this.url = url;
    this.#output = output;
    this.exited = exited;
  }

  /** Starts the manager in `dir` (made by `drover manager init`) on `port` (0: any free one) and waits, bounded, for its listening line. */
  static start(dir: string, env: NodeJS.ProcessEnv, port = 0): Promise<ManagerProcess> {
    return ManagerProcess.spawn([droverBin, 'manager', 'start', '--dir', dir, '--port', String(port)], env);
  }

  /**
   * Starts `node ARGS` and waits, bounded, for the JSON line whose `event` is `event` (by default the
   * line `drover manager start` prints); its `url` becomes this process's URL.
   */
  static spawn(args: readonly string[], env: NodeJS.ProcessEnv, options: { cwd?: string; event?: string } = {}): Promise<ManagerProcess> {
    const event = options.event ?? 'manager.listening';
    const child = spawn(process.execPath, args, { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => {
        resolve(code);
      });
    });
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the manager did not start within 15 s:\n${out}`));
      }, 15_000);
      const check = (): void => {
        const line = out.split('\n').find((l) => l.includes(`"event":"${event}"`));
        if (line === undefined) return;
        clearTimeout(timer);
        child.stdout.off('data', check);
        resolve(new ManagerProcess(child, (JSON.parse(line) as { url: string }).url, () => out, exited));
      };
      child.stdout.on('data', check);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`the manager exited (${String(code)}) before listening:\n${out}`));
      });
    });
  }

  /** What the manager printed (its JSON log). */
  output(): string {
    return this.#output();
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid ?? -1;
  }

  /** SIGKILL: the process dies at once, nothing of a graceful stop runs. */
  async kill(): Promise<number | null> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    return this.exited;
  }

  /** SIGTERM (a graceful stop), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** One JSON call to the manager. */
  async call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; json: unknown }> {
    const response = await request(new URL(path, this.url), {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      // Bounded, with room for a manager under a fleet's check-ins on a loaded two-core machine.
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const text = await response.body.text();
    return { status: response.statusCode, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
  }

  /** The manager's record of an agent's command once it holds a final outcome (not `deferred`), polled with the admin token. */
  async finalOutcome(agentId: string, commandId: string, adminToken: string, timeoutMs = 40_000): Promise<CommandView> {
    return until(
      async () => {
        const answer = await this.call('GET', `/v1/agents/${agentId}`, { authorization: `Bearer ${adminToken}` });
        const command = (answer.json as { commands: CommandView[] }).commands.find((c) => c.id === commandId);
        return command?.outcome !== null && command?.outcome !== undefined && command.outcome !== 'deferred' ? command : undefined;
      },
      timeoutMs,
      `the manager to record an outcome for ${commandId}`,
    );
  }
}

/** What {@link initManagerDir} made: the tokens a suite drives the manager with. */
export interface InitializedDir {
  enrollmentToken: string;
  adminToken: string;
  deployToken: string;
}

/**
 * `drover manager init --dir DIR` on SQLite trusting `releaseKey`, with `settings` merged into
 * manager.json's (e.g. a fast rolloutTickMs) and its log at `warn`: a manager a suite starts with
 * {@link ManagerProcess.start}.
 */
export async function initManagerDir(dir: string, releaseKey: Ed25519PrivateKey, env: NodeJS.ProcessEnv, settings: Record<string, unknown> = {}, seats = 20): Promise<InitializedDir> {
  const trustPath = `${dir}.trust.json`;
  await writeFile(trustPath, JSON.stringify(trustPolicyDocument([releaseKey.publicKey])));
  const init = await drover(['manager', 'init', '--dir', dir, '--trust', trustPath, '--seats', String(seats), '--expires-in', '1h', '--json'], { env });
  if (init.code !== 0) throw new Error(`drover manager init failed: ${init.stderr}${init.stdout}`);
  const configPath = join(dir, 'manager.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as { settings: Record<string, unknown>; logLevel: string };
  Object.assign(config.settings, settings);
  config.logLevel = 'warn';
  await writeFile(configPath, JSON.stringify(config));
  return {
    enrollmentToken: (JSON.parse(init.stdout) as { enrollmentToken: string }).enrollmentToken,
    adminToken: (await readFile(join(dir, 'secrets', 'admin.token'), 'utf8')).trim(),
    deployToken: (await readFile(join(dir, 'secrets', 'deploy.token'), 'utf8')).trim(),
  };
}

/** Publishes `agent` `version` for linux-x64 (random bytes, signed by `releaseKey`) through the manager at `url`: both steps. */
export async function publishRandomRelease(url: string, deployToken: string, releaseKey: Ed25519PrivateKey, version: string, size = 2048): Promise<void> {
  const bytes = randomBytes(size);
  const payload = createReleasePayload({ artifact: 'agent', version, platform: 'linux-x64', file: { name: 'agent.tgz', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }, changelog: 'fix: a bug' });
  const headers = { authorization: `Bearer ${deployToken}` };
  const registered = await request(new URL('/v1/releases', url), { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ release: signRelease(payload, [releaseKey]) }) });
  const answer = (await registered.body.json()) as { uploadUrl?: string };
  if (registered.statusCode !== 201 || answer.uploadUrl === undefined) throw new Error(`publishing ${version}: HTTP ${String(registered.statusCode)}`);
  const upload = await request(new URL(answer.uploadUrl, url), { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: bytes });
  await upload.body.dump();
  if (upload.statusCode !== 200) throw new Error(`uploading ${version}: HTTP ${String(upload.statusCode)}`);
}
