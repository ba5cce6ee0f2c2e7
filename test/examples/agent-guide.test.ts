// docs/agent-sdk.md, "Running under droverd", followed as written in a scratch directory: its agent.ts
// saved as is, its esbuild and `drover release sign` lines run as is (the `npm install` line is the
// workspace's own packages here), then the bundle started the way droverd starts a release
// (AGENT_HOST, AGENT_PORT, DROVER_SERVICE_TOKEN), answering health at the version it was signed as,
// and stopping on the shutdown route.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { drover, droverBin, repoRoot, run } from '../helpers/cli.js';
import { droverdBin } from '../helpers/droverd.js';
import { freePort } from '../helpers/ports.js';
import { codeBlocks } from './markdown.js';

const guide = await readFile(join(repoRoot, 'docs', 'agent-sdk.md'), 'utf8');
const start = guide.indexOf('## Running under droverd');
const section = guide.slice(start, guide.indexOf('\n## ', start + 1));
const [source = '', commands = ''] = codeBlocks(section);

let dir: string | undefined;
afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});


describe('docs/agent-sdk.md: Running under droverd', () => {
  it('its agent, bundled and signed by its own commands, serves health at the signed version on AGENT_PORT and stops on shutdown', async () => {
    expect(start).toBeGreaterThan(-1);
    const lines = commands.split('\n').filter((line) => line.trim() !== '');
    expect(lines.map((line) => line.split(' ').slice(0, 2).join(' '))).toEqual(['npm install', 'npx esbuild', 'drover release']);
    const base = await mkdtemp(join(tmpdir(), 'drover-agent-guide-'));
    dir = base;
    await writeFile(join(base, 'agent.ts'), source);
    // What `npm install @drover/agent esbuild` gives: the workspace's packages, built.
    await symlink(join(repoRoot, 'node_modules'), join(base, 'node_modules'));
    const [, esbuildLine = '', signLine = ''] = lines;
    const bundled = await run('npx', ['--no-install', ...esbuildLine.split(' ').slice(1)], { cwd: base, timeoutMs: 60_000 });
    expect(bundled.code, bundled.stderr).toBe(0);
    expect((await drover(['keygen', '--out', base, '--name', 'release'])).code).toBe(0);
    const signed = await drover(signLine.split(' ').slice(1), { cwd: base });
    expect(signed.code, signed.stderr).toBe(0);
    const version = /--version (\S+)/.exec(signLine)?.[1];
    const file = signLine.split(' ').at(-1) ?? '';
    expect(source).toContain(`const VERSION = '${String(version)}'`);

    const port = await freePort();
    const token = randomBytes(32).toString('base64url');
    const agent = spawn(process.execPath, [file], { cwd: base, env: { PATH: process.env['PATH'], AGENT_HOST: '127.0.0.1', AGENT_PORT: String(port), PORT: String(port), DROVER_SERVICE_TOKEN: token }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    agent.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    agent.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => agent.once('exit', resolve));
    try {
      const url = `http://127.0.0.1:${port}`;
      let health: { status: number; json: unknown } | undefined;
      for (let i = 0; i < 100 && health === undefined; i++) {
        try {
          const res = await request(`${url}/v1/system/health`);
          health = { status: res.statusCode, json: await res.body.json() };
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      expect(health, output).toMatchObject({ status: 200, json: { status: 'healthy', version } });
      const refused = await request(`${url}/v1/system/shutdown`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(refused.statusCode).toBe(401);
      await refused.body.dump();
      const stop = await request(`${url}/v1/system/shutdown`, { method: 'POST', headers: { authorization: `Bearer service:${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'update', confirm: true }) });
      expect(stop.statusCode).toBe(200);
      await stop.body.dump();
      expect(await exited).toBe(0);
    } finally {
      agent.kill('SIGKILL');
    }
  }, 90_000);
});

describe('docs/agent-sdk.md: From 1.4.2 to 1.4.3, updated by droverd', () => {
  // Runs after the test above, in its directory: agent.ts, release.key and the signed 1.4.2 bundle.
  it('its commands, run as written (the port 8443 swapped for a free one), end with the guide\'s agent at 1.4.3 under droverd', async () => {
    const base = dir;
    expect(base, 'the test above prepares the directory').toBeDefined();
    if (base === undefined) return;
    const [, , setUp = '', ship = ''] = codeBlocks(section);
    expect(setUp).toContain('droverd run');
    expect(ship).toContain('drover rollout start');
    const port = await freePort();
    // `drover` and `droverd` as a user has them after `npm install -g`: the workspace's builds.
    const bin = join(base, 'bin');
    await mkdir(bin);
    for (const [name, file] of [['drover', droverBin], ['droverd', droverdBin]] as const) {
      await writeFile(join(bin, name), `#!/bin/sh\nexec "${process.execPath}" "${file}" "$@"\n`, { mode: 0o755 });
    }
    const script = `set -e\n${setUp}\n${ship}\n`.replaceAll('8443', String(port));
    await writeFile(join(base, 'guide.sh'), script);
    // Its own process group: the manager and droverd it starts in the background are stopped with it.
    const shell = spawn('bash', ['guide.sh'], { cwd: base, env: { PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, HOME: base }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    shell.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    shell.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => shell.once('exit', resolve));
    try {
      const logs = async (): Promise<string> => `${output}\n--- droverd.log\n${await readFile(join(base, 'host', 'droverd.log'), 'utf8').catch(() => '')}`;
      expect(code, await logs()).toBe(0);
      // droverd status, the guide's last line: the agent at 1.4.3.
      expect(output).toMatch(/1\.4\.3/);
      const runtime = JSON.parse(await readFile(join(base, 'host', 'state', 'agent.json'), 'utf8')) as { port: number; version: string };
      expect(runtime.version).toBe('1.4.3');
      const res = await request(`http://127.0.0.1:${runtime.port}/v1/system/health`);
      expect(await res.body.json()).toMatchObject({ status: 'healthy', version: '1.4.3' });
    } finally {
      try {
        process.kill(-(shell.pid ?? 0), 'SIGTERM');
      } catch {
        // the group is gone already
      }
      // droverd stops its agent on SIGTERM and then removes agent.json: wait for that (bounded).
      for (let i = 0; i < 100 && existsSync(join(base, 'host', 'state', 'agent.json')); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      try {
        process.kill(-(shell.pid ?? 0), 'SIGKILL');
      } catch {
        // stopped by SIGTERM
      }
    }
  }, 240_000);
});
