// The web console's single sign-on in a real Chromium against a real OpenID provider (panva's
// `oidc-provider`, its own login and consent pages) and `drover manager start`: the authorization
// code flow with PKCE, a session opened as the person (user:<sub>) with the role their groups map
// to, a viewer refused an operator action, a person in no mapped group refused (ROLE_NONE), a
// declined consent (access_denied) and a tampered state refused. The browser reaches the manager as
// localhost and the provider as 127.0.0.1: two sites, as in production (the sign-in's state cookie
// must survive the provider's cross-site redirect back). Screenshots go to $DROVER_ARTIFACTS_DIR/console.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Ed25519PrivateKey } from '@drover/protocol';
import Provider from 'oidc-provider';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManagerProcess, initManagerDir, publishRandomRelease } from '../helpers/manager-process.js';
import { skipUnlessRequired } from '../helpers/skip.js';

const CHROMIUM = process.env['DROVER_CHROMIUM'] ?? '/usr/bin/chromium';
const skip = skipUnlessRequired('the browser tests', existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (apt-get install chromium)`, 'DROVER_REQUIRE_BROWSER');
const artifacts = resolve(process.env['DROVER_ARTIFACTS_DIR'] ?? 'test-artifacts', 'console');
const CLIENT_ID = 'drover-console';
// Who can sign in at the provider (any password), and the groups its ID tokens say they are in.
const PEOPLE: Record<string, string[]> = { olga: ['drover-ops'], vera: ['drover-viewers'], nemo: ['elsewhere'] };

/** An HTTP server on 127.0.0.1:0 whose handler is set later: the provider needs the manager's URL, which needs the issuer's. */
async function listen(): Promise<{ url: string; serve: (handler: (request: IncomingMessage, response: ServerResponse) => void) => void; close: () => Promise<void> }> {
  let handler = (_request: IncomingMessage, response: ServerResponse): void => {
    response.statusCode = 503;
    response.end();
  };
  const server = createServer((request, response) => {
    handler(request, response);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    serve: (next) => {
      handler = next;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((done) => {
        server.close(() => {
          done();
        });
      });
    },
  };
}

/** The provider: one public client for the console (code flow, PKCE required), its development login and consent pages. */
function provider(issuer: string, redirectUri: string): Provider {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const op = new Provider(issuer, {
    clients: [{ client_id: CLIENT_ID, token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [redirectUri] }],
    pkce: { required: () => true },
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' }] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    // The groups ride in the ID token, where the manager reads them.
    claims: { openid: ['sub', 'groups'], email: ['email'], profile: ['name'] },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    ttl: { IdToken: 3600, AccessToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
    findAccount: (_ctx, id) => (PEOPLE[id] === undefined ? undefined : { accountId: id, claims: () => ({ sub: id, groups: PEOPLE[id], email: `${id}@example.test` }) }),
  });
  op.on('server_error', (_ctx, error) => {
    console.error('oidc-provider server_error', error);
  });
  return op;
}

describe.skipIf(skip)("the web console's single sign-on through a real OpenID provider", () => {
  let root: string | undefined;
  let manager: ManagerProcess | undefined;
  let issuerServer: Awaited<ReturnType<typeof listen>> | undefined;
  let browser: Browser | undefined;
  let adminToken: string;
  let deploymentId: string;
  const mgr = (): ManagerProcess => {
    if (manager === undefined) throw new Error('the manager did not start');
    return manager;
  };
  // The browser's name for the manager: another site than the provider's 127.0.0.1.
  const consoleUrl = (): string => mgr().url.replace('127.0.0.1', 'localhost');
  const auditRecords = async (): Promise<{ event: string; actor: string; details: Record<string, unknown> }[]> =>
    (await readFile(join(root ?? '', 'm', 'audit', 'audit.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { event: string; actor: string; details: Record<string, unknown> });
  const shot = (page: Page, name: string): Promise<Buffer> => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

  /** A fresh browser (no cookies) that clicks "Sign in with SSO" and gets as far as the provider's login page. */
  async function toProvider(): Promise<Page> {
    if (browser === undefined) throw new Error('Chromium did not start');
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${consoleUrl()}/ui/`);
    await page.click('a.sso');
    await page.waitForSelector('input[name=login]');
    return page;
  }

  /** Signs `person` in at the provider's login page and accepts its consent page. */
  async function signIn(page: Page, person: string, shots?: string): Promise<void> {
    if (shots !== undefined) await shot(page, `${shots}-provider-login`);
    await page.fill('input[name=login]', person);
    await page.fill('input[name=password]', 'any');
    await page.click('button[type=submit]');
    await page.waitForSelector('button[type=submit]:has-text("Continue")');
    if (shots !== undefined) await shot(page, `${shots}-provider-consent`);
    await page.click('button[type=submit]');
  }

  beforeAll(async () => {
    await mkdir(artifacts, { recursive: true });
    root = await mkdtemp(join(tmpdir(), 'drover-console-oidc-'));
    issuerServer = await listen();
    const env = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: root,
      DROVER_OIDC_ISSUER: issuerServer.url,
      DROVER_OIDC_AUDIENCE: CLIENT_ID,
      DROVER_OIDC_GROUP_ROLES: 'drover-ops=operator,drover-viewers=viewer',
    };
    const releaseKey = Ed25519PrivateKey.generate();
    const tokens = await initManagerDir(join(root, 'm'), releaseKey, env);
    adminToken = tokens.adminToken;
    manager = await ManagerProcess.start(join(root, 'm'), env);
    // No oidc.redirectUri: the manager derives it from the request to /ui/login.
    issuerServer.serve(provider(issuerServer.url, `${consoleUrl()}/ui/callback`).callback());
    // A rollout to act on (no hosts: its actions are still the operator's to take).
    await publishRandomRelease(manager.url, tokens.deployToken, releaseKey, '1.0.0');
    const started = await manager.call('POST', '/manager/v1/updates/notify', { authorization: `Bearer ${tokens.deployToken}` }, { version: '1.0.0', strategy: 'manual' });
    expect(started.status, JSON.stringify(started.json)).toBe(200);
    deploymentId = (started.json as { deployment_id: string }).deployment_id;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await manager?.stop();
    await issuerServer?.close();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it('signs an operator in through the provider (code + PKCE): a Strict session as user:<sub>, with the operator role, audited', async () => {
    const page = await toProvider();
    const authorize = new URL(page.url());
    expect(authorize.origin).toBe(issuerServer?.url);
    await signIn(page, 'olga', 'sso');
    await page.waitForSelector('nav');
    expect(new URL(page.url()).pathname).toBe('/ui/');
    await page.waitForSelector('h1:has-text("Fleet")');
    await shot(page, 'sso-fleet');
    await expect(page.locator('nav .who').textContent()).resolves.toBe('user:olga');
    // page.request sends the page's cookies, as a script of the page would.
    const session = (await (await page.request.get(`${consoleUrl()}/ui/session`)).json()) as { operator: string; role: string; expiresAt: string };
    expect(session).toMatchObject({ operator: 'user:olga', role: 'operator' });
    // The session ends no later than the ID token (an hour at this provider), not after the console's 8 hours.
    expect(Date.parse(session.expiresAt)).toBeLessThanOrEqual(Date.now() + 3600_000 + 5_000);
    const cookies = await page.context().cookies(consoleUrl());
    expect(cookies.find((c) => c.name === 'drover_session')).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(cookies.find((c) => c.name === 'drover_login')).toBeUndefined();
    // The operator's rollout action goes through.
    await page.goto(`${consoleUrl()}/ui/#/rollouts`);
    await page.locator(`[data-deployment="${deploymentId}"] button[data-action=pause]`).click();
    await page.click('dialog button[data-confirm]');
    await page.waitForSelector('.message:has-text("pause: sent")', { timeout: 10_000 });
    await shot(page, 'sso-operator-rollouts');
    const audit = await auditRecords();
    expect(audit).toContainEqual(expect.objectContaining({ event: 'token.used', actor: 'user:olga', details: expect.objectContaining({ route: 'GET /ui/callback', role: 'operator' }) as unknown }));
    expect(audit).toContainEqual(expect.objectContaining({ event: 'token.used', actor: 'user:olga', details: expect.objectContaining({ route: 'POST /manager/v1/updates/:deployment_id/:action' }) as unknown }));
    await page.context().close();
  }, 60_000);

  it("shows a viewer the API's 403 on an operator action", async () => {
    const page = await toProvider();
    await signIn(page, 'vera');
    await page.waitForSelector('nav');
    await page.goto(`${consoleUrl()}/ui/#/rollouts`);
    await page.locator(`[data-deployment="${deploymentId}"] button[data-action=resume]`).click();
    await page.click('dialog button[data-confirm]');
    await page.waitForSelector('.message:has-text("TOKEN_SCOPE_INSUFFICIENT")', { timeout: 10_000 });
    await expect(page.locator('.message').textContent()).resolves.toContain('viewer');
    await shot(page, 'sso-viewer-refused');
    const status = await mgr().call('GET', `/manager/v1/updates/status?deployment_id=${deploymentId}`, { authorization: `Bearer ${adminToken}` });
    expect(JSON.stringify(status.json)).toContain('paused');
    await page.context().close();
  }, 60_000);

  it('refuses a person in no mapped group with ROLE_NONE, and opens no session', async () => {
    const page = await toProvider();
    await signIn(page, 'nemo');
    await page.waitForSelector('[data-code=ROLE_NONE]');
    await expect(page.locator('.error').textContent()).resolves.toContain('drover-ops');
    await shot(page, 'sso-role-none');
    expect((await page.context().cookies(consoleUrl())).find((c) => c.name === 'drover_session')).toBeUndefined();
    expect(await auditRecords()).toContainEqual(expect.objectContaining({ event: 'token.rejected', actor: 'user:nemo', details: expect.objectContaining({ reason: 'ROLE_NONE' }) as unknown }));
    await page.context().close();
  }, 60_000);

  it("shows the provider's access_denied when the person cancels", async () => {
    const page = await toProvider();
    await page.click('a:has-text("Cancel")');
    await page.waitForSelector('[data-code=OIDC_LOGIN_REFUSED]');
    await expect(page.locator('.error').textContent()).resolves.toContain('access_denied');
    await shot(page, 'sso-access-denied');
    await page.context().close();
  }, 60_000);

  it('refuses a sign-in whose state was tampered with on the way, and a replayed callback', async () => {
    if (browser === undefined) throw new Error('Chromium did not start');
    const page = await (await browser.newContext()).newPage();
    // The manager's redirect to the provider, its state altered before the provider sees it: the
    // provider sends the altered state back, which is not the one this browser's cookie holds.
    const [authorize] = await Promise.all([page.waitForRequest((request) => new URL(request.url()).pathname === '/auth'), page.goto(`${consoleUrl()}/ui/login`)]);
    const tampered = new URL(authorize.url());
    tampered.searchParams.set('state', randomBytes(32).toString('base64url'));
    await page.goto(tampered.href);
    await signIn(page, 'olga');
    await page.waitForSelector('[data-code=OIDC_LOGIN_STATE_INVALID]');
    await shot(page, 'sso-state-tampered');
    expect((await page.context().cookies(consoleUrl())).find((c) => c.name === 'drover_session')).toBeUndefined();
    // A genuine sign-in, then its callback replayed (its code and state spent): refused.
    const callbacks: string[] = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === '/ui/callback') callbacks.push(request.url());
    });
    await page.goto(`${consoleUrl()}/ui/login`);
    await page.waitForSelector('nav');
    expect(callbacks).toHaveLength(1);
    const replay = await page.goto(callbacks[0] ?? '');
    expect(replay?.status()).toBe(400);
    await page.waitForSelector('[data-code=OIDC_LOGIN_STATE_INVALID]');
    await page.context().close();
  }, 60_000);
});
