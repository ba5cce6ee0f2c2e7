// The console's sign-in through the issuer (decision 0044), over HTTP without a browser: what
// /ui/login sends the browser to (S256 challenge, state bound to a Lax cookie, the derived redirect
// URI under a route prefix), a confidential client's secret (HTTP Basic, never logged), the nonce,
// the session's expiry at the ID token's, and the refusal pages. The browser path against a real
// provider is test/browser/console-oidc.test.ts.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeIssuer } from './fake-issuer.js';
import type { FakeIssuer, TokenRequest } from './fake-issuer.js';
import { startTestManager } from './harness.js';
import type { TestManager } from './harness.js';

const SECRET = `client-secret-${randomBytes(8).toString('hex')}`;
const PREFIX = '/drover';

let idp: FakeIssuer;
let m: TestManager;
let bare: TestManager;
// What the next token request is answered with, given the request (the test sets it).
let answer: (request: TokenRequest) => Promise<{ status: number; body: unknown }>;
const requests: TokenRequest[] = [];

beforeAll(async () => {
  idp = await startFakeIssuer({
    token: (request) => {
      requests.push(request);
      return answer(request);
    },
  });
  m = await startTestManager({
    oidc: { issuer: idp.issuer, audience: 'drover', clientSecret: SECRET, groupRoles: { 'drover-ops': 'operator' } },
    settings: { routePrefix: PREFIX },
  });
  m.secrets.add(SECRET);
  bare = await startTestManager();
});
afterAll(async () => {
  expect(await m.leakedSecrets()).toEqual([]);
  expect(m.logs.join('\n')).not.toContain(SECRET);
  await m.close();
  await bare.close();
  await idp.close();
});

/** GET /ui/login: the authorization URL's parameters and the state cookie. */
async function begin(): Promise<{ params: URLSearchParams; cookie: string; setCookie: string }> {
  const res = await m.request('GET', '/ui/login');
  expect(res.status, res.text).toBe(302);
  const location = new URL(String(res.headers.location));
  expect(`${location.origin}${location.pathname}`).toBe(`${idp.issuer}/authorize`);
  const setCookie = String(res.headers['set-cookie']);
  return { params: location.searchParams, cookie: setCookie.split(';')[0] ?? '', setCookie };
}

function callback(params: Record<string, string>, cookie?: string): ReturnType<TestManager['request']> {
  return m.request('GET', `/ui/callback?${new URLSearchParams(params).toString()}`, { headers: cookie === undefined ? {} : { cookie } });
}

describe('console sign-in through the issuer', () => {
  it('sends the browser to the issuer with an S256 challenge, a nonce and a state bound to a Lax cookie, under the route prefix', async () => {
    const { params, setCookie } = await begin();
    expect(Object.fromEntries(params)).toMatchObject({ response_type: 'code', client_id: 'drover', code_challenge_method: 'S256', scope: 'openid profile email' });
    expect(params.get('redirect_uri')).toBe(`${m.url}${PREFIX}/ui/callback`);
    expect(params.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(params.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(setCookie).toBe(`drover_login=${params.get('state') ?? ''}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600`);
  });

  it("exchanges the code with the PKCE verifier and the client secret, and opens a session that ends with the ID token", async () => {
    const { params, cookie } = await begin();
    const exp = Math.floor(Date.now() / 1000) + 120;
    answer = async () => ({ status: 200, body: { id_token: await idp.sign({ sub: 'ada', groups: ['drover-ops'], nonce: params.get('nonce') }, { exp }), token_type: 'Bearer', access_token: 'at' } });
    const res = await callback({ state: params.get('state') ?? '', code: 'the-code', iss: idp.issuer }, cookie);
    expect(res.status, res.text).toBe(302);
    expect(res.headers.location).toBe('./');
    const sent = requests.at(-1);
    expect(Object.fromEntries(sent?.form ?? [])).toEqual({ grant_type: 'authorization_code', code: 'the-code', redirect_uri: params.get('redirect_uri'), code_verifier: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) as unknown });
    expect(createHash('sha256').update(sent?.form.get('code_verifier') ?? '').digest('base64url')).toBe(params.get('code_challenge'));
    expect(sent?.headers['authorization']).toBe(`Basic ${Buffer.from(`drover:${SECRET}`).toString('base64')}`);
    const cookies = [res.headers['set-cookie']].flat().map(String);
    expect(cookies.find((c) => c.startsWith('drover_login='))).toContain('Max-Age=0');
    const session = cookies.find((c) => c.startsWith('drover_session=')) ?? '';
    expect(session).toMatch(/HttpOnly; SameSite=Strict; Max-Age=1[01]\d/);
    const opened = await m.request('GET', '/ui/session', { headers: { cookie: session.split(';')[0] ?? '' } });
    expect(opened.json).toMatchObject({ operator: 'user:ada', role: 'operator', expiresAt: new Date(exp * 1000).toISOString() });
    const records = await m.auditRecords();
    expect(records.some((r) => r.event === 'token.used' && r.actor === 'user:ada' && r.details['route'] === 'GET /ui/callback')).toBe(true);
    // The state is spent: the same callback again is refused.
    const again = await callback({ state: params.get('state') ?? '', code: 'the-code' }, cookie);
    expect(again.status).toBe(400);
    expect(again.text).toContain('data-code="OIDC_LOGIN_STATE_INVALID"');
  });

  it('refuses an ID token without the sign-in\'s nonce, a refused exchange, an issuer error and a foreign iss, each as a page', async () => {
    const cases: { name: string; token: () => Promise<{ status: number; body: unknown }>; extra?: Record<string, string>; status: number; code: string; text?: string }[] = [
      { name: 'nonce', token: async () => ({ status: 200, body: { id_token: await idp.sign({ sub: 'ada', groups: ['drover-ops'], nonce: 'another' }) } }), status: 401, code: 'OIDC_TOKEN_INVALID' },
      { name: 'exchange', token: () => Promise.resolve({ status: 400, body: { error: 'invalid_grant', error_description: 'grant request is invalid' } }), status: 502, code: 'OIDC_TOKEN_EXCHANGE_FAILED', text: 'invalid_grant' },
      { name: 'denied', token: () => Promise.reject(new Error('not called')), extra: { error: 'access_denied', error_description: 'End-User aborted interaction' }, status: 403, code: 'OIDC_LOGIN_REFUSED', text: 'access_denied' },
      { name: 'mix-up', token: () => Promise.reject(new Error('not called')), extra: { iss: 'https://evil.example' }, status: 403, code: 'OIDC_LOGIN_REFUSED' },
    ];
    for (const c of cases) {
      const { params, cookie } = await begin();
      answer = c.token;
      const res = await callback({ state: params.get('state') ?? '', ...(c.extra?.['error'] === undefined ? { code: 'c' } : {}), ...c.extra }, cookie);
      expect(res.status, c.name).toBe(c.status);
      expect(res.headers['content-type'], c.name).toContain('text/html');
      expect(res.headers['content-security-policy'], c.name).toContain("script-src 'self'");
      expect(res.text, c.name).toContain(`data-code="${c.code}"`);
      if (c.text !== undefined) expect(res.text, c.name).toContain(c.text);
      expect(String(res.headers['set-cookie']), c.name).not.toContain('drover_session=');
    }
  });

  it('refuses a state that is not the cookie\'s, and a callback without the cookie', async () => {
    const first = await begin();
    const second = await begin();
    const crossed = await callback({ state: first.params.get('state') ?? '', code: 'c' }, second.cookie);
    expect(crossed.status).toBe(400);
    expect(crossed.text).toContain('data-code="OIDC_LOGIN_STATE_INVALID"');
    const cookieless = await callback({ state: second.params.get('state') ?? '', code: 'c' });
    expect(cookieless.status).toBe(400);
    expect(cookieless.text).toContain('data-code="OIDC_LOGIN_STATE_INVALID"');
  });

  it('answers OIDC_NOT_CONFIGURED on a manager without an issuer', async () => {
    const res = await bare.request('GET', '/ui/login');
    expect(res.status).toBe(404);
    expect(res.text).toContain('data-code="OIDC_NOT_CONFIGURED"');
  });
});
