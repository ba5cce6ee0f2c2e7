import { describe, expect, it } from 'vitest';
import { createWebHandler, requireServiceTokenWeb } from './index.js';
import { AUTH, makeAgent, until } from '../test/harness.js';

// Route behaviour over real HTTP is in adapters.test.ts; these cover the Web-only edges.
describe('Web adapter', () => {
  it('requireServiceTokenWeb returns a 401 Response, or undefined for the right token', async () => {
    const { agent } = makeAgent();
    const guard = requireServiceTokenWeb(agent);
    const refused = guard(new Request('http://agent.local/admin', { method: 'POST' }));
    expect(refused?.status).toBe(401);
    expect(await refused?.json()).toMatchObject({ error: { code: 'AUTH_REQUIRED' } });
    expect(guard(new Request('http://agent.local/admin', { method: 'POST', headers: { authorization: 'Bearer service:x' } }))?.status).toBe(401);
    expect(guard(new Request('http://agent.local/admin', { method: 'POST', headers: AUTH }))).toBeUndefined();
  });

  it('a repeated Authorization header is refused (Headers joins them into one value)', async () => {
    const { agent } = makeAgent();
    const headers = new Headers(AUTH);
    headers.append('authorization', 'Bearer service:other');
    const response = await createWebHandler(agent)(new Request('http://agent.local/v1/system/shutdown', { method: 'POST', headers, body: '{"reason":"x","confirm":true}' }));
    expect(response.status).toBe(401);
    expect(agent.shuttingDown()).toBe(false);
  });

  it('answers the 200 first and proceeds with the shutdown only after it', async () => {
    const t = makeAgent();
    const response = await createWebHandler(t.agent)(
      new Request('http://agent.local/v1/system/shutdown', { method: 'POST', headers: AUTH, body: '{"reason":"x","confirm":true}' }),
    );
    expect(response.status).toBe(200);
    expect(t.shutdowns).toHaveLength(0);
    await until(() => t.exits.length > 0);
    expect(t.exits).toEqual([0]);
  });
});
