import { afterEach, describe, expect, it } from 'vitest';
import { AgentError } from './index.js';
import { AUTH, TOKEN, adapters, call, errorCode, hold, makeAgent, shutdownCall, until } from '../test/harness.js';
import type { Running, TestAgent } from '../test/harness.js';

const SHUTDOWN = '/v1/system/shutdown';
const valid = { reason: 'CD update to version v1.2.4', confirm: true };

describe.each(adapters)('$name adapter over real HTTP', ({ name, start }) => {
  let server: Running | undefined;
  let t: TestAgent;

  async function boot(overrides: Parameters<typeof makeAgent>[0] = {}): Promise<number> {
    t = makeAgent(overrides);
    server = await start(t.agent);
    return server.port;
  }

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('GET health answers 200 with exactly status, version and busy', async () => {
    const port = await boot();
    const reply = await call(port);
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ status: 'healthy', version: '1.2.3', busy: false });
    expect(reply.headers['content-type']).toMatch(/^application\/json/);
  });

  it('health reports busy while a critical section runs, and the status the agent set', async () => {
    const port = await boot({ health: 'starting' });
    const section = hold(t.agent, 'migration');
    expect((await call(port)).json).toEqual({ status: 'starting', version: '1.2.3', busy: true });
    section.release();
    await section.done;
    t.agent.setHealth(() => 'degraded');
    expect((await call(port)).json).toEqual({ status: 'degraded', version: '1.2.3', busy: false });
  });

  it('HEAD health answers 200 without a body', async () => {
    const port = await boot();
    const reply = await call(port, { method: 'HEAD' });
    expect(reply.status).toBe(200);
    expect(reply.text).toBe('');
  });

  it.each([
    ['no Authorization header', {}, 'AUTH_REQUIRED'],
    ['a Bearer token without the service: prefix', { authorization: `Bearer ${TOKEN}` }, 'AUTH_REQUIRED'],
    ['Basic credentials', { authorization: 'Basic dXNlcjpwYXNz' }, 'AUTH_REQUIRED'],
    ['a wrong token', { authorization: `Bearer service:${TOKEN.slice(0, -1)}B` }, 'AUTH_INVALID'],
    ['the token with a suffix', { authorization: `Bearer service:${TOKEN}x` }, 'AUTH_INVALID'],
    ['an empty token', { authorization: 'Bearer service:' }, 'AUTH_REQUIRED'],
  ])('401 %s, with WWW-Authenticate, and nothing shuts down', async (_, headers, code) => {
    const port = await boot();
    const reply = await call(port, shutdownCall(valid, headers));
    expect(reply.status).toBe(401);
    expect(errorCode(reply)).toBe(code);
    expect(reply.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(t.agent.shuttingDown()).toBe(false);
    // A valid request afterwards is still accepted: a refusal changed no state.
    expect((await call(port, shutdownCall(valid))).status).toBe(200);
  });

  it('401 comes before any body rule: a stranger learns nothing about the body', async () => {
    const port = await boot();
    const reply = await call(port, { method: 'POST', path: SHUTDOWN, body: 'not json' });
    expect(reply.status).toBe(401);
    expect(errorCode(reply)).toBe('AUTH_REQUIRED');
  });

  it.each([
    ['malformed JSON', '{"reason": "x", "confirm": tru', 'BODY_MALFORMED'],
    ['an empty body', '', 'BODY_MALFORMED'],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'BODY_MALFORMED'],
    ['a JSON array', '[]', 'BODY_INVALID'],
    ['a JSON string', '"shutdown"', 'BODY_INVALID'],
    ['null', 'null', 'BODY_INVALID'],
    ['a numeric reason', '{"reason": 5, "confirm": true}', 'BODY_INVALID'],
    ['a missing reason', '{"confirm": true}', 'BODY_INVALID'],
    ['a string force', '{"reason": "x", "force": "yes", "confirm": true}', 'BODY_INVALID'],
    ['a null force', '{"reason": "x", "force": null, "confirm": true}', 'BODY_INVALID'],
    ['a string confirm', '{"reason": "x", "confirm": "true"}', 'BODY_INVALID'],
    ['confirm false', '{"reason": "x", "confirm": false}', 'CONFIRM_REQUIRED'],
    ['no confirm', '{"reason": "x"}', 'CONFIRM_REQUIRED'],
  ])('400 for %s', async (_, body, code) => {
    const port = await boot();
    const reply = await call(port, { method: 'POST', path: SHUTDOWN, headers: { ...AUTH, 'content-type': 'application/json' }, body });
    expect(reply.status).toBe(400);
    expect(errorCode(reply)).toBe(code);
    expect(t.agent.shuttingDown()).toBe(false);
  });

  it('400 BODY_TOO_LARGE over 16 KiB, declared or chunked; exactly 16 KiB is accepted', async () => {
    const port = await boot();
    const oversized = JSON.stringify({ reason: 'x'.repeat(16 * 1024), confirm: true });
    const declared = await call(port, { method: 'POST', path: SHUTDOWN, headers: { ...AUTH, 'content-type': 'application/json' }, body: oversized });
    expect(declared.status).toBe(400);
    expect(errorCode(declared)).toBe('BODY_TOO_LARGE');
    const chunked = await call(port, { method: 'POST', path: SHUTDOWN, headers: { ...AUTH, 'content-type': 'application/json' }, body: oversized, chunked: true });
    expect(chunked.status).toBe(400);
    expect(errorCode(chunked)).toBe('BODY_TOO_LARGE');
    expect(t.agent.shuttingDown()).toBe(false);

    const prefix = JSON.stringify({ reason: '', confirm: true }).length;
    const exact = JSON.stringify({ reason: 'y'.repeat(16 * 1024 - prefix), confirm: true });
    expect(Buffer.byteLength(exact)).toBe(16 * 1024);
    const accepted = await call(port, { method: 'POST', path: SHUTDOWN, headers: { ...AUTH, 'content-type': 'application/json' }, body: exact, chunked: true });
    expect(accepted.status).toBe(200);
  });

  it('any Content-Type, or none, is read as JSON (CIRIS callers vary)', async () => {
    const port = await boot();
    const reply = await call(port, { method: 'POST', path: SHUTDOWN, headers: { ...AUTH, 'content-type': 'text/plain' }, body: JSON.stringify(valid) });
    expect(reply.status).toBe(200);
  });

  it('405 with Allow for a wrong method on the agent routes', async () => {
    const port = await boot();
    const get = await call(port, { path: SHUTDOWN, headers: AUTH });
    expect(get.status).toBe(405);
    expect(errorCode(get)).toBe('METHOD_NOT_ALLOWED');
    expect(get.headers.allow).toBe('POST');
    const del = await call(port, { method: 'DELETE', path: '/v1/system/health' });
    expect(del.status).toBe(405);
    expect(errorCode(del)).toBe('METHOD_NOT_ALLOWED');
    expect(del.headers.allow).toBe('GET, HEAD');
  });

  it('404 for a path that is not the agent\'s', async () => {
    const port = await boot();
    const reply = await call(port, { path: '/v1/system/reboot' });
    expect(reply.status).toBe(404);
    // Fastify answers paths outside the plugin's routes itself; the other adapters use drover's body.
    if (name !== 'fastify') expect(errorCode(reply)).toBe('NOT_FOUND');
  });

  it('200 with the CIRIS body, then onShutdown gets the reason and the process exits 0', async () => {
    const port = await boot();
    const before = Date.now();
    const reply = await call(port, shutdownCall(valid));
    expect(reply.status).toBe(200);
    const data = (reply.json as { data: Record<string, unknown> }).data;
    expect(data).toEqual({ status: 'initiated', message: expect.stringContaining(valid.reason) as unknown, shutdown_initiated: true, timestamp: expect.any(String) as unknown });
    expect(Date.parse(data.timestamp as string)).toBeGreaterThanOrEqual(before - 1000);
    await until(() => t.exits.length > 0);
    expect(t.shutdowns.map((s) => s.reason)).toEqual([valid.reason]);
    expect(t.exits).toEqual([0]);
    await expect(t.agent.critical('late', () => 1)).rejects.toSatisfy((e) => e instanceof AgentError && e.code === 'AGENT_SHUTTING_DOWN');
  });

  it('control characters in the reason become spaces before onShutdown and the log', async () => {
    const port = await boot();
    const reply = await call(port, shutdownCall({ reason: 'update\nFAKE LOG LINE\u0000\u001b[31m\u2028x', confirm: true }));
    expect(reply.status).toBe(200);
    await until(() => t.shutdowns.length > 0);
    expect(t.shutdowns[0]?.reason).toBe('update FAKE LOG LINE  [31m x');
    const logged = t.lines.find((l) => l.obj.event === 'shutdown_accepted');
    expect(logged?.obj.reason).toBe('update FAKE LOG LINE  [31m x');
  });

  it('409 once a shutdown was accepted', async () => {
    const port = await boot({ exit: false });
    expect((await call(port, shutdownCall(valid))).status).toBe(200);
    const again = await call(port, shutdownCall({ ...valid, force: true }));
    expect(again.status).toBe(409);
    expect(errorCode(again)).toBe('SHUTDOWN_IN_PROGRESS');
    await until(() => t.shutdowns.length > 0);
    expect((await call(port, shutdownCall(valid))).status).toBe(409);
    expect(t.shutdowns).toHaveLength(1);
  });

  it('busy, then free: 503 with Retry-After naming the work, then 200 once the section ends', async () => {
    const port = await boot();
    const section = hold(t.agent, 'billing-run');
    const busy = await call(port, shutdownCall(valid));
    expect(busy.status).toBe(503);
    expect(errorCode(busy)).toBe('AGENT_BUSY');
    expect(busy.headers['retry-after']).toBe('5');
    expect((busy.json as { error: { busy_with: string[]; message: string } }).error.busy_with).toEqual(['billing-run']);
    expect((busy.json as { error: { message: string } }).error.message).toContain('billing-run');
    expect(t.agent.shuttingDown()).toBe(false);
    expect(t.shutdowns).toHaveLength(0);

    section.release();
    await section.done;
    const free = await call(port, shutdownCall(valid));
    expect(free.status).toBe(200);
    await until(() => t.exits.length > 0);
    expect(t.exits).toEqual([0]);
  });

  it('ten concurrent shutdown requests: exactly one 200, nine 409', async () => {
    const port = await boot();
    const replies = await Promise.all(Array.from({ length: 10 }, () => call(port, shutdownCall(valid))));
    const statuses = replies.map((r) => r.status).sort();
    expect(statuses).toEqual([200, ...Array<number>(9).fill(409)]);
    expect(replies.filter((r) => r.status === 409).every((r) => errorCode(r) === 'SHUTDOWN_IN_PROGRESS')).toBe(true);
    // The nine 409s were answered before the shutdown ran: once it has closed, a second onShutdown would be recorded.
    await t.agent.closed;
    expect(t.shutdowns).toHaveLength(1);
    expect(t.exits).toEqual([0]);
  });

  it('force while busy: the 200 comes once the section ends, and onShutdown runs after it', async () => {
    const port = await boot({ drainTimeoutMs: 10_000 });
    const section = hold(t.agent, 'upload');
    let releasedAt = 0;
    const pending = call(port, shutdownCall({ ...valid, force: true }));
    await until(() => t.agent.shuttingDown());
    // Draining: no new work, and other callers are told a shutdown is under way.
    expect(t.agent.shuttingDown()).toBe(true);
    expect((await call(port, shutdownCall(valid))).status).toBe(409);
    await expect(t.agent.critical('new-job', () => 1)).rejects.toSatisfy((e) => e instanceof AgentError && e.code === 'AGENT_SHUTTING_DOWN');
    expect(t.shutdowns).toHaveLength(0);
    releasedAt = performance.now();
    section.release();
    const reply = await pending;
    const repliedAt = performance.now();
    expect(reply.status).toBe(200);
    expect(repliedAt).toBeGreaterThanOrEqual(releasedAt);
    await until(() => t.exits.length > 0);
    expect(t.shutdowns[0]?.at).toBeGreaterThanOrEqual(releasedAt);
    expect(t.shutdowns[0]?.drained).toBe(true);
    expect(t.exits).toEqual([0]);
  });

  it('force while busy past drainTimeoutMs: the 200 comes after the timeout, and onShutdown runs with the work still in flight', async () => {
    const port = await boot({ drainTimeoutMs: 400 });
    const section = hold(t.agent, 'stuck-export');
    const sentAt = performance.now();
    const reply = await call(port, shutdownCall({ ...valid, force: true }));
    expect(reply.status).toBe(200);
    expect(performance.now() - sentAt).toBeGreaterThanOrEqual(380);
    await until(() => t.exits.length > 0);
    expect(t.shutdowns[0]?.at).toBeGreaterThanOrEqual(sentAt + 380);
    expect(t.shutdowns[0]?.drained).toBe(false);
    expect(t.shutdowns[0]?.busyWith).toEqual(['stuck-export']);
    expect(t.lines.some((l) => l.obj.event === 'drain_timeout')).toBe(true);
    expect(t.exits).toEqual([0]);
    section.release();
  });

  it('force when idle answers 200 at once', async () => {
    const port = await boot({ drainTimeoutMs: 10_000 });
    const sentAt = performance.now();
    expect((await call(port, shutdownCall({ ...valid, force: true }))).status).toBe(200);
    expect(performance.now() - sentAt).toBeLessThan(5_000);
  });
});
