// The example agent as the daemon runs it: a real child process, found through the JSON line it
// prints with its bound port, spoken to over real HTTP on loopback.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { call, errorCode, shutdownCall } from './harness.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const script = join(root, 'examples/agent/agent.ts');
const TOKEN = 'example-agent-test-token-0123456789abcdefghij';
const AUTH = { authorization: `Bearer service:${TOKEN}` };

interface Started {
  child: ChildProcess;
  port: number;
  ready: Record<string, unknown>;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function launch(env: Record<string, string>): { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  // Only what the test sets: nothing from the runner's own environment leaks in (a stray token).
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(DROVER_|CIRIS_|AGENT_|PORT$)/.test(key)));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      resolve(code);
    });
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Asks for a shutdown every 100 ms while the agent answers 503 (busy), for at most 10 s; the last status. */
async function shutdownOnceFree(port: number): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { status } = await call(port, shutdownCall({ reason: 'update', confirm: true }, AUTH));
    if (status !== 503 || Date.now() > deadline) return status;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function start(env: Record<string, string> = {}): Promise<Started> {
  return listening(launch({ DROVER_SERVICE_TOKEN: TOKEN, AGENT_PORT: '0', ...env }));
}

/** The first stdout line of the launched agent with this `event`, looked for on each chunk it prints. */
async function printed(launched: ReturnType<typeof launch>, event: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const found = jsonLines(launched.stdout()).find((l) => l.event === event);
    if (found !== undefined) return found;
    if (launched.child.exitCode !== null) throw new Error(`example agent exited ${launched.child.exitCode}: ${launched.stderr()}`);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`example agent did not print ${event}: ${launched.stderr()}`);
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        launched.child.stdout?.off('data', done);
        launched.child.off('exit', done);
        resolve();
      };
      const timer = setTimeout(done, left);
      launched.child.stdout?.on('data', done);
      launched.child.once('exit', done);
    });
  }
}

/** The launched agent once it prints its `listening` line. */
async function listening(launched: ReturnType<typeof launch>): Promise<Started> {
  const ready = await printed(launched, 'listening');
  return { ...launched, port: ready.port as number, ready };
}

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      setTimeout(() => {
        reject(new Error(`not within ${ms} ms`));
      }, ms);
    }),
  ]);
}

describe('examples/agent as a real process', () => {
  it('prints its port, answers health with its version and config hash, refuses strangers, and exits 0 on a valid shutdown', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-example-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'agent.json'), '{"workIntervalMs": 0, "workMs": 50}\n');
    const agent = await start({ DROVER_CONFIG_DIR: dir });
    const builtIn = /BUILT_IN_VERSION = '([^']+)'/.exec(readFileSync(script, 'utf8'))?.[1];
    expect(agent.port).toBeGreaterThan(0);
    expect(agent.ready.configHash).toBe(createHash('sha256').update(readFileSync(join(dir, 'agent.json'))).digest('hex'));

    expect((await call(agent.port)).json).toEqual({ status: 'healthy', version: builtIn, busy: false });
    expect((await call(agent.port, { path: '/info' })).json).toMatchObject({ version: builtIn, configHash: agent.ready.configHash });

    const stranger = await call(agent.port, shutdownCall({ reason: 'x', confirm: true }, {}));
    expect(stranger.status).toBe(401);
    const wrong = await call(agent.port, shutdownCall({ reason: 'x', confirm: true }, { authorization: 'Bearer service:wrong' }));
    expect(errorCode(wrong)).toBe('AUTH_INVALID');

    const accepted = await call(agent.port, shutdownCall({ reason: 'CD update to version v1.0.1', confirm: true }, AUTH));
    expect(accepted.status).toBe(200);
    expect(await within(agent.exited, 10_000)).toBe(0);
    expect(agent.stdout()).toContain('"event":"shutdown_complete"');
    expect(agent.stdout()).not.toContain(TOKEN);
    expect(agent.stderr()).not.toContain(TOKEN);
  });

  it('is busy on demand: 503 with Retry-After while working, 200 after, and AGENT_VERSION sets the version', async () => {
    const agent = await start({ AGENT_VERSION: '2.3.4' });
    expect((await call(agent.port)).json).toEqual({ status: 'healthy', version: '2.3.4', busy: false });
    const strangerWork = await call(agent.port, { method: 'POST', path: '/work?ms=3000' });
    expect(strangerWork.status).toBe(401);
    expect((await call(agent.port, { method: 'POST', path: '/work?ms=3000', headers: AUTH })).status).toBe(202);
    expect((await call(agent.port)).json).toMatchObject({ busy: true });
    const busy = await call(agent.port, shutdownCall({ reason: 'update', confirm: true }, AUTH));
    expect(busy.status).toBe(503);
    expect(busy.headers['retry-after']).toMatch(/^\d+$/);
    expect(JSON.stringify(busy.json)).toContain('on-demand-1');
    expect(await shutdownOnceFree(agent.port)).toBe(200);
    expect(await within(agent.exited, 10_000)).toBe(0);
  });

  it('AGENT_BUSY_AFTER_REFUSAL_MS keeps it busy until that long after its first busy refusal, however long that takes', async () => {
    const agent = await start({ AGENT_BUSY_AFTER_REFUSAL_MS: '300' });
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect((await call(agent.port)).json).toMatchObject({ busy: true });
    const refusedAt = Date.now();
    expect((await call(agent.port, shutdownCall({ reason: 'update', confirm: true }, AUTH))).status).toBe(503);
    expect(await shutdownOnceFree(agent.port)).toBe(200);
    expect(Date.now() - refusedAt).toBeGreaterThanOrEqual(300);
    expect(await within(agent.exited, 10_000)).toBe(0);
  });

  it('AGENT_LISTEN_WHEN_FILE: listens only once the file exists; a request target that is not a URL path gets 400, not a crash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'example-agent-'));
    dirs.push(dir);
    const gate = join(dir, 'listen-now');
    const launched = launch({ DROVER_SERVICE_TOKEN: TOKEN, AGENT_PORT: '0', AGENT_LISTEN_WHEN_FILE: gate });
    // Booted and waiting for the file; still not listening after three of its 50 ms looks for it.
    await printed(launched, 'listen_waiting');
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(jsonLines(launched.stdout()).some((l) => l.event === 'listening')).toBe(false);
    expect(launched.child.exitCode).toBe(null);
    writeFileSync(gate, '');
    const agent = await listening(launched);
    expect((await call(agent.port)).json).toMatchObject({ status: 'healthy', busy: false });
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(agent.port, '127.0.0.1', () => socket.end('GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => {
        resolve(text);
      });
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    expect(raw).toContain('BAD_REQUEST_TARGET');
    expect((await call(agent.port)).status).toBe(200);
  });

  it('AGENT_BUSY_MS keeps it busy from the start; AGENT_START_UNHEALTHY reports degraded; SIGTERM drains and exits 0', async () => {
    const agent = await start({ AGENT_BUSY_MS: '60000', AGENT_START_UNHEALTHY: '1', AGENT_DRAIN_TIMEOUT_MS: '300' });
    expect((await call(agent.port)).json).toEqual({ status: 'degraded', version: expect.any(String) as unknown, busy: true });
    expect((await call(agent.port, shutdownCall({ reason: 'update', confirm: true }, AUTH))).status).toBe(503);
    agent.child.kill('SIGTERM');
    expect(await within(agent.exited, 10_000)).toBe(0);
    expect(jsonLines(agent.stdout()).some((l) => l.event === 'drain_timeout')).toBe(true);
  });

  it('answers any ms query on /work with 202 or 400 QUERY_INVALID, and keeps running (the query is request input, not config)', async () => {
    const agent = await start();
    const work = (query: string): Promise<Awaited<ReturnType<typeof call>>> => call(agent.port, { method: 'POST', path: `/work?${query}`, headers: AUTH });
    // Each of these once killed the agent with exit 1 (issue 18).
    for (const value of ['abc', '-1', '1.5', '1e999', '%00', 'Infinity', '0x', '86400001']) {
      const reply = await work(`ms=${value}`);
      expect({ value, status: reply.status, code: errorCode(reply) }).toEqual({ value, status: 400, code: 'QUERY_INVALID' });
    }
    expect(errorCode(await work('ms=1&ms=2'))).toBe('QUERY_INVALID');
    expect((await work('ms=')).json).toMatchObject({ ms: 1_000 }); // blank: the default
    expect((await work('ms=25')).json).toMatchObject({ ms: 25 });

    // Any query value: raw text (malformed escapes included), any Unicode text encoded, any bytes
    // percent-encoded (invalid UTF-8, NUL), and numbers of every kind written as JavaScript does.
    const raw = fc.stringMatching(/^[A-Za-z0-9._~%+!$'()*,;=:@/?-]{0,24}$/);
    const text = fc.string({ unit: 'grapheme', maxLength: 16 }).map(encodeURIComponent);
    const bytes = fc.uint8Array({ maxLength: 12 }).map((b) => [...b].map((x) => `%${x.toString(16).padStart(2, '0')}`).join(''));
    const numbers = fc.oneof(fc.integer(), fc.double(), fc.bigInt()).map((n) => encodeURIComponent(String(n)));
    await fc.assert(
      fc.asyncProperty(fc.oneof(raw, text, bytes, numbers), async (value) => {
        const reply = await work(`ms=${value}`);
        if (reply.status === 202) {
          const { ms } = reply.json as { ms: number };
          expect(Number.isInteger(ms) && ms >= 0 && ms <= 86_400_000).toBe(true);
        } else {
          expect({ status: reply.status, code: errorCode(reply) }).toEqual({ status: 400, code: 'QUERY_INVALID' });
        }
        expect(agent.child.exitCode).toBe(null);
        expect((await call(agent.port)).status).toBe(200);
      }),
      { numRuns: 150, examples: [['abc'], ['-1'], ['1.5'], ['1e999'], ['%00']] },
    );
    expect(agent.child.exitCode).toBe(null);
    // Refused as input, not caught as a crash: no route threw.
    expect(agent.stderr()).not.toContain('request_failed');
  });

  it('exits 1 at once with AGENT_CRASH_AT_BOOT=1, without listening', async () => {
    const launched = launch({ DROVER_SERVICE_TOKEN: TOKEN, AGENT_PORT: '0', AGENT_CRASH_AT_BOOT: '1' });
    expect(await within(launched.exited, 15_000)).toBe(1);
    expect(launched.stdout()).not.toContain('"listening"');
    expect(launched.stderr()).toContain('AGENT_CRASH_AT_BOOT');
  });

  it('exits 1 without a service token, naming the variable to set', async () => {
    const launched = launch({ AGENT_PORT: '0' });
    expect(await within(launched.exited, 15_000)).toBe(1);
    expect(jsonLines(launched.stderr())[0]).toMatchObject({ code: 'SERVICE_TOKEN_MISSING' });
    expect(launched.stderr()).toContain('DROVER_SERVICE_TOKEN');
  });

  it('exits 1 on a malformed agent.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-example-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'agent.json'), '{not json');
    const launched = launch({ DROVER_SERVICE_TOKEN: TOKEN, AGENT_PORT: '0', DROVER_CONFIG_DIR: dir });
    expect(await within(launched.exited, 15_000)).toBe(1);
    expect(launched.stderr()).toContain('not valid JSON');
  });
});
