import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManagerError } from '../errors.js';
import { OidcVerifier } from './oidc-verifier.js';
import { startFakeIssuer } from '../../test/fake-issuer.js';
import type { FakeIssuer } from '../../test/fake-issuer.js';

let fake: FakeIssuer;
let issuer = '';
const sign = (claims: Record<string, unknown>, options?: { exp?: number }): Promise<string> => fake.sign(claims, options);
beforeAll(async () => {
  fake = await startFakeIssuer();
  issuer = fake.issuer;
});
afterAll(() => fake.close());

async function codeOf(verifier: OidcVerifier, token: string): Promise<string> {
  const error = await verifier.verify(token).then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(ManagerError);
  return (error as ManagerError).code;
}

describe('OidcVerifier', () => {
  const verifier = (): OidcVerifier => new OidcVerifier({ issuer, audience: 'drover', groupRoles: { 'drover-admins': 'admin', 'drover-viewers': 'viewer', 'drover-ops': 'operator' } });

  it('maps a valid token to the highest role among its mapped groups', async () => {
    const person = await verifier().verify(await sign({ groups: ['drover-viewers', 'drover-ops', 'other'], email: 'a@example.com' }));
    expect(person).toEqual({ subject: 'u1', email: 'a@example.com', groups: ['drover-viewers', 'drover-ops', 'other'], role: 'operator' });
  });

  it('refuses a wrong audience, a wrong issuer, an expired token, a tampered signature and a token with no mapped group, each with its code', async () => {
    const v = verifier();
    expect(await codeOf(v, await sign({ aud: 'someone-else', groups: ['drover-admins'] }))).toBe('OIDC_AUDIENCE_MISMATCH');
    expect(await codeOf(v, await sign({ iss: 'https://evil.example', groups: ['drover-admins'] }))).toBe('OIDC_ISSUER_MISMATCH');
    expect(await codeOf(v, await sign({ groups: ['drover-admins'] }, { exp: Math.floor(Date.now() / 1000) - 3600 }))).toBe('OIDC_TOKEN_EXPIRED');
    const good = await sign({ groups: ['drover-viewers'] });
    const [header, payload, signature] = good.split('.') as [string, string, string];
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), groups: ['drover-admins'] })).toString('base64url');
    expect(await codeOf(v, `${header}.${forged}.${signature}`)).toBe('OIDC_TOKEN_INVALID');
    expect(await codeOf(v, await sign({ groups: ['unmapped'] }))).toBe('ROLE_NONE');
  });

  it('refuses an unsigned (alg none) token', async () => {
    const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: issuer, aud: 'drover', sub: 'x', exp: 9_999_999_999, groups: ['drover-admins'] })).toString('base64url')}.`;
    expect(await codeOf(verifier(), `${none}x`)).toBe('OIDC_TOKEN_INVALID');
  });
});
