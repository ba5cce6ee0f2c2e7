// `drover agents import --ciris-registry` against a registry written by CIRISManager's own code
// (test/fixtures/ciris-registry.py: its crypto.py and agent_registry.py at the commit named there),
// run by Python's `cryptography`. The real CLI process imports into a real manager; the test checks
// the stored tokens (decrypted with the manager's own key), the push URLs and groups, the audit
// records (one per agent, the token's id, never the token), and that a wrong or refused key, or an
// agent already there, imports nothing.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tokenId } from '@drover/protocol';
import { generateFernetKey } from '@drover/protocol/internal';
import { startTestManager } from '../../packages/manager/test/harness.js';
import type { TestManager } from '../../packages/manager/test/harness.js';
import { drover, repoRoot } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';
import { skipWhenMissing } from '../helpers/interop.js';
import { freePort } from '../helpers/ports.js';
import { killAgentProcesses, startAgentProcess } from '../fleet/agent-process.js';
import type { AgentProcess } from '../fleet/agent-process.js';
import { waitFor } from '../fleet/fleet-simulator.js';
import type { DeploymentStatus } from '@drover/protocol';

const FIXTURE = join(repoRoot, 'test/fixtures/ciris-registry.py');
const pythonOk = spawnSync('python3', ['-c', 'import cryptography'], { timeout: 20_000 }).status === 0;
if (!pythonOk) console.warn('Skipping the CIRIS registry import suite: python3 cannot import cryptography (install python3-cryptography).');

const JWT_SECRET = 'the-manager-jwt-secret-of-this-fleet';
const SALT = 'a-salt-of-more-than-16-chars';

interface RegistryAgent {
  agent_id: string;
  name: string;
  port: number;
  server_id?: string;
  occurrence_id?: string;
  current_version?: string;
  metadata?: Record<string, unknown>;
  no_token?: boolean;
}

let dir = '';
let manager: TestManager | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-ciris-import-'));
  return async () => {
    await rm(dir, { recursive: true, force: true });
  };
});

const children = new Set<AgentProcess>();

afterEach(async () => {
  await killAgentProcesses(children);
  await manager?.close();
  manager = undefined;
});

/** Runs CIRISManager's code to write a registry; returns its path and the plain tokens by registry key. */
function writeRegistry(name: string, agents: RegistryAgent[], env: Record<string, string>): { path: string; tokens: Record<string, string> } {
  const path = join(dir, `${name}.json`);
  const result = spawnSync('python3', [FIXTURE, path], { input: JSON.stringify(agents), env: { PATH: process.env['PATH'] ?? '', ...env }, encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0) throw new Error(`the registry writer failed: ${result.stderr}`);
  return { path, tokens: JSON.parse(result.stdout) as Record<string, string> };
}

function importRegistry(m: TestManager, path: string, env: Record<string, string>, extra: string[] = []): Promise<RunResult> {
  return drover(['agents', 'import', '--ciris-registry', path, '--manager', m.url, '--json', ...extra], {
    env: { PATH: process.env['PATH'] ?? '', DROVER_ADMIN_TOKEN: m.adminToken, ...env },
  });
}

const fleet: RegistryAgent[] = [
  { agent_id: 'datum', name: 'Datum', port: 8001, current_version: '1.4.2', metadata: { canary_group: 'explorer' } },
  { agent_id: 'scout', name: 'Scout LB 1', port: 8002, server_id: 'scout', occurrence_id: 'scout_lb_1', metadata: { canary_group: 'general' } },
  { agent_id: 'echo-core', name: 'Echo Core', port: 8003 },
  { agent_id: 'legacy', name: 'Legacy', port: 8004, no_token: true },
];

function errorCode(result: RunResult): string | undefined {
  return (JSON.parse(result.stdout) as { error?: { code?: string } }).error?.code;
}

describe.skipIf(skipWhenMissing(!pythonOk))('drover agents import --ciris-registry (a registry written by CIRISManager\'s code)', () => {
  it('imports every agent with a token, re-encrypted, as push-mode agents, and audits each by its token id', async () => {
    const m = await startTestManager();
    manager = m;
    const cirisEnv = { MANAGER_JWT_SECRET: JWT_SECRET, CIRIS_ENCRYPTION_SALT: SALT };
    const { path, tokens } = writeRegistry('derived', fleet, cirisEnv);
    for (const token of Object.values(tokens)) m.secrets.add(token);
    m.secrets.add(JWT_SECRET);
    expect(Object.keys(tokens).sort()).toEqual(['datum-main', 'echo-core-main', 'scout-scout_lb_1-scout']);

    const result = await importRegistry(m, path, cirisEnv, ['--server', 'scout=http://10.0.0.7']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as { imported: { agentId: string; serviceTokenId: string; pushUrl: string; group: string | null }[]; skipped: { agentId: string }[]; keySource: string };
    expect(out.keySource).toBe('derived');
    expect(out.skipped.map((s) => s.agentId)).toEqual(['legacy-main']);
    expect(new Map(out.imported.map((a) => [a.agentId, [a.pushUrl, a.group, a.serviceTokenId]]))).toEqual(
      new Map([
        ['datum-main', ['http://127.0.0.1:8001', 'explorer', tokenId(tokens['datum-main'] ?? '')]],
        ['scout-scout_lb_1-scout', ['http://10.0.0.7:8002', 'general', tokenId(tokens['scout-scout_lb_1-scout'] ?? '')]],
        ['echo-core-main', ['http://127.0.0.1:8003', null, tokenId(tokens['echo-core-main'] ?? '')]],
      ]),
    );
    for (const token of Object.values(tokens)) expect(result.stdout + result.stderr).not.toContain(token);

    // Stored under the manager's own key: what push mode will present is exactly the agent's token.
    for (const [key, token] of Object.entries(tokens)) {
      expect(await m.app.manager.serviceToken(key)).toBe(token);
      const stored = await m.app.manager.context.store.getAgent(key);
      expect(stored?.serviceTokenCiphertext).not.toContain(token);
      const rollout = await m.app.manager.context.store.getAgentRolloutSettings(key);
      expect(rollout?.pushUrl).toBe(out.imported.find((a) => a.agentId === key)?.pushUrl);
    }
    expect((await m.app.manager.context.store.getAgent('datum-main'))?.agentVersion).toBe('1.4.2');

    const audit = (await m.auditRecords()).filter((r) => r.event === 'agent.imported');
    expect(audit.map((r) => [r.agentId, r.details['serviceTokenId']]).sort()).toEqual(Object.entries(tokens).map(([key, token]) => [key, tokenId(token)]).sort());
    // The operator who imported, by the id of their admin token.
    expect(audit.every((r) => r.tokenId === tokenId(m.adminToken) && r.details['registrySha256'] !== undefined)).toBe(true);
    expect((await m.verifyAudit()).ok).toBe(true);
    expect(await m.leakedSecrets()).toEqual([]);

    // The same registry again: every agent is here already, so nothing is imported (all or nothing).
    const again = await importRegistry(m, path, cirisEnv, ['--server', 'scout=http://10.0.0.7']);
    expect(again.code).toBe(1);
    expect(errorCode(again)).toBe('AGENT_IMPORT_CONFLICT');
    expect(await m.app.manager.context.store.countAgents()).toBe(3);
    expect((await m.auditRecords()).filter((r) => r.event === 'agent.import_refused')).toHaveLength(1);
  });

  it('decrypts with CIRIS_ENCRYPTION_KEY when CIRISManager used one', async () => {
    const m = await startTestManager();
    manager = m;
    const key = generateFernetKey();
    const { path, tokens } = writeRegistry('explicit', fleet.slice(0, 1), { CIRIS_ENCRYPTION_KEY: key });
    const result = await importRegistry(m, path, { CIRIS_ENCRYPTION_KEY: key });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as { keySource: string }).keySource).toBe('CIRIS_ENCRYPTION_KEY');
    expect(await m.app.manager.serviceToken('datum-main')).toBe(tokens['datum-main']);
  });

  it('a wrong key, a refused key or an unknown server imports nothing, with a stable code', async () => {
    const m = await startTestManager();
    manager = m;
    const cirisEnv = { MANAGER_JWT_SECRET: JWT_SECRET, CIRIS_ENCRYPTION_SALT: SALT };
    const { path } = writeRegistry('refusals', fleet, cirisEnv);
    const cases: [Record<string, string>, string[], string][] = [
      // Another secret derives another key: no token decrypts.
      [{ MANAGER_JWT_SECRET: 'another-secret', CIRIS_ENCRYPTION_SALT: SALT }, ['--server', 'scout=http://10.0.0.7'], 'CIRIS_TOKEN_UNREADABLE'],
      [{ CIRIS_ENCRYPTION_KEY: generateFernetKey() }, ['--server', 'scout=http://10.0.0.7'], 'CIRIS_TOKEN_UNREADABLE'],
      // CIRISManager refuses a salt under 16 characters, and a missing one: so does the import.
      [{ MANAGER_JWT_SECRET: JWT_SECRET, CIRIS_ENCRYPTION_SALT: 'short-salt' }, ['--server', 'scout=http://10.0.0.7'], 'ENCRYPTION_SALT_TOO_SHORT'],
      [{ MANAGER_JWT_SECRET: JWT_SECRET }, ['--server', 'scout=http://10.0.0.7'], 'ENCRYPTION_KEY_MISSING'],
      // CIRISManager would fall back to the derived key (which would work here); the import refuses the operator's invalid key.
      [{ CIRIS_ENCRYPTION_KEY: 'not-a-fernet-key', ...cirisEnv }, ['--server', 'scout=http://10.0.0.7'], 'FERNET_KEY_INVALID'],
      // scout's agents have no address.
      [cirisEnv, [], 'CIRIS_SERVER_UNKNOWN'],
    ];
    for (const [env, extra, code] of cases) {
      const result = await importRegistry(m, path, env, extra);
      expect([result.code, errorCode(result)], result.stdout).toEqual([1, code]);
    }
    expect(await m.app.manager.context.store.countAgents()).toBe(0);
    expect((await m.auditRecords()).some((r) => r.event === 'agent.imported')).toBe(false);
  });

  it('--dry-run lists what would be imported and contacts no manager', async () => {
    const cirisEnv = { MANAGER_JWT_SECRET: JWT_SECRET, CIRIS_ENCRYPTION_SALT: SALT };
    const { path, tokens } = writeRegistry('dry-run', fleet.slice(0, 1), cirisEnv);
    const result = await drover(['agents', 'import', '--ciris-registry', path, '--dry-run', '--json'], { env: { PATH: process.env['PATH'] ?? '', ...cirisEnv } });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ dryRun: true, imported: [{ agentId: 'datum-main', pushUrl: 'http://127.0.0.1:8001', serviceTokenId: tokenId(tokens['datum-main'] ?? '') }] });
  });

  it('an imported agent is updated in push mode with the token CIRISManager gave it, each use audited by its id', async () => {
    const m = await startTestManager({ rollout: { tickMs: 40 } });
    manager = m;
    const port = await freePort();
    const cirisEnv = { MANAGER_JWT_SECRET: JWT_SECRET, CIRIS_ENCRYPTION_SALT: SALT };
    const { path, tokens } = writeRegistry('push', [{ agent_id: 'datum', name: 'Datum', port, current_version: '1.0.0' }], cirisEnv);
    const token = tokens['datum-main'] ?? '';
    m.secrets.add(token);
    // The agent as CIRISManager started it: its token in its environment, on the registry's port.
    const env = { DROVER_SERVICE_TOKEN: token, AGENT_PORT: String(port), AGENT_VERSION: '1.0.0', AGENT_DRAIN_TIMEOUT_MS: '2000' };
    const agent = await startAgentProcess(['--import', 'tsx', 'examples/agent/agent.ts'], env, children);
    // Its restart policy: back on 2.0.0 once it exits 0.
    void agent.exited.then(async (code) => {
      if (code === 0) await startAgentProcess(['--import', 'tsx', 'examples/agent/agent.ts'], { ...env, AGENT_VERSION: '2.0.0' }, children);
    });
    const imported = await importRegistry(m, path, cirisEnv);
    expect(imported.code, imported.stdout + imported.stderr).toBe(0);

    const notified = await m.request('POST', '/manager/v1/updates/notify', {
      headers: { authorization: `Bearer ${m.deployToken}` },
      json: { version: '2.0.0', strategy: 'immediate', metadata: { rollout: { soakSeconds: 0, healthGraceSeconds: 0.2, deferralBackoffSeconds: 0.2, targetDeadlineSeconds: 25 } } },
    });
    expect(notified.status, notified.text).toBe(200);
    const id = (notified.json as { deployment_id: string }).deployment_id;
    const status = await waitFor('the push deployment to end', async () => {
      const res = await m.request('GET', `/manager/v1/updates/status?deployment_id=${id}`, { headers: { authorization: `Bearer ${m.adminToken}` } });
      const st = res.json as DeploymentStatus;
      return st.completed_at !== null ? st : undefined;
    }, 40_000, 100);
    expect(status.agents.map((a) => [a.agent_id, a.state])).toEqual([['datum-main', 'succeeded']]);
    expect(agent.lines().filter((l) => l['event'] === 'shutdown_accepted')).toHaveLength(1);
    const uses = (await m.auditRecords()).filter((r) => r.event === 'service_token.used' && r.agentId === 'datum-main');
    expect(uses.map((r) => [r.tokenId, r.outcome])).toEqual([[tokenId(token), 'success']]);
    expect(await m.leakedSecrets()).toEqual([]);
  }, 60_000);
});
