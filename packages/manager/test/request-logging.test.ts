import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestManager } from './harness.js';
import type { TestManager } from './harness.js';

// Each request's logger is made only when the request logs (lazyRequestLogger): what it writes
// must be what Fastify's own child logger writes, bound to the request's id.
describe('request logging', () => {
  let m: TestManager;
  beforeAll(async () => {
    m = await startTestManager();
  });
  afterAll(async () => {
    await m.close();
  });

  it('logs every request with its id, a refusal included, and no secret', async () => {
    const agent = await m.enroll();
    expect((await m.checkin(agent)).status).toBe(200);
    expect((await m.checkin(agent, { headers: { authorization: 'Bearer not-a-credential' } })).status).toBe(401);
    const lines = m.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    const checkins = lines.filter((l) => (l['req'] as { path?: string } | undefined)?.path === `/v1/agents/${agent.agentId}/checkin`);
    expect(checkins).toHaveLength(2);
    for (const incoming of checkins) {
      expect(incoming['msg']).toBe('incoming request');
      expect(typeof incoming['reqId']).toBe('string');
      const completed = lines.find((l) => l['msg'] === 'request completed' && l['reqId'] === incoming['reqId']);
      expect(completed).toBeDefined();
    }
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'request refused', code: 'CREDENTIAL_INVALID', reqId: checkins[1]?.['reqId'] }));
    expect(lines.filter((l) => l['msg'] === 'request completed').map((l) => (l['res'] as { statusCode: number }).statusCode)).toEqual(expect.arrayContaining([200, 401]));
    expect(await m.leakedSecrets()).toEqual([]);
  });
});
