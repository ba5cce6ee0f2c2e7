import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

/** What the fake token endpoint was sent: its form and headers. */
export interface TokenRequest {
  form: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
}

/** The fake token endpoint's answer. */
export type TokenHandler = (request: TokenRequest) => Promise<{ status: number; body: unknown }> | { status: number; body: unknown };

/**
 * A minimal OIDC issuer on 127.0.0.1:0 for tests: a discovery document, one ES256 key, and tokens
 * signed with it; with `token`, an authorization endpoint (never served: the tests read the URL the
 * manager redirects to) and a token endpoint answered by `token`.
 */
export interface FakeIssuer {
  issuer: string;
  /** An ID token for `drover` (override any claim); `exp` in seconds since the epoch, default 5 minutes ahead. */
  sign(claims: Record<string, unknown>, options?: { exp?: number }): Promise<string>;
  close(): Promise<void>;
}

export async function startFakeIssuer(options: { token?: TokenHandler } = {}): Promise<FakeIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const endpoints = options.token === undefined ? {} : { authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token` };
  server.on('request', (request, response) => {
    const token = options.token;
    if (request.url === '/token' && request.method === 'POST' && token !== undefined) {
      let text = '';
      request.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      request.on('end', () => {
        void Promise.resolve(token({ form: new URLSearchParams(text), headers: request.headers })).then(({ status, body }) => {
          response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        });
      });
      return;
    }
    const body = request.url === '/.well-known/openid-configuration' ? { issuer, jwks_uri: `${issuer}/jwks`, ...endpoints } : { keys: [jwk] };
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  return {
    issuer,
    sign: (claims, options = {}) =>
      new SignJWT({ iss: issuer, aud: 'drover', sub: 'u1', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuedAt()
        .setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 300)
        .sign(privateKey),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
}
