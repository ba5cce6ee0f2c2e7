// A real OpenID provider for the suites that log people in: panva's `oidc-provider` (the certified
// implementation most Node stacks test against), on 127.0.0.1:0, with the device authorization
// grant (RFC 8628) on, public clients, people whose `groups` claim drover maps to roles, and the
// provider's own development login and consent pages, which `approveDevice` and `denyDevice` drive
// over HTTP the way a person's browser would (cookies, the xsrf field, redirects).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { request } from 'undici';

/** A client registered at the provider. */
export interface TestOidcClient {
  clientId: string;
  /** Default: device flow and refresh tokens (`drover login`). */
  grantTypes?: readonly string[];
  /** For a browser login (authorization code + PKCE): where the provider may send the code. */
  redirectUris?: readonly string[];
  /** Seconds its device codes live before a poll gets expired_token (default 600). */
  deviceCodeTtlSeconds?: number;
}

/** A person who can log in: the account id is what the login page is given. */
export interface TestOidcAccount {
  accountId: string;
  groups: readonly string[];
}

export interface TestOidcProviderOptions {
  clients: readonly TestOidcClient[];
  accounts: readonly TestOidcAccount[];
  /** Seconds an ID token (and access token) lives (default 3600). */
  idTokenTtlSeconds?: number;
  /** Seconds the device authorization answer asks clients to wait between polls (default 1; RFC 8628 says 5 when absent). */
  pollIntervalSeconds?: number;
}

export interface TestOidcProvider {
  /** The issuer URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
  issuer: string;
  /** Signs `accountId` in at the device verification page, confirms `userCode` and consents, as a browser would. */
  approveDevice(userCode: string, accountId: string): Promise<void>;
  /** Presses the verification page's Abort: the CLI's next poll gets access_denied. */
  denyDevice(userCode: string): Promise<void>;
  close(): Promise<void>;
}

/** A browser's cookie jar and redirect following, enough for the provider's own pages. */
class Browser {
  readonly #cookies = new Map<string, string>();

  async #send(url: URL, init: { method: string; form?: Record<string, string> }): Promise<{ status: number; location: string | undefined; html: string }> {
    const headers: Record<string, string> = {};
    if (this.#cookies.size > 0) headers['cookie'] = [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (init.form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    // undici's request follows no redirect: each hop's cookies land in the jar, as in a browser.
    const response = await request(url, { method: init.method as 'GET' | 'POST', headers, headersTimeout: 10_000, bodyTimeout: 10_000, ...(init.form === undefined ? {} : { body: new URLSearchParams(init.form).toString() }) });
    const setCookie = response.headers['set-cookie'];
    for (const line of Array.isArray(setCookie) ? setCookie : setCookie === undefined ? [] : [setCookie]) {
      const [pair = ''] = line.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      // An expired cookie (the provider clearing one) leaves the jar.
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    const location = response.headers['location'];
    return { status: response.statusCode, location: typeof location === 'string' ? location : undefined, html: await response.body.text() };
  }

  /** Sends, follows redirects (as GETs), and returns the final page's URL and HTML. */
  async go(url: URL, init: { method: string; form?: Record<string, string> } = { method: 'GET' }): Promise<{ url: URL; html: string; status: number }> {
    let at = url;
    let response = await this.#send(at, init);
    for (let hops = 0; response.status >= 300 && response.status < 400; hops += 1) {
      if (hops > 20) throw new Error(`too many redirects from ${url.href}`);
      at = new URL(response.location ?? '', at);
      response = await this.#send(at, { method: 'GET' });
    }
    return { url: at, html: response.html, status: response.status };
  }
}

/** The first form of a page: its action (absolute) and its named inputs' values. */
function firstForm(page: { url: URL; html: string }): { action: URL; fields: Record<string, string> } {
  const form = /<form[^>]*>([\s\S]*?)<\/form>/i.exec(page.html);
  if (form === null) throw new Error(`no form on ${page.url.href}: ${page.html.slice(0, 2000)}`);
  const action = /action="([^"]*)"/i.exec(form[0])?.[1] ?? page.url.href;
  const fields: Record<string, string> = {};
  for (const input of form[1]?.matchAll(/<input[^>]*>/gi) ?? []) {
    const name = /name="([^"]*)"/i.exec(input[0])?.[1];
    const value = /value="([^"]*)"/i.exec(input[0])?.[1] ?? '';
    if (name !== undefined) fields[name] = value.replaceAll('&amp;', '&').replaceAll('&quot;', '"');
  }
  return { action: new URL(action.replaceAll('&amp;', '&'), page.url), fields };
}

/**
 * Starts the provider on 127.0.0.1 (any free port).
 *
 * @example
 * const op = await startOidcProvider({ clients: [{ clientId: 'drover-cli' }], accounts: [{ accountId: 'ada', groups: ['drover-admins'] }] });
 * // ... op.issuer in the manager's DROVER_OIDC_ISSUER, op.approveDevice(userCode, 'ada') once the CLI printed the code
 * await op.close();
 */
export async function startOidcProvider(options: TestOidcProviderOptions): Promise<TestOidcProvider> {
  let handle: (request: IncomingMessage, response: ServerResponse) => void = (_request, response) => {
    response.statusCode = 503;
    response.end();
  };
  const server = createServer((request, response) => {
    handle(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
  const clients = new Map(options.clients.map((client) => [client.clientId, client]));
  const accounts = new Map(options.accounts.map((account) => [account.accountId, account]));
  const provider = new Provider(issuer, {
    clients: options.clients.map((client) => ({
      client_id: client.clientId,
      token_endpoint_auth_method: 'none',
      grant_types: [...(client.grantTypes ?? ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'])],
      response_types: client.redirectUris === undefined ? [] : ['code'],
      redirect_uris: [...(client.redirectUris ?? [])],
      application_type: 'native',
    })),
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    // The groups ride in the ID token itself, where the manager reads them.
    claims: { openid: ['sub', 'groups'] },
    conformIdTokenClaims: false,
    features: { deviceFlow: { enabled: true }, devInteractions: { enabled: true }, revocation: { enabled: true } },
    scopes: ['openid', 'offline_access'],
    ttl: {
      IdToken: options.idTokenTtlSeconds ?? 3600,
      AccessToken: options.idTokenTtlSeconds ?? 3600,
      DeviceCode: (_ctx: unknown, _code: unknown, client: { clientId: string }) => clients.get(client.clientId)?.deviceCodeTtlSeconds ?? 600,
      RefreshToken: 24 * 3600,
      Grant: 24 * 3600,
      Interaction: 600,
      Session: 24 * 3600,
    },
    findAccount: (_ctx, id) => {
      const account = accounts.get(id);
      if (account === undefined) return undefined;
      return { accountId: id, claims: () => ({ sub: id, groups: [...account.groups] }) };
    },
  });
  // RFC 8628's `interval`: the provider leaves it out (clients then wait 5 s); a short one keeps the suites quick.
  const interval = options.pollIntervalSeconds ?? 1;
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/device/auth' && ctx.status === 200 && typeof ctx.body === 'object' && ctx.body !== null) (ctx.body as Record<string, unknown>)['interval'] = interval;
  });
  // Its notices about development-only settings are not failures of the suite.
  provider.on('server_error', (_ctx, error) => {
    console.error('oidc-provider server_error', error);
  });
  handle = provider.callback();

  async function confirmPage(browser: Browser, userCode: string): Promise<{ url: URL; html: string }> {
    // verification_uri_complete answers with a self-submitting form (the xsrf field), which a browser posts.
    const start = await browser.go(new URL(`/device?user_code=${encodeURIComponent(userCode)}`, issuer));
    const autoPost = firstForm(start);
    return browser.go(autoPost.action, { method: 'POST', form: autoPost.fields });
  }

  return {
    issuer,
    async approveDevice(userCode, accountId) {
      const browser = new Browser();
      const confirm = firstForm(await confirmPage(browser, userCode));
      let page = await browser.go(confirm.action, { method: 'POST', form: { ...confirm.fields, confirm: 'yes' } });
      // The provider's own interactions: a login form, then a consent form; then its success page.
      for (let step = 0; step < 4 && !/Sign-in Success/.test(page.html); step += 1) {
        const form = firstForm(page);
        const extra: Record<string, string> = form.fields['prompt'] === 'login' ? { login: accountId, password: 'any' } : {};
        page = await browser.go(form.action, { method: 'POST', form: { ...form.fields, ...extra } });
      }
      if (!/Sign-in Success/.test(page.html)) throw new Error(`the provider did not approve ${userCode}: ${page.html.slice(0, 2000)}`);
    },
    async denyDevice(userCode) {
      const browser = new Browser();
      const confirm = firstForm(await confirmPage(browser, userCode));
      await browser.go(confirm.action, { method: 'POST', form: { ...confirm.fields, abort: 'yes' } });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}
