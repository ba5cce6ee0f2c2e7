import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, run } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';

// What a user of the published packages gets: every workspace packed with `npm pack`, the tarballs
// installed into scratch projects outside the repo (third-party dependencies from the registry or
// npm's cache), programs compiled there with plain tsc (strict, skipLibCheck off, NodeNext) and run.
// Slow by nature (two npm installs, two compilations): about a minute.

const TIMEOUT_MS = 300_000;
const PACKAGES = ['@drover/protocol', '@drover/http', '@drover/agent', '@drover/manager', '@drover/cli', 'droverd'] as const;

interface PackedFile {
  path: string;
  mode: number;
}
interface Packed {
  name: string;
  version: string;
  filename: string;
  files: PackedFile[];
}

const versionOf = (dir: string): string => (JSON.parse(readFileSync(join(repoRoot, 'node_modules', dir, 'package.json'), 'utf8')) as { version: string }).version;

// npm run by `npm test` passes its own settings down as npm_* variables; the scratch installs must not inherit them.
const cleanEnv = (): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));

async function must(command: string, args: readonly string[], cwd: string, timeoutMs = 180_000): Promise<RunResult> {
  const result = await run(command, args, { cwd, env: cleanEnv(), timeoutMs });
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${String(result.code)} in ${cwd}\n${result.stdout}\n${result.stderr}`);
  return result;
}

const TSCONFIG = {
  compilerOptions: {
    strict: true,
    skipLibCheck: false,
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    lib: ['es2023'],
    types: ['node'],
    outDir: 'out',
    noEmitOnError: true,
  },
  include: ['*.ts'],
};

/** A scratch project in the OS temp directory with the given tarballs and tools installed. */
async function scratchProject(root: string, name: string, installs: readonly string[]): Promise<string> {
  const dir = join(root, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: `drover-scratch-${name}`, private: true, type: 'module' }, null, 2)}\n`);
  writeFileSync(join(dir, 'tsconfig.json'), `${JSON.stringify(TSCONFIG, null, 2)}\n`);
  // --ignore-scripts: better-sqlite3's install would compile SQLite from source (over a minute);
  // its addon, built by the same script for the same version, is copied in below instead.
  await must('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', '--no-package-lock', ...installs], dir);
  const addon = join('better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
  if (existsSync(join(dir, 'node_modules', 'better-sqlite3'))) {
    if (versionOf('better-sqlite3') === (JSON.parse(readFileSync(join(dir, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string }).version) {
      mkdirSync(join(dir, 'node_modules', 'better-sqlite3', 'build', 'Release'), { recursive: true });
      copyFileSync(join(repoRoot, 'node_modules', addon), join(dir, 'node_modules', addon));
    } else {
      await must('npm', ['rebuild', 'better-sqlite3'], dir);
    }
  }
  return dir;
}

/** Spawns `node file`, returning the `result` of its first stdout line `{"result": ...}` (other lines are logs) and its exit. */
function start(dir: string, file: string, env: NodeJS.ProcessEnv): { result: Promise<unknown>; exit: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, [file], { cwd: dir, env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const result = new Promise<unknown>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const line = stdout.split('\n').find((l) => l.startsWith('{"result":'));
      if (line !== undefined) resolve((JSON.parse(line) as { result: unknown }).result);
    });
    child.on('close', (code) => {
      reject(new Error(`${file} exited ${String(code)} before printing its result\n${stdout}\n${stderr}`));
    });
  });
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => { resolve({ code, stderr }); }));
  return { result, exit };
}

/** One HTTP request on its own connection (no keep-alive, so a server that closes is not held open). */
function call(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown }); });
    });
    req.on('error', reject);
    req.end(body);
  });
}

// What an agent author writes (README of @drover/agent): node:http, nothing else.
const AGENT_TS = `import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAgent, createNodeHandler } from '@drover/agent';

const agent = createAgent({
  version: '1.4.2',
  drainTimeoutMs: 5_000,
  onShutdown: () => new Promise<void>((resolve) => server.close(() => resolve())),
});
const drover = createNodeHandler(agent);
const server = http.createServer((req, res) => {
  if (drover(req, res)) return;
  res.writeHead(200, { 'content-type': 'text/plain' }).end('hello\\n');
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ result: { port: (server.address() as AddressInfo).port } }));
});
`;

// The same agent mounted in Fastify: compiles against the real Fastify types.
const FASTIFY_AGENT_TS = `import Fastify from 'fastify';
import { createAgent, droverAgentPlugin, requireServiceTokenFastify } from '@drover/agent';

const agent = createAgent({ version: '1.4.2', drainTimeoutMs: 5_000, onShutdown: () => app.close(), exit: false });
const app = Fastify();
await app.register(droverAgentPlugin, { agent });
app.post('/admin/reload', { preHandler: requireServiceTokenFastify(agent) }, async () => ({ reloaded: true }));
const health = await app.inject({ method: 'GET', url: '/v1/system/health' });
const guarded = await app.inject({ method: 'POST', url: '/admin/reload' });
console.log(JSON.stringify({ result: { health: health.json() as unknown, guarded: guarded.statusCode } }));
await app.close();
`;

// The manager's two documented entry points (README of @drover/manager), over one directory: run
// in-process with startManager, then mounted in an app's own Fastify server with managerPlugin.
const MANAGER_TS = `import Fastify from 'fastify';
import { initManagerDirectory, managerPlugin, startManager } from '@drover/manager';

const dir = process.argv[2] ?? 'manager';
const { adminToken } = await initManagerDirectory({ dir, env: {} });
const auth = { authorization: \`Bearer \${adminToken}\` };

const manager = await startManager({ dir, host: '127.0.0.1', port: 0, env: {}, handleSignals: false });
const health = await fetch(new URL('/healthz', manager.url));
const agents = await fetch(new URL('/v1/agents', manager.url), { headers: auth });
const body = (await agents.json()) as unknown;
await manager.close();

const app = Fastify({ return503OnClosing: false, routerOptions: { maxParamLength: 256 } });
await app.register(managerPlugin, { dir, env: {}, prefix: '/drover' });
const mounted = await app.inject({ method: 'GET', url: '/drover/v1/agents', headers: auth });
await app.close();
console.log(JSON.stringify({ result: { health: health.status, agents: agents.status, body, mounted: [mounted.statusCode, mounted.json()] } }));
`;

// drover's own packages import @drover/protocol/internal (the built manager and droverd do at run
// time): the subpath resolves, with its types, from the tarball as from the workspace.
const PROTOCOL_INTERNAL_TS = `import { sha256Hex } from '@drover/protocol';
import { sha256, toHex } from '@drover/protocol/internal';

console.log(JSON.stringify({ result: toHex(sha256('drover')) === sha256Hex('drover') }));
`;

describe('the published packages, from their tarballs', { timeout: TIMEOUT_MS }, () => {
  let work: string;
  let packed: Packed[];
  let agentProject: string;
  let fullProject: string;
  const tarball = (name: string): string => {
    const found = packed.find((p) => p.name === name);
    if (found === undefined) throw new Error(`${name} was not packed`);
    return join(work, 'tarballs', found.filename);
  };
  const tools = (): string[] => [`typescript@${versionOf('typescript')}`, `@types/node@${versionOf('@types/node')}`];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'drover-packaging-'));
    // Incremental: a no-op when `npm run build` (which `npm test` runs result) is current.
    await must(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '--build', 'tsconfig.build.json'], repoRoot);
    if (!existsSync(join(repoRoot, 'packages/protocol/dist/schemas/index.json'))) throw new Error('packages/protocol/dist/schemas is missing: run `npm run build`');
    mkdirSync(join(work, 'tarballs'));
    const result = await must('npm', ['pack', '--workspaces', '--json', '--pack-destination', join(work, 'tarballs')], repoRoot);
    packed = JSON.parse(result.stdout) as Packed[];
    // The two installs wait mostly on npm's cache and the registry: side by side they take the time of one.
    [agentProject, fullProject] = await Promise.all([
      scratchProject(work, 'agent', [tarball('@drover/protocol'), tarball('@drover/agent'), ...tools()]),
      scratchProject(work, 'full', [...PACKAGES.map(tarball), `fastify@${versionOf('fastify')}`, ...tools()]),
    ]);
  }, TIMEOUT_MS);

  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  it('packs each of the six with its README, LICENSE and built code, and no tests, build info, source or declaration maps', () => {
    expect(packed.map((p) => p.name).sort()).toEqual([...PACKAGES].sort());
    const license = readFileSync(join(repoRoot, 'LICENSE'), 'utf8');
    expect(license).toContain('Apache License\n                           Version 2.0, January 2004');
    for (const dir of ['packages/protocol', 'packages/http', 'packages/agent', 'packages/manager', 'packages/cli', 'daemon']) {
      expect(readFileSync(join(repoRoot, dir, 'LICENSE'), 'utf8') === license, `${dir}/LICENSE is the root LICENSE`).toBe(true);
    }
    for (const p of packed) {
      const paths = p.files.map((f) => f.path);
      expect(paths, p.name).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts'].filter((f) => p.name !== '@drover/cli' || !f.startsWith('dist/index'))));
      expect(paths.filter((f) => /\.test\.|\.tsbuildinfo$|\.d\.ts\.map$|^src\/|(^|\/)test\//.test(f)), p.name).toEqual([]);
      // The source maps carry their sources: they point at ../src, which is not shipped.
      expect(paths.filter((f) => f.endsWith('.js.map')).length, p.name).toBeGreaterThan(0);
    }
    const protocol = packed.find((p) => p.name === '@drover/protocol');
    expect(protocol?.files.map((f) => f.path)).toEqual(expect.arrayContaining(['dist/internal.js', 'dist/internal.d.ts']));
    const cli = packed.find((p) => p.name === '@drover/cli');
    const daemon = packed.find((p) => p.name === 'droverd');
    expect(cli?.files.find((f) => f.path === 'bin/drover.js')?.mode).toBe(0o755);
    expect(daemon?.files.find((f) => f.path === 'bin/droverd.js')?.mode).toBe(0o755);
    expect(packed.every((p) => p.version === packed[0]?.version)).toBe(true);
  });

  it('an agent on node:http compiles without fastify installed, answers its health route and stops on a shutdown request', async () => {
    const dir = agentProject;
    // fastify is an optional peer dependency: not installed here, and the types must not need it.
    expect(existsSync(join(dir, 'node_modules', 'fastify'))).toBe(false);
    writeFileSync(join(dir, 'agent.ts'), AGENT_TS);
    await must(process.execPath, [join(dir, 'node_modules/typescript/bin/tsc'), '-p', dir], dir);

    const token = 'packaging-test-service-token';
    const agent = start(dir, 'out/agent.js', { DROVER_SERVICE_TOKEN: token });
    const { port } = (await agent.result) as { port: number };
    expect(await call(port, 'GET', '/v1/system/health')).toEqual({ status: 200, json: { status: 'healthy', version: '1.4.2', busy: false } });
    const refused = await call(port, 'POST', '/v1/system/shutdown', { 'content-type': 'application/json' }, '{"reason":"x","confirm":true}');
    expect(refused.status).toBe(401);
    const accepted = await call(port, 'POST', '/v1/system/shutdown', { authorization: `Bearer service:${token}`, 'content-type': 'application/json' }, '{"reason":"update to 1.4.3","confirm":true}');
    expect(accepted.status).toBe(200);
    expect(await agent.exit).toEqual({ code: 0, stderr: '' });
  });

  it('with all six installed: the Fastify adapter compiles against real Fastify, an in-process manager and a mounted one answer and stop, and the CLIs run', async () => {
    const dir = fullProject;
    writeFileSync(join(dir, 'fastify-agent.ts'), FASTIFY_AGENT_TS);
    writeFileSync(join(dir, 'manager.ts'), MANAGER_TS);
    writeFileSync(join(dir, 'protocol-internal.ts'), PROTOCOL_INTERNAL_TS);
    // Each package README's TypeScript examples, as the installed package ships them, compile too.
    const examples: string[] = [];
    for (const name of PACKAGES) {
      const readme = readFileSync(join(dir, 'node_modules', name, 'README.md'), 'utf8');
      for (const [i, block] of [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].entries()) {
        const file = `readme-${name.replace(/^@/, '').replace(/\W+/g, '-')}-${String(i)}.ts`;
        writeFileSync(join(dir, file), block[1] ?? '');
        examples.push(file);
      }
    }
    expect(examples.length).toBeGreaterThanOrEqual(4);
    await must(process.execPath, [join(dir, 'node_modules/typescript/bin/tsc'), '-p', dir], dir);

    // The protocol README's example runs as it stands (the others listen on fixed ports).
    const protocolExample = await must(process.execPath, ['out/readme-drover-protocol-0.js'], dir, 30_000);
    expect(protocolExample.stdout).toBe('1.2.0 true\n');
    expect((await must(process.execPath, ['out/protocol-internal.js'], dir, 30_000)).stdout).toBe('{"result":true}\n');

    const fastifyAgent = start(dir, 'out/fastify-agent.js', { DROVER_SERVICE_TOKEN: 'packaging-test-service-token' });
    expect(await fastifyAgent.result).toEqual({ health: { status: 'healthy', version: '1.4.2', busy: false }, guarded: 401 });
    expect((await fastifyAgent.exit).code).toBe(0);

    const manager = start(dir, 'out/manager.js', {});
    const none = { agents: [], next: null, total: 0 };
    expect(await manager.result).toEqual({ health: 200, agents: 200, body: none, mounted: [200, none] });
    expect((await manager.exit).code).toBe(0);

    for (const bin of ['drover', 'droverd']) {
      const help = await must('npx', ['--no-install', bin, '--help'], dir, 30_000);
      expect(help.stdout, bin).toContain(`Usage: ${bin}`);
    }
  });
});
