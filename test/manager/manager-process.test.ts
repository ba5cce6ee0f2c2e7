// The manager as operators run it: `drover manager init`, `drover manager start` as a real
// process, the CLI against it, a restart between two check-ins, then `drover audit verify` on
// its audit log and a search for every secret of the run in the log and in all it printed.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnrollResponse, UpdateCommand } from '@drover/protocol';
import { drover } from '../helpers/cli.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import { enrollBody } from '../../packages/manager/test/harness.js';

let dir: string;
// Everything any process of the run printed, except the two commands whose job is to show a new
// enrollment token once (manager init, enroll-token create).
const printed: string[] = [];
const secrets = new Set<string>();
const running = new Set<ManagerProcess>();
const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
const at = (...parts: string[]): string => join(dir, ...parts);

async function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const result = await drover(args, { env: { ...env, ...extraEnv } });
  const showsNewToken = (args[0] === 'manager' && args[1] === 'init') || (args[0] === 'enroll-token' && args[1] === 'create');
  if (showsNewToken) printed.push(result.stderr);
  else printed.push(result.stdout, result.stderr);
  return result;
}

/** Starts `drover manager start` (bounded) and keeps what it prints for the secret search. */
async function startManager(): Promise<ManagerProcess> {
  const manager = await ManagerProcess.start(at('m'), env);
  running.add(manager);
  void manager.exited.then(() => {
    running.delete(manager);
    printed.push(manager.output());
  });
  return manager;
}

async function http(url: string, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; json: unknown }> {
  const pool = new Pool(url, { connections: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });
  try {
    const res = await pool.request({ method: method, path, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.body.text();
    return { status: res.statusCode, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
  } finally {
    await pool.close();
  }
}

const machineId = createHash('sha256').update(randomBytes(8)).digest('hex');
let agent: EnrollResponse;
let command: UpdateCommand;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-manager-process-'));
});
afterAll(async () => {
  await Promise.all([...running].map((manager) => manager.stop(1_000)));
  await rm(dir, { recursive: true, force: true });
});

function checkin(url: string, agentVersion: string, extra: Record<string, unknown> = {}): Promise<{ status: number; json: unknown }> {
  return http(
    url,
    'POST',
    `/v1/agents/${agent.agentId}/checkin`,
    { authorization: `Bearer ${agent.credential}`, 'x-machine-id': machineId, 'x-agent-version': agentVersion, 'x-daemon-version': '0.5.0' },
    { state: { agentVersion, daemonVersion: '0.5.0' }, health: { status: 'healthy', version: agentVersion, busy: false }, acks: [], results: [], ...extra },
  );
}

describe('drover manager init / start', () => {
  // About 15 CLI processes and two manager starts: 12 s on a quiet machine, 30 s with the suite and helpers on both cores.
  it('runs a manager from its directory, survives a restart between two check-ins, and leaves a verifiable audit log with no secret in sight', async () => {
    // A release key and a trust policy, as a release pipeline has them.
    expect((await cli(['keygen', '--out', at('keys'), '--name', 'release'])).code).toBe(0);
    expect((await cli(['trust', 'create', '--pub', at('keys', 'release.pub'), '--out', at('trust.json')])).code).toBe(0);
    secrets.add((await readFile(at('keys', 'release.key'), 'utf8')).split('\n')[1] ?? 'missing');

    const init = await cli(['manager', 'init', '--dir', at('m'), '--trust', at('trust.json'), '--seats', '2', '--expires-in', '1h', '--json']);
    expect(init.code, init.stderr).toBe(0);
    const created = JSON.parse(init.stdout) as { enrollmentToken: string; files: Record<string, string> };
    secrets.add(created.enrollmentToken);
    const adminToken = (await readFile(at('m', 'secrets', 'admin.token'), 'utf8')).trim();
    const deployToken = (await readFile(at('m', 'secrets', 'deploy.token'), 'utf8')).trim();
    const metricsToken = (await readFile(at('m', 'secrets', 'metrics.token'), 'utf8')).trim();
    for (const secret of [adminToken, deployToken, metricsToken, (await readFile(at('m', 'secrets', 'encryption.key'), 'utf8')).trim()]) secrets.add(secret);
    for (const name of ['manager.key', 'audit.key']) secrets.add((await readFile(at('m', 'keys', name), 'utf8')).split('\n')[1] ?? 'missing');
    expect(init.stdout).not.toContain(adminToken);

    let manager = await startManager();
    const enrolled = await http(manager.url, 'POST', '/v1/agents/enroll', { 'x-machine-id': machineId }, enrollBody(created.enrollmentToken, machineId, { inventory: {} }));
    expect(enrolled.status).toBe(200);
    agent = enrolled.json as EnrollResponse;
    secrets.add(agent.credential);
    secrets.add(agent.serviceToken);
    expect((await checkin(manager.url, '1.0.0')).status).toBe(200);
    // Prometheus metrics with the metrics token init wrote; the deploy token reads none.
    const metrics = await request(new URL('/metrics', manager.url), { headers: { authorization: `Bearer ${metricsToken}` }, headersTimeout: 10_000, bodyTimeout: 10_000 });
    const exposition = await metrics.body.text();
    expect([metrics.statusCode, exposition]).toEqual([200, expect.stringContaining('drover_checkins_total{outcome="ok"} 1\n')]);
    expect(exposition).toContain('drover_agents 1\n');
    expect(exposition).not.toContain(agent.agentId);
    expect(((await http(manager.url, 'GET', '/metrics', { authorization: `Bearer ${deployToken}` })).json as { error: { code: string } }).error.code).toBe('METRICS_AUTH_INVALID');

    // The CLI against the running manager.
    const token = await cli(['enroll-token', 'create', '--manager', manager.url, '--seats', '3', '--expires-in', '1h', '--json'], { DROVER_ADMIN_TOKEN: adminToken });
    expect(token.code, token.stderr).toBe(0);
    secrets.add((JSON.parse(token.stdout) as { token: string }).token);
    // Enrollment tokens listed (never the token itself) and revoked; a host put in a canary group.
    const tokenId = (JSON.parse(token.stdout) as { tokenId: string }).tokenId;
    const tokens = await cli(['enroll-token', 'list', '--manager', manager.url], { DROVER_ADMIN_TOKEN: adminToken });
    expect([tokens.code, tokens.stdout]).toEqual([0, expect.stringMatching(new RegExp(`${tokenId} +0/3 +\\S+ +valid`))]);
    expect((await cli(['enroll-token', 'revoke', tokenId, '--manager', manager.url], { DROVER_ADMIN_TOKEN: adminToken })).stdout).toContain(`REVOKED ${tokenId}`);
    const afterRevoke = JSON.parse((await cli(['enroll-token', 'list', '--manager', manager.url, '--json'], { DROVER_ADMIN_TOKEN: adminToken })).stdout) as { tokens: { tokenId: string; revokedAt: string | null }[] };
    expect(afterRevoke.tokens.find((t) => t.tokenId === tokenId)?.revokedAt).toEqual(expect.any(String));
    const unknown = await cli(['enroll-token', 'revoke', '0123456789abcdef', '--manager', manager.url], { DROVER_ADMIN_TOKEN: adminToken });
    expect([unknown.code, unknown.stderr]).toEqual([1, expect.stringContaining('ENROLLMENT_TOKEN_NOT_FOUND')]);
    expect((await cli(['agents', 'set-group', agent.agentId, 'explorer', '--manager', manager.url], { DROVER_ADMIN_TOKEN: adminToken })).stdout).toContain(`${agent.agentId}: canary group explorer`);
    const shown = await manager.call('GET', `/v1/agents/${agent.agentId}`, { authorization: `Bearer ${adminToken}` });
    expect((shown.json as { rollout: unknown }).rollout).toEqual({ group: 'explorer', pushUrl: null });
    // The manager's own answer (--json): none takes the agent out of every group.
    expect(JSON.parse((await cli(['agents', 'set-group', agent.agentId, 'none', '--manager', manager.url, '--json'], { DROVER_ADMIN_TOKEN: adminToken })).stdout)).toEqual({ agentId: agent.agentId, group: null, pushUrl: null });
    const badGroup = await cli(['agents', 'set-group', agent.agentId, 'explorers', '--manager', manager.url], { DROVER_ADMIN_TOKEN: adminToken });
    expect([badGroup.code, badGroup.stderr]).toEqual([2, expect.stringContaining('GROUP is explorer, early_adopter, general or none')]);
    const list = await cli(['agents', 'list', '--manager', manager.url, '--token-file', at('m', 'secrets', 'admin.token'), '--json']);
    expect((JSON.parse(list.stdout) as { agents: { agentId: string; agentVersion: string }[] }).agents).toEqual([expect.objectContaining({ agentId: agent.agentId, agentVersion: '1.0.0' })]);
    const refused = await cli(['agents', 'list', '--manager', manager.url], { DROVER_ADMIN_TOKEN: deployToken });
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining('TOKEN_SCOPE_INSUFFICIENT')]);

    await writeFile(at('agent-1.1.0.tgz'), randomBytes(300_000));
    expect((await cli(['release', 'sign', '--key', at('keys', 'release.key'), '--artifact', 'agent', '--version', '1.1.0', '--platform', 'linux-x64', at('agent-1.1.0.tgz')])).code).toBe(0);
    const published = await cli(['release', 'publish', '--manager', manager.url, at('agent-1.1.0.tgz')], { DROVER_DEPLOY_TOKEN: deployToken });
    expect([published.code, published.stdout]).toEqual([0, expect.stringContaining('PUBLISHED agent 1.1.0 for linux-x64')]);
    // A release signed by a key the manager does not trust is refused with the protocol's code.
    expect((await cli(['keygen', '--out', at('keys'), '--name', 'stranger'])).code).toBe(0);
    await writeFile(at('agent-1.2.0.tgz'), randomBytes(1000));
    await cli(['release', 'sign', '--key', at('keys', 'stranger.key'), '--artifact', 'agent', '--version', '1.2.0', '--platform', 'linux-x64', at('agent-1.2.0.tgz')]);
    const untrusted = await cli(['release', 'publish', '--manager', manager.url, '--token-file', at('m', 'secrets', 'deploy.token'), at('agent-1.2.0.tgz')]);
    expect([untrusted.code, untrusted.stderr]).toEqual([1, expect.stringContaining('RELEASE_UNTRUSTED_SIGNER')]);
    // The catalog as the CLI lists it: the published 1.1.0, never the refused 1.2.0.
    const releases = await cli(['release', 'list', '--manager', manager.url], { DROVER_DEPLOY_TOKEN: deployToken });
    expect(releases.code, releases.stderr).toBe(0);
    expect(releases.stdout).toMatch(/^VERSION\s+PLATFORM\s+CHANNEL\s+STATE/);
    expect(releases.stdout).toMatch(/1\.1\.0\s+linux-x64\s+stable\s+published/);
    expect(releases.stdout).not.toContain('1.2.0');
    const none = await cli(['rollout', 'list', '--manager', manager.url, '--token-file', at('m', 'secrets', 'admin.token')]);
    expect([none.code, none.stdout.trim()]).toEqual([0, 'No deployment yet. Start one with: drover rollout start --version VERSION']);

    const queued = await http(manager.url, 'POST', `/v1/agents/${agent.agentId}/commands`, { authorization: `Bearer ${adminToken}` }, { artifact: 'agent', version: '1.1.0', deploymentId: 'dep-restart' });
    expect(queued.status).toBe(201);
    command = queued.json as UpdateCommand;
    expect((await checkin(manager.url, '1.0.0')).json).toMatchObject({ commands: [{ id: command.id }] });

    // Restart between two check-ins: SIGTERM is a clean stop (exit 0).
    expect(await manager.stop()).toBe(0);
    manager = await startManager();
    const after = await checkin(manager.url, '1.0.0');
    expect(after).toMatchObject({ status: 200, json: { commands: [{ id: command.id, nonce: command.nonce }] } });
    const done = await checkin(manager.url, '1.1.0', { acks: [command.id], results: [{ commandId: command.id, outcome: 'succeeded', detail: {}, nonce: command.nonce }] });
    expect(done.status).toBe(200);
    const replayed = await checkin(manager.url, '1.1.0', { results: [{ commandId: command.id, outcome: 'succeeded', detail: {}, nonce: command.nonce }] });
    expect(replayed).toMatchObject({ status: 409, json: { error: { code: 'NONCE_REPLAYED' } } });
    const download = await http(manager.url, 'GET', '/v1/download/agent/1.1.0/linux-x64', {});
    expect(download).toMatchObject({ status: 401, json: { error: { code: 'DOWNLOAD_UNAUTHORIZED' } } });
    expect(await manager.stop()).toBe(0);

    // The audit chain continued across both restarts and verifies with the published signers.json.
    const verified = await cli(['audit', 'verify', '--signers', at('m', 'audit', 'signers.json'), at('m', 'audit', 'audit.jsonl')]);
    expect([verified.code, verified.stdout]).toEqual([0, expect.stringMatching(/^VERIFIED \d+ records/)]);
    const events = (await readFile(at('m', 'audit', 'audit.jsonl'), 'utf8')).trim().split('\n').map((line) => (JSON.parse(line) as { event: string }).event);
    expect(events.filter((e) => e === 'manager.started')).toHaveLength(3); // init, start, restart
    expect(events).toEqual(expect.arrayContaining(['agent.enrolled', 'enrollment_token.created', 'release.published', 'release.refused', 'command.queued', 'update.completed', 'update.result_refused', 'download.refused', 'token.rejected']));

    // No secret of the run in the audit log, signers.json, or anything any process printed.
    const haystacks = [await readFile(at('m', 'audit', 'audit.jsonl'), 'utf8'), await readFile(at('m', 'audit', 'signers.json'), 'utf8'), ...printed];
    expect(printed.join('').length).toBeGreaterThan(1000);
    expect([...secrets].filter((secret) => haystacks.some((text) => text.includes(secret)))).toEqual([]);
  }, 90_000);

  it('refuses to start without an encryption key, naming the variables to set', async () => {
    await unlink(at('m', 'secrets', 'encryption.key'));
    const refused = await cli(['manager', 'start', '--dir', at('m'), '--port', '0']);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining('ENCRYPTION_KEY_MISSING')]);
    expect(refused.stderr).toContain('DROVER_ENCRYPTION_KEY');
  });

  it('refuses to start with another encryption key than the one its tokens were written with', async () => {
    const other = Buffer.from(randomBytes(32)).toString('base64url');
    const refused = await cli(['manager', 'start', '--dir', at('m'), '--port', '0'], { DROVER_ENCRYPTION_KEY: `${other}=` });
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining('ENCRYPTION_KEY_MISMATCH')]);
  });
});
