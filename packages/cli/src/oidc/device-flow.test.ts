import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../../test/helpers/expect-error.js';
import { CliError } from '../errors.js';
import { createCliHttp } from '../manager-client.js';
import { discoverIssuer, issuerUrl, loginScope, pollDeviceToken, refreshTokens, startDeviceAuthorization } from './device-flow.js';
import type { DeviceAuthorization, IssuerMetadata } from './device-flow.js';

// The device flow client against a scripted token endpoint (a real HTTP server on port 0): the
// answers a real provider rarely gives on cue (slow_down, expired_token, an unknown error), and
// the timing rules of RFC 8628 3.5 on a fake clock.

let server: Server | undefined;
const requests: Record<string, string>[] = [];

/** An issuer whose token endpoint answers `answers` in turn (status and JSON body), and whose discovery names `issuerName`. */
async function issuer(answers: { status: number; body: unknown }[], discovery: (base: string) => unknown = (base) => ({ issuer: base, token_endpoint: `${base}/token`, device_authorization_endpoint: `${base}/device/auth` })): Promise<string> {
  server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    request.on('end', () => {
      const base = `http://127.0.0.1:${(server?.address() as AddressInfo).port}`;
      let answer: { status: number; body: unknown };
      if (request.url === '/.well-known/openid-configuration') answer = { status: 200, body: discovery(base) };
      else {
        requests.push(Object.fromEntries(new URLSearchParams(text)));
        answer = answers.shift() ?? { status: 500, body: {} };
      }
      response.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  requests.length = 0;
  const running = server;
  server = undefined;
  if (running === undefined) return;
  running.closeAllConnections();
  running.close();
  await once(running, 'close');
});

const authorization: DeviceAuthorization = { deviceCode: 'dc-1', userCode: 'ABCD-EFGH', verificationUri: 'x', verificationUriComplete: undefined, expiresInSeconds: 60, intervalSeconds: 1 };
const idToken = `e30.${Buffer.from(JSON.stringify({ sub: 'vera', exp: 2_000_000_000 })).toString('base64url')}.sig`;

/** A fake clock that sleeping advances; the sleeps are recorded. */
function clock(): { sleeps: number[]; sleep: (ms: number) => Promise<void>; now: () => number } {
  let at = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    sleep: (ms) => {
      sleeps.push(ms);
      at += ms;
      return Promise.resolve();
    },
    now: () => at,
  };
}

describe('pollDeviceToken (RFC 8628 3.4-3.5)', () => {
  it('waits the interval before each poll, adds 5 s at each slow_down, and returns the tokens once approved', async () => {
    const base = await issuer([
      { status: 400, body: { error: 'authorization_pending' } },
      { status: 400, body: { error: 'slow_down' } },
      { status: 400, body: { error: 'authorization_pending' } },
      { status: 200, body: { id_token: idToken, refresh_token: 'rt-1', expires_in: 3600, token_type: 'Bearer' } },
    ]);
    const metadata = await discoverIssuer(createCliHttp(), base);
    const time = clock();
    const tokens = await pollDeviceToken(createCliHttp(), metadata, 'drover-cli', authorization, time);
    expect(tokens).toEqual({ idToken, refreshToken: 'rt-1', expiresInSeconds: 3600 });
    expect(time.sleeps).toEqual([1000, 1000, 6000, 6000]);
    expect(requests).toHaveLength(4);
    expect(requests[0]).toEqual({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: 'dc-1', client_id: 'drover-cli' });
  });

  it.each([
    ['access_denied', 'LOGIN_DENIED'],
    ['expired_token', 'DEVICE_CODE_EXPIRED'],
    ['invalid_client', 'OIDC_PROVIDER_ERROR'],
  ])('%s is %s', async (error, code) => {
    const base = await issuer([{ status: 400, body: { error, error_description: 'said the issuer\u001b[31m' } }]);
    const metadata = await discoverIssuer(createCliHttp(), base);
    await expectRejection(pollDeviceToken(createCliHttp(), metadata, 'drover-cli', authorization, clock()), CliError, code);
  });

  it('stops at the code expiry without another poll: DEVICE_CODE_EXPIRED', async () => {
    const base = await issuer(Array.from({ length: 10 }, () => ({ status: 400, body: { error: 'authorization_pending' } })));
    const metadata = await discoverIssuer(createCliHttp(), base);
    await expectRejection(pollDeviceToken(createCliHttp(), metadata, 'drover-cli', { ...authorization, expiresInSeconds: 3 }, clock()), CliError, 'DEVICE_CODE_EXPIRED');
    expect(requests).toHaveLength(2);
  });
});

describe('discovery and the device authorization request', () => {
  it('asks for openid and offline_access, and reads the verification URIs and the interval', async () => {
    const base = await issuer([{ status: 200, body: { device_code: 'dc', user_code: 'WXYZ-ABCD', verification_uri: 'https://op/device', verification_uri_complete: 'https://op/device?user_code=WXYZ-ABCD', expires_in: 300, interval: 2 } }]);
    const metadata = await discoverIssuer(createCliHttp(), base);
    const started = await startDeviceAuthorization(createCliHttp(), metadata, 'drover-cli');
    expect(requests[0]).toEqual({ client_id: 'drover-cli', scope: 'openid offline_access' });
    expect(started).toEqual({ deviceCode: 'dc', userCode: 'WXYZ-ABCD', verificationUri: 'https://op/device', verificationUriComplete: 'https://op/device?user_code=WXYZ-ABCD', expiresInSeconds: 300, intervalSeconds: 2 });
  });

  it('asks for openid alone from an issuer without offline_access', () => {
    const metadata: IssuerMetadata = { issuer: 'https://op', tokenEndpoint: 'https://op/token', deviceAuthorizationEndpoint: undefined, revocationEndpoint: undefined, scopesSupported: ['openid', 'profile'] };
    expect(loginScope(metadata)).toBe('openid');
  });

  it('refuses a discovery document naming another issuer, and an issuer with no device endpoint: LOGIN_UNAVAILABLE', async () => {
    const base = await issuer([], () => ({ issuer: 'https://evil.example', token_endpoint: 'https://evil.example/token' }));
    await expectRejection(discoverIssuer(createCliHttp(), base), CliError, 'LOGIN_UNAVAILABLE');
    const metadata: IssuerMetadata = { issuer: base, tokenEndpoint: `${base}/token`, deviceAuthorizationEndpoint: undefined, revocationEndpoint: undefined, scopesSupported: undefined };
    await expectRejection(startDeviceAuthorization(createCliHttp(), metadata, 'drover-cli'), CliError, 'LOGIN_UNAVAILABLE');
  });

  it('talks to an issuer over https only, http only on a loopback address', () => {
    expect(() => issuerUrl('http://login.example.com', 'OIDC issuer')).toThrow(CliError);
    expect(issuerUrl('http://127.0.0.1:9000', 'OIDC issuer').port).toBe('9000');
    expect(issuerUrl('https://login.example.com/realms/ops', 'OIDC issuer').pathname).toBe('/realms/ops');
  });

  it('a refused refresh is LOGIN_REFRESH_FAILED', async () => {
    const base = await issuer([{ status: 400, body: { error: 'invalid_grant' } }]);
    const metadata = await discoverIssuer(createCliHttp(), base);
    await expectRejection(refreshTokens(createCliHttp(), metadata, 'drover-cli', 'rt-old'), CliError, 'LOGIN_REFRESH_FAILED');
    expect(requests[0]).toEqual({ grant_type: 'refresh_token', refresh_token: 'rt-old', client_id: 'drover-cli' });
  });
});
