// Single sign-on from the CLI (issue 13): `drover login` against a real OpenID provider
// (oidc-provider, test/helpers/oidc-provider.ts) and a real manager process configured with it by
// `drover manager init --oidc-*` (and `start --oidc-*`). A person approves the device code on the
// provider's own pages; the CLI caches the tokens 0600 and never prints them; operator commands
// then act with the role the person's groups map to, refresh an expired ID token with the refresh
// token, and say to log in again when that fails. A denied and an expired code each have their code.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drover, droverBin } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import { startOidcProvider } from '../helpers/oidc-provider.js';
import type { TestOidcProvider } from '../helpers/oidc-provider.js';

let dir = '';
let op: TestOidcProvider;
let manager: ManagerProcess;
let shortManager: ManagerProcess;
let env: NodeJS.ProcessEnv = {};
const loginsDir = (): string => join(dir, 'config', 'drover', 'logins');

interface CachedLogin {
  managerUrl: string;
  issuer: string;
  clientId: string;
  idToken: string;
  refreshToken?: string;
  expiresAt: string;
}

/** Runs `drover login` as a real process; `approve` gets the user code it printed and acts at the provider. */
function login(url: string, approve: (userCode: string) => Promise<void>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [droverBin, 'login', '--manager', url], { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    let approving = false;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      const code = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(stderr)?.[1];
      if (code !== undefined && !approving) {
        approving = true;
        approve(code).catch(reject);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

async function theLogin(): Promise<{ path: string; login: CachedLogin }> {
  const files = await readdir(loginsDir());
  expect(files).toHaveLength(1);
  const path = join(loginsDir(), files[0] ?? '');
  return { path, login: JSON.parse(await readFile(path, 'utf8')) as CachedLogin };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-login-'));
  // XDG_CONFIG_HOME: env-paths puts the logins under it, here inside the test's directory.
  env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: join(dir, 'config') };
  op = await startOidcProvider({
    clients: [{ clientId: 'drover-cli' }, { clientId: 'drover-cli-short', deviceCodeTtlSeconds: 2 }],
    accounts: [
      { accountId: 'vera', groups: ['drover-viewers'] },
      { accountId: 'ada', groups: ['drover-admins', 'drover-viewers'] },
    ],
  });
  const init = await drover(
    ['manager', 'init', '--dir', join(dir, 'm'), '--oidc-issuer', op.issuer, '--oidc-client-id', 'drover-cli', '--oidc-group-role', 'drover-viewers=viewer', '--oidc-group-role', 'drover-admins=admin', '--json'],
    { env },
  );
  expect(init.code, init.stderr).toBe(0);
  manager = await ManagerProcess.start(join(dir, 'm'), env);
  // A second manager, its single sign-on given only by `manager start`'s flags, with a client whose codes expire in 2 s.
  const plain = await drover(['manager', 'init', '--dir', join(dir, 'm2'), '--json'], { env });
  expect(plain.code, plain.stderr).toBe(0);
  shortManager = await ManagerProcess.spawn(
    [droverBin, 'manager', 'start', '--dir', join(dir, 'm2'), '--port', '0', '--oidc-issuer', op.issuer, '--oidc-client-id', 'drover-cli-short', '--oidc-group-role', 'drover-viewers=viewer'],
    env,
  );
}, 60_000);

afterAll(async () => {
  // beforeAll may have failed before any of them started.
  const started = [manager as ManagerProcess | undefined, shortManager as ManagerProcess | undefined];
  await Promise.all(started.filter((m) => m !== undefined).map((m) => m.stop(5_000)));
  await (op as TestOidcProvider | undefined)?.close();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('drover login (OIDC device authorization grant)', () => {
  it('manager init --oidc-* writes the issuer, client id and group roles to manager.json', async () => {
    const config = JSON.parse(await readFile(join(dir, 'm', 'manager.json'), 'utf8')) as { oidc?: unknown };
    expect(config.oidc).toEqual({ issuer: op.issuer, audience: 'drover-cli', groupsClaim: 'groups', groupRoles: { 'drover-viewers': 'viewer', 'drover-admins': 'admin' } });
  });

  it('manager init refuses half the --oidc-* flags (USAGE_ERROR) and a malformed group role, and writes no manager', async () => {
    const half = await drover(['manager', 'init', '--dir', join(dir, 'half'), '--oidc-issuer', op.issuer, '--json'], { env });
    expect(half.code).toBe(2);
    expect((JSON.parse(half.stdout) as { error: { code: string } }).error.code).toBe('USAGE_ERROR');
    const badRole = await drover(['manager', 'init', '--dir', join(dir, 'half'), '--oidc-issuer', op.issuer, '--oidc-client-id', 'c', '--oidc-group-role', 'ops=root', '--json'], { env });
    expect((JSON.parse(badRole.stdout) as { error: { code: string } }).error.code).toBe('CONFIG_INVALID');
    await expect(stat(join(dir, 'half', 'manager.json'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('logs a viewer in, caches the tokens 0600 without printing them, and operator commands act with the viewer role', async () => {
    const result = await login(manager.url, (code) => op.approveDevice(code, 'vera'));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(`${op.issuer}/device`);
    expect(result.stderr).toMatch(/\/device\?user_code=[A-Z]{4}-[A-Z]{4}/);
    expect(result.stdout).toMatch(/Logged in to .* as vera/);

    const { path, login: cached } = await theLogin();
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(loginsDir())).mode & 0o777).toBe(0o700);
    expect(cached).toMatchObject({ managerUrl: manager.url, issuer: op.issuer, clientId: 'drover-cli' });
    expect(cached.refreshToken).toBeTypeOf('string');
    expect(Date.parse(cached.expiresAt)).toBeGreaterThan(Date.now() + 30 * 60_000);
    // No token in the output.
    for (const secret of [cached.idToken, cached.refreshToken ?? '']) {
      expect(result.stdout).not.toContain(secret);
      expect(result.stderr).not.toContain(secret);
    }

    const listed = await drover(['rollout', 'list', '--manager', manager.url, '--json'], { env });
    expect(listed.code, listed.stderr).toBe(0);
    const agents = await drover(['agents', 'list', '--manager', manager.url, '--json'], { env });
    expect(agents.code, agents.stderr).toBe(0);

    // Enrollment tokens are the admin's: a viewer is refused by the manager.
    const refused = await drover(['enroll-token', 'create', '--manager', manager.url, '--json'], { env });
    expect(refused.code).toBe(1);
    expect((JSON.parse(refused.stdout) as { error: { code: string } }).error.code).toBe('TOKEN_SCOPE_INSUFFICIENT');
    // No token in the manager's log either.
    expect(manager.output()).not.toContain(cached.idToken);
  });

  it('refreshes an expired ID token with the refresh token and rewrites the cache; a refused refresh says to log in again', async () => {
    const { path, login: before } = await theLogin();
    await writeFile(path, JSON.stringify({ ...before, expiresAt: new Date(Date.now() - 1000).toISOString() }));
    const listed = await drover(['rollout', 'list', '--manager', manager.url, '--json'], { env });
    expect(listed.code, listed.stderr).toBe(0);
    const { login: after } = await theLogin();
    expect(after.idToken).not.toBe(before.idToken);
    // A public client's refresh token rotates: the new one is kept.
    expect(after.refreshToken).not.toBe(before.refreshToken);
    expect(Date.parse(after.expiresAt)).toBeGreaterThan(Date.now() + 30 * 60_000);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(listed.stdout + listed.stderr).not.toContain(after.idToken);

    // Within 60 s of its expiry counts as expired; the spent refresh token is refused by the issuer.
    await writeFile(path, JSON.stringify({ ...after, refreshToken: before.refreshToken, expiresAt: new Date(Date.now() + 30_000).toISOString() }));
    const stale = await drover(['rollout', 'list', '--manager', manager.url, '--json'], { env });
    expect(stale.code).toBe(1);
    const error = (JSON.parse(stale.stdout) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('LOGIN_REFRESH_FAILED');
    expect(error.message).toContain(`drover login --manager ${manager.url}`);
    expect(error.message).not.toContain(before.refreshToken ?? '');
  });

  it('an admin logs in over the viewer and may create enrollment tokens; logout revokes the refresh token and removes the login', async () => {
    const result = await login(manager.url, (code) => op.approveDevice(code, 'ada'));
    expect(result.code, result.stderr).toBe(0);
    const created = await drover(['enroll-token', 'create', '--manager', manager.url, '--json'], { env });
    expect(created.code, created.stderr).toBe(0);

    const { login: cached } = await theLogin();
    const out = await drover(['logout', '--manager', manager.url, '--json'], { env });
    expect(out.code, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ removed: true, revoked: true });
    // The refresh token is dead at the issuer: logging out is not only forgetting it.
    const refresh = await request(`${op.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cached.refreshToken ?? '', client_id: 'drover-cli' }).toString(),
    });
    expect(refresh.statusCode).toBe(400);
    expect(await refresh.body.json()).toMatchObject({ error: 'invalid_grant' });
    expect(await readdir(loginsDir())).toEqual([]);
    const missing = await drover(['rollout', 'list', '--manager', manager.url, '--json'], { env });
    expect((JSON.parse(missing.stdout) as { error: { code: string } }).error.code).toBe('TOKEN_MISSING');
  });

  it('a denied code is LOGIN_DENIED and an expired one DEVICE_CODE_EXPIRED; neither leaves a login', async () => {
    const denied = await login(manager.url, (code) => op.denyDevice(code));
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/drover: LOGIN_DENIED: /);

    // shortManager's client (from `manager start --oidc-client-id`) gets codes that expire in 2 s.
    const expired = await login(shortManager.url, () => Promise.resolve());
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(/drover: DEVICE_CODE_EXPIRED: /);
    expect(await readdir(loginsDir())).toEqual([]);
  });

  it('a manager without single sign-on is LOGIN_UNAVAILABLE', async () => {
    const plain = await drover(['manager', 'init', '--dir', join(dir, 'm3'), '--json'], { env });
    expect(plain.code, plain.stderr).toBe(0);
    const m3 = await ManagerProcess.start(join(dir, 'm3'), env);
    try {
      const result = await drover(['login', '--manager', m3.url, '--json'], { env });
      expect(result.code).toBe(1);
      expect((JSON.parse(result.stdout) as { error: { code: string } }).error.code).toBe('LOGIN_UNAVAILABLE');
    } finally {
      await m3.stop(5_000);
    }
  });

  it('--help describes login and logout', async () => {
    const help = await drover(['login', '--help'], { env });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--manager <URL>/);
    expect(help.stdout).toMatch(/0600/);
    const logoutHelp = await drover(['logout', '--help'], { env });
    expect(logoutHelp.code).toBe(0);
    expect(logoutHelp.stdout).toMatch(/Removes the login/);
  });
});
