// The web console's session: POST /ui/session trades an operator token for an HttpOnly,
// SameSite=Strict cookie; the operator API accepts that cookie, and refuses a cookie-authenticated
// action without the session's CSRF token. /ui itself is served with a strict CSP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, startTestManager } from './harness.js';
import type { TestManager } from './harness.js';

let m: TestManager;
beforeAll(async () => {
  m = await startTestManager({ rollout: { autoStart: false } });
  await m.publish({ version: '1.2.0' });
  await m.enroll();
});
afterAll(async () => {
  expect(await m.verifyAudit()).toMatchObject({ ok: true });
  await m.close();
});

async function login(): Promise<{ cookie: string; setCookie: string; csrfToken: string }> {
  const res = await m.request('POST', '/ui/session', { json: { token: m.adminToken } });
  expect(res.status, res.text).toBe(200);
  const setCookie = String(res.headers['set-cookie']);
  const cookie = setCookie.split(';')[0] ?? '';
  return { cookie, setCookie, csrfToken: (res.json as { csrfToken: string }).csrfToken };
}

describe('console session', () => {
  it('serves /ui with a CSP without inline script, nosniff and no-referrer', async () => {
    const bare = await m.request('GET', '/ui');
    expect(bare.status).toBe(302);
    expect(bare.headers.location).toBe('ui/');
    const res = await m.request('GET', '/ui/');
    expect(res.status).toBe(200);
    expect(res.text).toContain('<script type="module" src="app.js">');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect((await m.request('GET', '/ui/app.js')).status).toBe(200);
    expect((await m.request('GET', '/ui/secrets.txt')).status).toBe(400);
  });

  it('sets an HttpOnly, SameSite=Strict session cookie for a valid token and refuses a wrong one', async () => {
    const { setCookie, cookie } = await login();
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\//);
    expect(setCookie).toMatch(/Max-Age=\d+/);
    expect(cookie).toMatch(/^drover_session=[A-Za-z0-9_-]{43}$/);
    const wrong = await m.request('POST', '/ui/session', { json: { token: 'not-a-token' } });
    expect(wrong.status).toBe(401);
    expect(errorOf(wrong).code).toBe('AUTH_INVALID');
  });

  it('lets the cookie read the operator API, and refuses an action without the CSRF token (CSRF_TOKEN_INVALID)', async () => {
    const { cookie, csrfToken } = await login();
    const agents = await m.request('GET', '/v1/agents', { headers: { cookie } });
    expect(agents.status, agents.text).toBe(200);
    const notify = await m.request('POST', '/manager/v1/updates/notify', { headers: { cookie }, json: { version: '1.2.0', strategy: 'manual' } });
    expect(notify.status).toBe(403);
    expect(errorOf(notify).code).toBe('CSRF_TOKEN_INVALID');
    const wrongCsrf = await m.request('POST', '/manager/v1/updates/notify', { headers: { cookie, 'x-drover-csrf': `${csrfToken.slice(0, -1)}${csrfToken.endsWith('A') ? 'B' : 'A'}` }, json: { version: '1.2.0', strategy: 'manual' } });
    expect(errorOf(wrongCsrf).code).toBe('CSRF_TOKEN_INVALID');
    const listed = await m.request('GET', '/v1/deployments', { headers: { cookie } });
    expect((listed.json as { deployments: unknown[] }).deployments).toEqual([]);
    const ok = await m.request('POST', '/manager/v1/updates/notify', { headers: { cookie, 'x-drover-csrf': csrfToken }, json: { version: '1.2.0', strategy: 'manual' } });
    expect(ok.status, ok.text).toBe(200);
  });

  it('logs out: the cookie no longer authenticates', async () => {
    const { cookie, csrfToken } = await login();
    expect((await m.request('GET', '/ui/session', { headers: { cookie } })).status).toBe(200);
    expect((await m.request('DELETE', '/ui/session', { headers: { cookie } })).status).toBe(403);
    const out = await m.request('DELETE', '/ui/session', { headers: { cookie, 'x-drover-csrf': csrfToken } });
    expect(out.status).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/Max-Age=0/);
    expect(errorOf(await m.request('GET', '/v1/agents', { headers: { cookie } })).code).toBe('AUTH_REQUIRED');
  });
});
