import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createManagerLogger } from '../src/logger.js';
import { captureStream, startTestManager } from './harness.js';
import type { TestManager } from './harness.js';

// One line per request when it ends (ManagerLogController, decision 0052), with the request, the
// status and the time, bound to the request's id like every other line the request writes; the
// arrival line only at debug. Each request's child logger is made only when the request logs
// (lazyRequestLogger): what it writes must be what Fastify's own child logger writes.
describe('request logging', () => {
  let m: TestManager;
  beforeAll(async () => {
    m = await startTestManager();
  });
  afterAll(async () => {
    await m.close();
  });

  it('logs every request once, when it ends, with its id, a refusal included, and no secret', async () => {
    const agent = await m.enroll();
    const path = `/v1/agents/${agent.agentId}/checkin`;
    expect((await m.checkin(agent)).status).toBe(200);
    expect((await m.checkin(agent, { headers: { authorization: 'Bearer not-a-credential' } })).status).toBe(401);
    const lines = m.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    const checkins = lines.filter((l) => (l['req'] as { path?: string } | undefined)?.path === path);
    expect(checkins.map((l) => [l['msg'], (l['res'] as { statusCode: number }).statusCode])).toEqual([
      ['request completed', 200],
      ['request completed', 401],
    ]);
    for (const line of checkins) {
      expect(line).toMatchObject({ level: 30, component: 'drover:manager', req: { method: 'POST', path, route: '/v1/agents/:agentId/checkin', remoteAddress: '127.0.0.1' } });
      expect(typeof line['reqId']).toBe('string');
      expect(typeof line['responseTime']).toBe('number');
    }
    expect(new Set(checkins.map((l) => l['reqId'])).size).toBe(2);
    // The refusal's own line (the request's child logger) and its request line share the id.
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'request refused', code: 'CREDENTIAL_INVALID', reqId: checkins[1]?.['reqId'] }));
    expect(lines.some((l) => l['msg'] === 'incoming request')).toBe(false);
    expect(await m.leakedSecrets()).toEqual([]);
  });
});

describe('request logging at debug', () => {
  const logs: string[] = [];
  let m: TestManager;
  beforeAll(async () => {
    m = await startTestManager({ logger: createManagerLogger({ level: 'debug', destination: captureStream(logs) }) });
  });
  afterAll(async () => {
    await m.close();
  });

  it('adds the arrival line of each request, under the same id as its request line', async () => {
    const agent = await m.enroll();
    expect((await m.checkin(agent)).status).toBe(200);
    const lines = logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    const checkin = lines.filter((l) => (l['req'] as { path?: string } | undefined)?.path === `/v1/agents/${agent.agentId}/checkin`);
    expect(checkin.map((l) => [l['msg'], l['level']])).toEqual([
      ['incoming request', 20],
      ['request completed', 30],
    ]);
    expect(checkin[0]?.['reqId']).toBe(checkin[1]?.['reqId']);
  });
});

// ManagerOptions.logger takes any pino logger: one without the manager's serializers must not get
// the whole request (headers, body, query) into the request line.
describe('request logging with a plain pino logger', () => {
  const logs: string[] = [];
  let m: TestManager;
  beforeAll(async () => {
    m = await startTestManager({ logger: pino({ level: 'info' }, captureStream(logs)) });
  });
  afterAll(async () => {
    await m.close();
  });

  it('writes the request through the manager serializer: no header, body or query', async () => {
    const token = await m.createEnrollmentToken();
    const agent = await m.enroll({ token });
    expect((await m.checkin(agent)).status).toBe(200);
    expect((await m.request('GET', '/healthz?sig=query-secret-1234')).status).toBe(200);
    const lines = logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    const requests = lines.filter((l) => l['msg'] === 'request completed');
    expect(requests.length).toBeGreaterThanOrEqual(3);
    for (const line of requests) expect(Object.keys(line['req'] as object).sort()).toEqual(expect.arrayContaining(['method', 'path']));
    for (const line of requests) expect(line['req']).not.toHaveProperty('headers');
    expect(requests).toContainEqual(expect.objectContaining({ req: expect.objectContaining({ path: '/healthz', query: '[omitted]' }) as unknown }));
    const text = logs.join('\n');
    for (const secret of [token, agent.credential, agent.serviceToken, 'query-secret-1234']) expect(text).not.toContain(secret);
  });
});
