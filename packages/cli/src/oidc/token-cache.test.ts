// The login cache (token-cache.ts) and the cached ID token operator commands send (login-session.ts), which reads it.
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../../test/helpers/expect-error.js';
import { CliError } from '../errors.js';
import { createCliHttp } from '../manager-client.js';
import { cachedIdToken } from './login-session.js';
import { jwtExpiry, loginPath, readLogin, removeLogin, writeLogin } from './token-cache.js';
import type { CachedLogin } from './token-cache.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-logins-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const jwt = (claims: Record<string, unknown>): string => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
const login = (managerUrl: string, expiresAt: string, refreshToken?: string): CachedLogin => ({ managerUrl, issuer: 'https://op.example', clientId: 'drover-cli', idToken: jwt({ sub: 'vera' }), refreshToken, expiresAt });

describe('the login cache', () => {
  it('writes one file per manager, 0600 in a 0700 directory, and reads and removes it by the manager URL', async () => {
    const logins = join(dir, 'logins');
    const path = await writeLogin(logins, login('https://m.example:8443', '2030-01-01T00:00:00.000Z', 'rt'));
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(logins)).mode & 0o777).toBe(0o700);
    expect(loginPath(logins, 'https://m.example:8443/')).toBe(path);
    expect(loginPath(logins, 'https://other.example:8443')).not.toBe(path);
    expect(await readLogin(logins, 'https://m.example:8443/')).toMatchObject({ refreshToken: 'rt' });
    expect(await readLogin(logins, 'https://other.example:8443')).toBeUndefined();
    expect(await removeLogin(logins, 'https://m.example:8443')).toBe(true);
    expect(await removeLogin(logins, 'https://m.example:8443')).toBe(false);
    expect(await readdir(logins)).toEqual([]);
  });

  it('treats a file that is not a login as no login', async () => {
    const logins = join(dir, 'logins');
    const path = await writeLogin(logins, login('https://m.example', '2030-01-01T00:00:00.000Z'));
    await writeFile(path, '{"managerUrl":');
    expect(await readLogin(logins, 'https://m.example')).toBeUndefined();
  });

  it("reads a JWT's exp, and nothing from what is not a JWT", () => {
    expect(jwtExpiry(jwt({ exp: 1_900_000_000 }))).toBe(1_900_000_000);
    expect(jwtExpiry('opaque-token')).toBeUndefined();
    expect(jwtExpiry(jwt({ exp: 'soon' }))).toBeUndefined();
  });
});

describe('cachedIdToken', () => {
  it('hands out the cached ID token while it has more than 60 s left, without calling the issuer', async () => {
    const logins = join(dir, 'logins');
    const cached = login('https://m.example', new Date(Date.now() + 5 * 60_000).toISOString(), 'rt');
    await writeLogin(logins, cached);
    expect(await cachedIdToken({ directory: logins, managerUrl: 'https://m.example', http: createCliHttp() })).toBe(cached.idToken);
    expect(await cachedIdToken({ directory: logins, managerUrl: 'https://none.example', http: createCliHttp() })).toBeUndefined();
  });

  it('a refresh that fails because another command already refreshed uses the tokens that command wrote', async () => {
    const logins = join(dir, 'logins');
    const stale = login('https://m.example', new Date(Date.now() - 1000).toISOString(), 'rt-spent');
    await writeLogin(logins, stale);
    const fresh = { ...login('https://m.example', new Date(Date.now() + 3600_000).toISOString(), 'rt-new'), idToken: jwt({ sub: 'vera', n: 2 }) };
    // The issuer is unreachable here; meanwhile (as the refresh fails) the other command's login lands.
    const http = {
      json: async () => {
        await writeLogin(logins, fresh);
        throw new CliError('NETWORK_ERROR', 'unreachable');
      },
    } as unknown as ReturnType<typeof createCliHttp>;
    expect(await cachedIdToken({ directory: logins, managerUrl: 'https://m.example', http })).toBe(fresh.idToken);
  });

  it('an ID token within 60 s of expiry and no refresh token: LOGIN_REFRESH_FAILED', async () => {
    const logins = join(dir, 'logins');
    await writeLogin(logins, login('https://m.example', new Date(Date.now() + 30_000).toISOString()));
    await expectRejection(cachedIdToken({ directory: logins, managerUrl: 'https://m.example', http: createCliHttp() }), CliError, 'LOGIN_REFRESH_FAILED');
  });
});
