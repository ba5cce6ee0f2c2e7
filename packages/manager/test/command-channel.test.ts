// The command channel (issue 16, decision 0041): a check-in with X-Drover-Wait that finds no
// command is held until one is written for its agent, and answered with it at once; a check-in
// held to the end of its wait is answered without one; beyond channelMaxHeld the manager answers
// 503 CHANNEL_FULL with Retry-After before recording anything; a stopping manager lets every held
// check-in go. On PostgreSQL a command written by one replica reaches a check-in held by another
// (LISTEN/NOTIFY).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithoutServices } from '../../../test/helpers/services.js';
import { checkinBody, commandsOf, refusal, startTestManager } from './harness.js';
import type { EnrolledAgent, TestManager } from './harness.js';
import { createTestDatabase } from './postgres-database.js';
import type { TestDatabase } from './postgres-database.js';

const wait = (seconds: number): Record<string, string> => ({ 'x-drover-wait': String(seconds) });

describe('the command channel (SQLite, one manager)', () => {
  let m: TestManager;
  beforeAll(async () => {
    m = await startTestManager({ settings: { channelMaxHeld: 2 } });
    await m.publish({ version: '1.1.0' });
  });
  afterAll(async () => {
    expect(await m.verifyAudit()).toMatchObject({ ok: true });
    await m.close();
  });

  it('holds a check-in with no command and answers it as soon as a command is queued for its agent', async () => {
    const agent = await m.enroll();
    const started = Date.now();
    const held = m.checkin(agent, { headers: wait(8) });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const queued = await m.app.manager.queueUpdate({ agentId: agent.agentId, deploymentId: 'channel-1', artifact: 'agent', version: '1.1.0' });
    const res = await held;
    expect(res.status).toBe(200);
    expect((commandsOf(res) as { id: string }[]).map((c) => c.id)).toEqual([queued.id]);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(res.headers['x-drover-wait']).toMatch(/^\d+$/);
  });

  it('answers a held check-in without a command when its wait ends, and one without the header at once', async () => {
    const agent = await m.enroll();
    const started = Date.now();
    const res = await m.checkin(agent, { headers: wait(1) });
    expect([res.status, commandsOf(res)]).toEqual([200, []]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(res.headers['x-drover-wait']).toBe('1');
    const plain = await m.checkin(agent);
    expect(plain.headers['x-drover-wait']).toBeUndefined();
  });

  it('holds a check-in whose only command was delivered before and kept by a daemon busy with another update, and answers a report at once', async () => {
    const agent = await m.enroll();
    const queued = await m.app.manager.queueUpdate({ agentId: agent.agentId, deploymentId: 'channel-redeliver', artifact: 'agent', version: '1.1.0' });
    // Delivered once, at once (it is new).
    const first = await m.checkin(agent, { headers: wait(2) });
    expect((commandsOf(first) as { id: string }[]).map((c) => c.id)).toEqual([queued.id]);
    expect(first.headers['x-drover-wait']).toBe('0');
    // Not acked, the daemon busy with another update (it keeps the command for later): the next
    // check-in is held, not answered at once again, so a daemon on the channel does not spin; the
    // command comes with the answer.
    const busy = checkinBody('1.0.0', '0.5.0', { state: { agentVersion: '1.0.0', daemonVersion: '0.5.0', update: { commandId: 'cmd_another0000000000', step: 'draining' } } });
    const started = Date.now();
    const second = await m.checkin(agent, { headers: wait(1), body: busy });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect((commandsOf(second) as { id: string }[]).map((c) => c.id)).toEqual([queued.id]);
    // A check-in that acks it is a report: answered at once.
    const acked = Date.now();
    const report = await m.checkin(agent, { headers: wait(5), body: checkinBody('1.0.0', '0.5.0', { acks: [queued.id] }) });
    expect(report.status).toBe(200);
    expect(Date.now() - acked).toBeLessThan(2_000);
  });

  it('answers at once a check-in whose command was delivered before when the daemon has no update in progress: the answer that carried it was lost', async () => {
    const agent = await m.enroll();
    const queued = await m.app.manager.queueUpdate({ agentId: agent.agentId, deploymentId: 'channel-lost-answer', artifact: 'agent', version: '1.1.0' });
    const first = await m.checkin(agent, { headers: wait(2) });
    expect((commandsOf(first) as { id: string }[]).map((c) => c.id)).toEqual([queued.id]);
    // The daemon never got that answer (a replica killed mid-answer, a proxy's cut): idle, nothing
    // to ack. Held, it would get the command only when its wait ended.
    const started = Date.now();
    const again = await m.checkin(agent, { headers: wait(5) });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((commandsOf(again) as { id: string }[]).map((c) => c.id)).toEqual([queued.id]);
    expect(again.headers['x-drover-wait']).toBe('0');
  });

  it('answers 503 CHANNEL_FULL with Retry-After beyond channelMaxHeld, recording nothing; a malformed wait is a 400', async () => {
    const [a, b, c] = [await m.enroll(), await m.enroll(), await m.enroll()];
    const held = [m.checkin(a, { headers: wait(3) }), m.checkin(b, { headers: wait(3) })];
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The gauge operators watch says how many are held.
    expect(await m.app.manager.metrics.scrape()).toMatch(/^drover_channel_held 2$/m);
    const before = (await m.app.manager.context.store.getAgent(c.agentId))?.lastCheckinAt;
    const full = await m.checkin(c, { headers: wait(3) });
    expect(refusal(full)).toEqual([503, 'CHANNEL_FULL']);
    expect(full.headers['retry-after']).toBe('30');
    await m.app.manager.context.store.ping();
    expect((await m.app.manager.context.store.getAgent(c.agentId))?.lastCheckinAt).toEqual(before);
    // Without the header it is an ordinary check-in.
    expect((await m.checkin(c)).status).toBe(200);
    for (const res of await Promise.all(held)) expect(res.status).toBe(200);
    expect(await m.app.manager.metrics.scrape()).toMatch(/^drover_channel_held 0$/m);
    for (const bad of ['0', '-1', '1.5', 'abc', '99999']) expect(refusal(await m.checkin(c, { headers: { 'x-drover-wait': bad } }))[0], bad).toBe(400);
  });
});

describe('the command channel: an agent below the minimum version', () => {
  it('is answered 426 at once, without the channel header, so its daemon keeps to its interval', async () => {
    const m = await startTestManager({ settings: { minAgentVersion: '2.0.0' } });
    const agent = await m.enroll();
    const started = Date.now();
    const res = await m.checkin(agent, { headers: wait(5) });
    expect(res.status).toBe(426);
    expect(res.headers['x-drover-wait']).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(2_000);
    await m.close();
  });
});

describe('the command channel: a stopping manager', () => {
  it('lets every held check-in go at once', async () => {
    const m = await startTestManager();
    const agent: EnrolledAgent = await m.enroll();
    const held = m.checkin(agent, { headers: wait(30) });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    m.app.manager.beginShutdown();
    const res = await held;
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(2_000);
    await m.close();
  });
});

const skip = skipWithoutServices('the command channel across replicas', 'postgres');

describe.skipIf(skip)('the command channel across replicas (PostgreSQL)', () => {
  let database: TestDatabase;
  let a: TestManager;
  let b: TestManager;
  beforeAll(async () => {
    database = await createTestDatabase();
    a = await startTestManager({ database: database.config });
    // The other replica: the same keys, tokens and database.
    b = await startTestManager({ database: database.config }, { ...a, logs: [], secrets: new Set(a.secrets) });
    await a.publish({ version: '1.1.0' });
  }, 120_000);
  afterAll(async () => {
    await b.close();
    await a.close();
    await database.dispose();
  }, 60_000);

  it('answers a check-in held by one replica with the command another replica wrote', async () => {
    const agent = await a.enroll();
    const started = Date.now();
    const held = a.checkin(agent, { headers: wait(8) });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const queued = await b.app.manager.queueUpdate({ agentId: agent.agentId, deploymentId: 'channel-x', artifact: 'agent', version: '1.1.0' });
    const res = await held;
    expect((commandsOf(res) as { id: string }[]).map((c) => c.id)).toEqual([queued.id]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
