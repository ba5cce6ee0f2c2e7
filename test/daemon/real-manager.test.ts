import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { readNonceUnverified } from '@drover/protocol';
import type { TrustPolicyDocument, UpdateCommand } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { drover, expectOk as ok } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';
import { DaemonProcess, agentGet, agentRuntime, createHostFor, destroyHost, droverd, releaseTree, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import type { CommandView } from '../helpers/manager-process.js';
import { prometheusMissing } from '../helpers/services.js';
import { until } from '../helpers/wait.js';

// droverd against the real manager, both as operators run them: `drover manager init` +
// `drover manager start` (its SQLite file, blob store and audit log on disk), releases signed with
// `drover release sign` and published with `drover release publish`, update commands queued
// through the operator API, and the built droverd enrolling with the pinned manager key,
// checking in, downloading from /v1/download with its credential, and reporting every outcome
// with the command's nonce. What the manager records (the command's outcome, the nonce consumed,
// the agent's version, the audit chain) is asserted from the manager's side, not the daemon's.

const platform = `${process.platform}-${process.arch}`;

interface AgentView {
  agentId: string;
  agentVersion: string;
  lastCheckinAt: string | null;
  health: { status?: string; version?: string } | null;
}

describe('droverd against the real manager (drover manager start, SQLite, audit log)', () => {
  let root: string;
  let managerDir: string;
  let manager: ManagerProcess | undefined;
  let host: Host | undefined;
  let daemon: DaemonProcess | undefined;
  let adminToken: string;
  let deployToken: string;
  let enrollmentToken: string;
  let managerKeyId: string;
  let agentId: string;
  let configBefore: Buffer;
  let droverdJsonBefore: Buffer;
  const daemons: DaemonProcess[] = [];
  const cliEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
  const at = (...parts: string[]): string => join(root, ...parts);

  const cli = (args: string[], env: Record<string, string> = {}): Promise<RunResult> => drover(args, { env: { ...cliEnv, ...env } });
  const admin = (): Record<string, string> => ({ authorization: `Bearer ${adminToken}` });
  function theManager(): ManagerProcess {
    if (manager === undefined) throw new Error('the manager is not running');
    return manager;
  }
  function theHost(): Host {
    if (host === undefined) throw new Error('the host was not created');
    return host;
  }

  function startDaemon(): DaemonProcess {
    const started = new DaemonProcess(theHost());
    daemons.push(started);
    daemon = started;
    return started;
  }

  /** Writes `bytes` as rel/<version>/agent.cjs and signs it with `keys` (drover release sign). */
  async function signedRelease(version: string, bytes: Buffer, keys: string[] = ['release']): Promise<string> {
    const file = at('rel', version, 'agent.cjs');
    await mkdir(at('rel', version), { recursive: true });
    await writeFile(file, bytes);
    const keyArgs = keys.flatMap((name) => ['--key', at('keys', `${name}.key`)]);
    ok(await cli(['release', 'sign', ...keyArgs, '--artifact', 'agent', '--version', version, '--platform', platform, '--expires-in', '1d', file]), `release sign ${version}`);
    return file;
  }

  async function publish(file: string): Promise<RunResult> {
    return cli(['release', 'publish', '--manager', theManager().url, file], { DROVER_DEPLOY_TOKEN: deployToken });
  }

  async function queue(version: string, deploymentId: string): Promise<UpdateCommand> {
    const queued = await theManager().call('POST', `/v1/agents/${agentId}/commands`, admin(), { artifact: 'agent', version, deploymentId, drainTimeoutSeconds: 10 });
    expect(queued.status, JSON.stringify(queued.json)).toBe(201);
    return queued.json as UpdateCommand;
  }

  async function agentView(): Promise<AgentView> {
    const list = ok(await cli(['agents', 'list', '--manager', theManager().url, '--token-file', join(managerDir, 'secrets', 'admin.token'), '--json']), 'agents list');
    const agent = (JSON.parse(list.stdout) as { agents: AgentView[] }).agents.find((a) => a.agentId === agentId);
    if (agent === undefined) throw new Error(`agent ${agentId} is not in \`drover agents list\`: ${list.stdout}`);
    return agent;
  }

  /** The manager's record of a command, once it holds a final outcome for it. */
  function finalOutcome(commandId: string, timeoutMs = 40_000): Promise<CommandView> {
    return theManager().finalOutcome(agentId, commandId, adminToken, timeoutMs);
  }

  /** The manager's nonce row for a command, read from its SQLite file. */
  function nonceRow(command: UpdateCommand): { id: string; consumed_at: number | null; consumed_outcome: string | null; to_version: string } | undefined {
    const db = new Database(join(managerDir, 'manager.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT id, consumed_at, consumed_outcome, to_version FROM nonces WHERE command_id = ?').get(command.id) as
        | { id: string; consumed_at: number | null; consumed_outcome: string | null; to_version: string }
        | undefined;
    } finally {
      db.close();
    }
  }

  async function auditEvents(): Promise<{ event: string; agentId?: string; outcome: string; details: Record<string, unknown> }[]> {
    const text = await readFile(join(managerDir, 'audit', 'audit.jsonl'), 'utf8');
    return text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { event: string; agentId?: string; outcome: string; details: Record<string, unknown> });
  }

  /** droverd.prom once it says `expected` (droverd refreshes it every 5 s); checked by promtool's parser where installed. */
  async function textfileSaying(expected: string): Promise<string> {
    const text = await until(async () => {
      const current = await readFile(at('textfile', 'droverd.prom'), 'utf8').catch(() => '');
      return current.includes(expected) ? current : undefined;
    }, 20_000, `droverd.prom to say ${expected}`);
    if (prometheusMissing() === undefined) {
      const checked = await promtoolCheckMetrics(text);
      expect(checked, 'promtool check metrics').toBe(0);
    }
    return text;
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'droverd-real-manager-'));
    managerDir = at('m');
    // Two release keys: the manager trusts both, the host only `release` (a host may pin a narrower policy).
    ok(await cli(['keygen', '--out', at('keys'), '--name', 'release']), 'keygen release');
    ok(await cli(['keygen', '--out', at('keys'), '--name', 'other']), 'keygen other');
    ok(await cli(['trust', 'create', '--pub', at('keys', 'release.pub'), '--pub', at('keys', 'other.pub'), '--out', at('manager-trust.json')]), 'trust create (manager)');
    ok(await cli(['trust', 'create', '--pub', at('keys', 'release.pub'), '--out', at('host-trust.json')]), 'trust create (host)');
    const init = ok(await cli(['manager', 'init', '--dir', managerDir, '--trust', at('manager-trust.json'), '--seats', '3', '--expires-in', '1h', '--json']), 'manager init');
    const created = JSON.parse(init.stdout) as { enrollmentToken: string; managerKeyId: string };
    enrollmentToken = created.enrollmentToken;
    managerKeyId = created.managerKeyId;
    adminToken = (await readFile(join(managerDir, 'secrets', 'admin.token'), 'utf8')).trim();
    deployToken = (await readFile(join(managerDir, 'secrets', 'deploy.token'), 'utf8')).trim();
    // Bounded suite: the shortest check-in interval the manager allows.
    const configPath = join(managerDir, 'manager.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { settings: Record<string, unknown> };
    config.settings['checkinIntervalSeconds'] = 5;
    await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
    manager = await ManagerProcess.start(managerDir, cliEnv);

    host = await createHostFor(
      {
        url: manager.url,
        managerKey: await readFile(join(managerDir, 'keys', 'manager.key.pub'), 'utf8'),
        trustPolicy: JSON.parse(await readFile(at('host-trust.json'), 'utf8')) as TrustPolicyDocument,
      },
      // droverd.prom for node_exporter's textfile collector, in a directory of the test's own.
      { settings: { machineId: createHash('sha256').update(randomBytes(16)).digest('hex'), checkin: { backoffMaxSeconds: 2 }, metrics: { textfileDir: at('textfile') } } },
    );
    await mkdir(at('textfile'));
    // v1 is installed from local files, signed by the release key, as a provisioning step does.
    const v1 = await signedRelease('1.0.0', await agentArtifact('1.0.0'));
    ok(await droverd(host, ['install', '--release', `${v1}.release.json`, v1, '--json']), 'droverd install 1.0.0');
    configBefore = await readFile(host.agentConfigPath);
    droverdJsonBefore = await readFile(host.configPath);
  }, 60_000);

  afterAll(async () => {
    if (host !== undefined) await destroyHost(host, daemons);
    if (manager !== undefined) await manager.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('enrolls with the pinned manager key and an enrollment token from `drover manager init`, then checks in', async () => {
    const h = theHost();
    // key substitution: a host pinning another key refuses the manager's answer.
    const wrongKey = await readFile(at('keys', 'other.pub'), 'utf8');
    const refused = await droverd(h, ['enroll', '--manager', theManager().url, '--token', enrollmentToken, '--manager-key', wrongKey.trim(), '--json']);
    expect(refused.code).not.toBe(0);
    expect(`${refused.stdout}${refused.stderr}`).toContain('MANAGER_KEY_MISMATCH');
    await expect(readFile(join(h.stateDir, 'credentials.json'))).rejects.toThrow();

    // As docs/install.md has it: --manager-key "$(cat manager.key.pub)", a PEM block.
    const pinned = (await readFile(join(managerDir, 'keys', 'manager.key.pub'), 'utf8')).trim();
    const enrolled = ok(await droverd(h, ['enroll', '--manager', theManager().url, '--token', enrollmentToken, '--manager-key', pinned, '--json']), 'droverd enroll');
    const answer = JSON.parse(enrolled.stdout) as { agentId: string; trust: string; managerKeys: string[] };
    expect(answer).toMatchObject({ trust: 'pinned', managerKeys: [managerKeyId] });
    agentId = answer.agentId;

    const running = startDaemon();
    await waitForAgent(h, '1.0.0');
    const agent = await until(
      async () => {
        const view = await agentView();
        return view.lastCheckinAt !== null && view.health?.status === 'healthy' ? view : undefined;
      },
      20_000,
      'a first check-in the manager recorded',
    );
    expect(agent).toMatchObject({ agentId, agentVersion: '1.0.0', health: { status: 'healthy', version: '1.0.0' } });
    expect(running.lines.some((line) => line.event === 'checkin.failed')).toBe(false);
    const events = await auditEvents();
    expect(events.filter((e) => e.agentId === agentId).map((e) => e.event)).toEqual(expect.arrayContaining(['agent.enrolled', 'agent.reenrolled']));
  }, 45_000);

  it('v1 -> v2: published with `drover release publish`, queued through the operator API, downloaded from /v1/download, committed and reported with the nonce', async () => {
    const h = theHost();
    const v2 = await agentArtifact('2.0.0');
    const published = await publish(await signedRelease('2.0.0', v2));
    expect([published.code, published.stdout]).toEqual([0, expect.stringContaining(`PUBLISHED agent 2.0.0 for ${platform}`)]);
    const command = await queue('2.0.0', 'dep-v2');
    expect(command.url).toBe(`/v1/download/agent/2.0.0/${platform}`);

    const recorded = await finalOutcome(command.id);
    expect(recorded).toMatchObject({ outcome: 'succeeded', ackedAt: expect.any(String) as unknown });
    await waitForAgent(h, '2.0.0');
    // The bytes installed are the bytes published; the host's configuration was never written.
    expect(await readFile(join(h.stateDir, 'releases', 'agent', '2.0.0', 'agent.cjs'))).toEqual(v2);
    expect(await readFile(h.agentConfigPath)).toEqual(configBefore);
    expect(await readFile(h.configPath)).toEqual(droverdJsonBefore);

    // The manager consumed exactly the nonce it issued for this command, and knows the host runs v2.
    const nonce = nonceRow(command);
    expect(nonce).toMatchObject({ id: readNonceUnverified(command.nonce).nonceId, consumed_outcome: 'succeeded', to_version: '2.0.0' });
    expect(nonce?.consumed_at).toEqual(expect.any(Number));
    expect(await agentView()).toMatchObject({ agentVersion: '2.0.0' });
    const completed = (await auditEvents()).find((e) => e.event === 'update.completed' && e.details['commandId'] === command.id);
    expect(completed).toMatchObject({ agentId, outcome: 'succeeded', details: { nonceId: nonce?.id, reportedVersion: '2.0.0' } });
    // The download was the manager's, authorised by the host's credential and machine id.
    expect((await auditEvents()).some((e) => e.event === 'download.refused')).toBe(false);
    const status = JSON.parse(ok(await droverd(h, ['status', '--json']), 'droverd status').stdout) as unknown;
    expect(status).toMatchObject({ agent: { current: '2.0.0', previous: '1.0.0' }, update: null, lastResult: { outcome: 'succeeded', commandId: command.id } });
    // And node_exporter's textfile collector reads the same from droverd.prom.
    const prom = await textfileSaying('droverd_last_update_result{artifact="agent",outcome="succeeded",code=""} 1\n');
    expect(prom).toContain('droverd_update_in_progress 0\n');
    expect(prom).toMatch(/^droverd_info\{daemon_version="[^"]+",agent_version="2\.0\.0"\} 1$/m);
    expect(prom).not.toContain(agentId);
  }, 60_000);

  it('a result the manager already holds is refused 409 NONCE_REPLAYED, and the daemon drops it and checks in again', async () => {
    const h = theHost();
    // Play a lost answer: the daemon stopped before it learnt its result was recorded, so the
    // result is still pending in its journal when it starts again.
    if (daemon === undefined) throw new Error('droverd is not running');
    await daemon.stop();
    const journalPath = join(h.stateDir, 'journal.json');
    const journal = JSON.parse(await readFile(journalPath, 'utf8')) as { pendingResults: unknown[]; lastResult: { commandId: string; outcome: string; detail: unknown; nonce: string } };
    const { commandId, outcome, detail, nonce } = journal.lastResult;
    journal.pendingResults = [{ commandId, outcome, detail, nonce }];
    await writeFile(journalPath, JSON.stringify(journal));
    await chmod(journalPath, 0o600);
    const before = (await agentView()).lastCheckinAt;

    const restarted = startDaemon();
    const refusedLine = await restarted.waitForLine((line) => line.event === 'checkin.result_refused', 20_000);
    expect(refusedLine).toMatchObject({ commandId, code: 'NONCE_REPLAYED', status: 409 });
    await waitForAgent(h, '2.0.0');
    await until(async () => ((await agentView()).lastCheckinAt !== before ? true : undefined), 20_000, 'a check-in accepted after the refusal');
    const after = JSON.parse(await readFile(journalPath, 'utf8')) as { pendingResults: unknown[] };
    expect(after.pendingResults).toEqual([]);
    const refusal = (await auditEvents()).find((e) => e.event === 'update.result_refused' && e.details['commandId'] === commandId);
    expect(refusal).toMatchObject({ agentId, outcome: 'denied', details: { code: 'NONCE_REPLAYED' } });
  }, 45_000);

  it('a v3 that reports degraded is rolled back to v2 by the daemon; the manager records rolled_back with the cause', async () => {
    const h = theHost();
    ok(await publish(await signedRelease('3.0.0', await agentArtifact('3.0.0', { unhealthy: true }))), 'publish 3.0.0');
    const command = await queue('3.0.0', 'dep-v3');
    const recorded = await finalOutcome(command.id);
    expect(recorded).toMatchObject({ outcome: 'rolled_back', outcomeDetail: { code: 'HEALTH_CHECK_FAILED' } });
    await waitForAgent(h, '2.0.0');
    expect(nonceRow(command)).toMatchObject({ consumed_outcome: 'rolled_back' });
    expect(await agentView()).toMatchObject({ agentVersion: '2.0.0' });
    expect(await readFile(h.agentConfigPath)).toEqual(configBefore);
    expect(await readFile(h.configPath)).toEqual(droverdJsonBefore);
    const completed = (await auditEvents()).find((e) => e.event === 'update.completed' && e.details['commandId'] === command.id);
    expect(completed).toMatchObject({ outcome: 'rolled_back', details: { code: 'HEALTH_CHECK_FAILED' } });
    await textfileSaying('droverd_last_update_result{artifact="agent",outcome="rolled_back",code="HEALTH_CHECK_FAILED"} 1\n');
  }, 60_000);

  it('a release with a flipped byte cannot be published, so no command can point at it', async () => {
    const file = await signedRelease('4.0.0', await agentArtifact('4.0.0'));
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0x01;
    await writeFile(file, bytes);
    const refused = await publish(file);
    expect([refused.code, `${refused.stdout}${refused.stderr}`]).toEqual([1, expect.stringContaining('ARTIFACT_DIGEST_MISMATCH')]);
    const queued = await theManager().call('POST', `/v1/agents/${agentId}/commands`, admin(), { artifact: 'agent', version: '4.0.0' });
    expect(queued.json).toMatchObject({ error: { code: 'RELEASE_NOT_UPLOADED' } });
  }, 30_000);

  describe('commands the manager sends but the host must refuse (v2 keeps running, nothing installed, the code recorded)', () => {
    let pid: number;
    let treeBefore: string[];

    beforeAll(async () => {
      await waitForAgent(theHost(), '2.0.0');
      pid = ((await agentGet(theHost(), '/info')) as { pid: number }).pid;
      treeBefore = await releaseTree(theHost());
    });

    async function expectRefused(command: UpdateCommand, code: string): Promise<void> {
      const h = theHost();
      const recorded = await finalOutcome(command.id);
      expect(recorded).toMatchObject({ outcome: 'rejected', outcomeDetail: { code } });
      expect(nonceRow(command)).toMatchObject({ consumed_outcome: 'rejected' });
      expect(await agentGet(h, '/v1/system/health')).toMatchObject({ status: 'healthy', version: '2.0.0' });
      expect(((await agentGet(h, '/info')) as { pid: number }).pid).toBe(pid);
      expect(await releaseTree(h)).toEqual(treeBefore);
      expect(await readdir(join(h.stateDir, 'staging'))).toEqual([]);
      expect(await readFile(h.agentConfigPath)).toEqual(configBefore);
      expect(await agentView()).toMatchObject({ agentVersion: '2.0.0' });
    }

    it('bytes altered in the manager\'s blob store after publishing (ARTIFACT_DIGEST_MISMATCH)', async () => {
      const v5 = await agentArtifact('5.0.0');
      ok(await publish(await signedRelease('5.0.0', v5)), 'publish 5.0.0');
      // tampering at rest: the content-addressed blob no longer holds the signed bytes.
      const sha = createHash('sha256').update(v5).digest('hex');
      const blob = join(managerDir, 'blobs', 'sha256', sha.slice(0, 2), sha);
      const stored = await readFile(blob);
      expect(stored).toEqual(v5);
      stored[100] = (stored[100] ?? 0) ^ 0x01;
      await chmod(blob, 0o600);
      await writeFile(blob, stored);
      await expectRefused(await queue('5.0.0', 'dep-v5'), 'ARTIFACT_DIGEST_MISMATCH');
    }, 45_000);

    it('a release the manager trusts but the host does not (RELEASE_UNTRUSTED_SIGNER)', async () => {
      ok(await publish(await signedRelease('6.0.0', await agentArtifact('6.0.0'), ['other'])), 'publish 6.0.0 signed by the other key');
      await expectRefused(await queue('6.0.0', 'dep-v6'), 'RELEASE_UNTRUSTED_SIGNER');
    }, 45_000);
  });

  it('a busy agent defers the update (deferred reported to the manager), then it goes through with the manager\'s service token', async () => {
    const h = theHost();
    ok(await publish(await signedRelease('7.0.0', await agentArtifact('7.0.0'))), 'publish 7.0.0');
    // The agent accepts the service token the manager issued at enrollment (POST /work needs it).
    const { serviceToken } = JSON.parse(await readFile(join(h.stateDir, 'credentials.json'), 'utf8')) as { serviceToken: string };
    const runtime = await agentRuntime(h);
    if (runtime === undefined) throw new Error('droverd recorded no running agent');
    const busy = await request(`http://127.0.0.1:${runtime.port}/work?ms=6000`, {
      method: 'POST',
      headers: { authorization: `Bearer service:${serviceToken}` },
    });
    expect(busy.statusCode).toBe(202);
    await busy.body.dump();
    const command = await queue('7.0.0', 'dep-v7');
    const deferred = await until(
      async () => ((await auditEvents()).find((e) => e.event === 'update.deferred' && e.details['commandId'] === command.id)),
      20_000,
      'the manager to record the deferral',
    );
    expect(deferred).toMatchObject({ agentId, outcome: 'deferred', details: { code: 'AGENT_BUSY' } });
    // The nonce is not spent by a progress report.
    expect(nonceRow(command)).toMatchObject({ consumed_at: null });
    expect(((await agentGet(h, '/info')) as { pid: number }).pid).toBe(runtime.pid);
    expect(await finalOutcome(command.id)).toMatchObject({ outcome: 'succeeded' });
    await waitForAgent(h, '7.0.0');
    expect(nonceRow(command)).toMatchObject({ consumed_outcome: 'succeeded' });
    expect(await agentView()).toMatchObject({ agentVersion: '7.0.0' });
  }, 60_000);

  it('a manager restarted with presigned downloads and a minimum agent version: the daemon backs off while it is away, takes the update from a 426, downloads from the presigned URL', async () => {
    const h = theHost();
    const port = Number(new URL(theManager().url).port);
    expect(await theManager().stop()).toBe(0);
    manager = undefined;
    const configPath = join(managerDir, 'manager.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { settings: Record<string, unknown> };
    config.settings['presignDownloads'] = true;
    config.settings['minAgentVersion'] = '8.0.0';
    await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
    const failedBefore = (daemon?.lines ?? []).filter((line) => line.event === 'checkin.failed').length;
    await until(async () => Promise.resolve((daemon?.lines ?? []).filter((line) => line.event === 'checkin.failed').length > failedBefore ? true : undefined), 20_000, 'a failed check-in while the manager is away');
    manager = await ManagerProcess.start(managerDir, cliEnv, port);

    ok(await publish(await signedRelease('8.0.0', await agentArtifact('8.0.0'))), 'publish 8.0.0');
    const command = await queue('8.0.0', 'dep-v8');
    expect(command.url).toMatch(new RegExp(`^/v1/download/agent/8\\.0\\.0/${platform}\\?expires=\\d+&sig=`));
    // Below the minimum, every check-in is answered 426 and still carries the update command.
    await daemon?.waitForLine((line) => line.event === 'checkin.upgrade_required', 20_000);
    expect(await finalOutcome(command.id)).toMatchObject({ outcome: 'succeeded' });
    await waitForAgent(h, '8.0.0');
    expect(await readFile(h.agentConfigPath)).toEqual(configBefore);
    expect(await agentView()).toMatchObject({ agentVersion: '8.0.0' });
  }, 60_000);

  it('an operator\'s signed rollback command takes the host back to 7.0.0 from its kept release, without a download', async () => {
    const h = theHost();
    const queued = await theManager().call('POST', `/v1/agents/${agentId}/commands`, admin(), { artifact: 'agent', version: '7.0.0', deploymentId: 'dep-back', rollback: true });
    expect(queued.status, JSON.stringify(queued.json)).toBe(201);
    const command = queued.json as UpdateCommand;
    expect(readNonceUnverified(command.nonce)).toMatchObject({ rollback: true, fromVersion: '8.0.0', toVersion: '7.0.0' });
    expect(await finalOutcome(command.id)).toMatchObject({ outcome: 'succeeded' });
    await waitForAgent(h, '7.0.0');
    expect(nonceRow(command)).toMatchObject({ consumed_outcome: 'succeeded' });
    expect(await agentView()).toMatchObject({ agentVersion: '7.0.0' });
    const steps = (daemon?.lines ?? []).filter((line) => line['commandId'] === command.id).map((line) => line.step);
    expect(steps).toContain('staged');
    expect(steps).not.toContain('downloading');
    expect(await readFile(h.agentConfigPath)).toEqual(configBefore);
  }, 60_000);

  it('`drover agents remove`: the host\'s next check-in and a download with its credential are refused (AGENT_REVOKED), and droverd says what to do', async () => {
    const h = theHost();
    const removed = await cli(['agents', 'remove', agentId, '--manager', theManager().url, '--token-file', join(managerDir, 'secrets', 'admin.token')]);
    expect([removed.code, removed.stdout]).toEqual([0, expect.stringContaining(`REMOVED ${agentId}`)]);
    const from = daemon?.lines.length ?? 0;
    const refused = await daemon?.waitForLine((line) => (daemon?.lines.indexOf(line) ?? -1) >= from && line.event === 'checkin.failed', 20_000);
    expect(JSON.stringify(refused)).toContain('AGENT_REVOKED');
    expect(JSON.stringify(refused)).toContain('droverd enroll');
    const { credential } = JSON.parse(await readFile(join(h.stateDir, 'credentials.json'), 'utf8')) as { credential: string };
    const machineId = (JSON.parse(await readFile(h.configPath, 'utf8')) as { machineId: string }).machineId;
    const download = await request(`${theManager().url}/v1/download/agent/7.0.0/${platform}`, { headers: { authorization: `Bearer ${credential}`, 'x-machine-id': machineId } });
    expect(download.statusCode).toBe(403);
    expect(await download.body.json()).toMatchObject({ error: { code: 'AGENT_REVOKED' } });
    expect(await agentView()).toMatchObject({ agentId, revokedAt: expect.any(String) as unknown });
    // The agent itself keeps running: removal refuses the host at the manager, it does not stop it.
    expect(await agentGet(h, '/v1/system/health')).toMatchObject({ status: 'healthy', version: '7.0.0' });
  }, 45_000);

  it('leaves an audit log that `drover audit verify` verifies', async () => {
    const verified = await cli(['audit', 'verify', '--signers', join(managerDir, 'audit', 'signers.json'), join(managerDir, 'audit', 'audit.jsonl')]);
    expect([verified.code, verified.stdout]).toEqual([0, expect.stringMatching(/^VERIFIED \d+ records/)]);
    const events = (await auditEvents()).map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['agent.enrolled', 'release.published', 'release.refused', 'command.queued', 'update.completed', 'update.result_refused', 'agent.revoked', 'agent.revoked_credential_used']));
  });
});

/** `promtool check metrics` on a text exposition (its stdin): its exit code, 0 when it parses and passes promtool's lint. */
function promtoolCheckMetrics(text: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'ignore', 'ignore'] });
    child.once('error', reject);
    child.once('exit', resolve);
    child.stdin.end(text);
  });
}
