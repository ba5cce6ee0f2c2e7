// Privilege separation on the host (decision 0030): droverd, as root, runs the agent as its own
// unprivileged user, and the kernel keeps that user out of droverd's state. The agent here is a
// probe: it tries each thing a compromised agent would (rewrite trust.json or the journal, plant a
// file in its release, read the credentials or droverd's environment, signal droverd) and writes
// what the kernel answered into its own data directory. droverd runs under the unit's own
// system-call filter (test/helpers/unit-filter.ts), as systemd would run it. Root only: on a
// developer's machine it skips; CI (DROVER_REQUIRE_ROOT=1) runs it.
import { chmod, chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { DaemonProcess, agentRuntime, createHost, destroyHost, installAgent, killHost, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { rootUnavailable, skipWithoutRoot } from '../helpers/root.js';
import { underUnitFilter, unitFilterUnavailable } from '../helpers/unit-filter.js';
import { until } from '../helpers/wait.js';

const NOBODY = 65_534;

// What the probe tries, each answered by the kernel: an error code, or "ok".
const PROBE = String.raw`
const fs = require('node:fs');
const path = require('node:path');
const state = process.env.PROBE_STATE_DIR;
const release = process.cwd();
const attempt = (fn) => { try { fn(); return 'ok'; } catch (e) { return e.code || String(e); } };
const result = {
  uid: process.getuid(),
  gid: process.getgid(),
  groups: process.getgroups(),
  home: process.env.HOME,
  dataDir: process.env.DROVER_AGENT_DATA_DIR,
  hasToken: typeof process.env.DROVER_SERVICE_TOKEN === 'string' && process.env.DROVER_SERVICE_TOKEN.length > 0,
  writeTrust: attempt(() => fs.writeFileSync(path.join(state, 'trust.json'), '{}')),
  replaceTrust: attempt(() => fs.renameSync(path.join(state, 'trust.json'), path.join(state, 'trust.old'))),
  writeJournal: attempt(() => fs.writeFileSync(path.join(state, 'journal.json'), '{}')),
  createInState: attempt(() => fs.writeFileSync(path.join(state, 'planted'), 'x')),
  plantInRelease: attempt(() => fs.writeFileSync(path.join(release, 'planted.js'), 'x')),
  overwriteOwnEntry: attempt(() => fs.writeFileSync(path.join(release, 'agent.cjs'), 'x')),
  readCredentials: attempt(() => fs.readFileSync(path.join(state, 'credentials.json'))),
  readAgentRecord: attempt(() => fs.readFileSync(path.join(state, 'agent.json'))),
  listState: attempt(() => fs.readdirSync(state)),
  readDroverdEnviron: attempt(() => fs.readFileSync('/proc/' + process.ppid + '/environ')),
  signalDroverd: attempt(() => process.kill(process.ppid, 'SIGSTOP')),
  writeOwnDataDir: attempt(() => fs.writeFileSync(path.join(process.env.DROVER_AGENT_DATA_DIR, 'mine'), 'x')),
};
fs.writeFileSync(path.join(process.env.DROVER_AGENT_DATA_DIR, 'probe.json'), JSON.stringify(result));
setInterval(() => undefined, 1000);
`;

type Probe = Record<string, unknown>;

/**
 * The agent's data directory as install.sh makes it (owned by the agent user, 0700): under the
 * unit droverd cannot chown (@chown is in the unit's ~@privileged, and it has no CAP_CHOWN).
 */
async function prepareDataDir(host: Host): Promise<string> {
  const dir = join(host.stateDir, 'agent-data');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chown(dir, NOBODY, NOBODY);
  return dir;
}

/** droverd under systemd/droverd.service's SystemCallFilter= (what systemd would load), the list kept in the host's directory. */
const unitFilter = (host: Host): string[] => underUnitFilter(join(host.dir, 'syscalls.allow'));

const skip = skipWithoutRoot('the agent-user boundaries', rootUnavailable() ?? unitFilterUnavailable());

describe.skipIf(skip)('droverd runs the agent as its own unprivileged user (privilege separation, decision 0030)', () => {
  let manager: FakeManager;
  let host: Host;
  let dataDir: string;
  const daemons: DaemonProcess[] = [];
  let probe: Probe;

  beforeAll(async () => {
    manager = await FakeManager.start();
    host = await createHost(manager, { settings: { agent: { configDir: '', port: 0, stopTimeoutSeconds: 5, restartBackoffMaxSeconds: 2, user: 'nobody', env: {} } } });
    dataDir = await prepareDataDir(host);
    // The host's directory comes from mkdtemp (0700): let others search it, as /var/lib is.
    await chmod(host.dir, 0o711);
    const settingsText = await readFile(host.configPath, 'utf8');
    const settings = JSON.parse(settingsText) as { agent: Record<string, unknown> };
    settings.agent['configDir'] = host.agentConfigDir;
    settings.agent['env'] = { PROBE_STATE_DIR: host.stateDir };
    await writeFile(host.configPath, JSON.stringify(settings));
    await installAgent(host, manager, '1.0.0', Buffer.from(PROBE));
    daemons.push(new DaemonProcess(host, {}, undefined, unitFilter(host)));
    const file = join(dataDir, 'probe.json');
    probe = await until(async () => (JSON.parse(await readFile(file, 'utf8').catch(() => 'null')) as Probe | null) ?? undefined, 20_000, 'the probe agent\'s report');
  }, 40_000);

  afterAll(async () => {
    await destroyHost(host, daemons);
    await manager.close();
  });

  it('the agent runs as the configured user and its primary group, without root\'s groups, with its own data directory as HOME', async () => {
    expect(probe['uid']).toBe(NOBODY);
    expect(probe['gid']).toBe(NOBODY);
    expect(probe['groups']).not.toContain(0);
    expect(probe['home']).toBe(dataDir);
    expect(probe['dataDir']).toBe(dataDir);
    expect(probe['hasToken']).toBe(true);
    const info = await stat(dataDir);
    expect([info.uid, info.gid, info.mode & 0o777]).toEqual([NOBODY, NOBODY, 0o700]);
    expect(probe['writeOwnDataDir']).toBe('ok');
    // The state directory is searchable, not listable, by others.
    expect((await stat(host.stateDir)).mode & 0o777).toBe(0o711);
    expect(daemons[0]?.lines.some((l) => l.event === 'agent.account' && l['user'] === 'nobody')).toBe(true);
  });

  it('the kernel refuses the agent a write to droverd\'s trust policy, journal or state directory', () => {
    expect(probe['writeTrust']).toBe('EACCES');
    expect(probe['replaceTrust']).toBe('EACCES');
    expect(probe['writeJournal']).toBe('EACCES');
    expect(probe['createInState']).toBe('EACCES');
    expect(probe['listState']).toBe('EACCES');
  });

  it('the kernel refuses the agent a change to its own installed release', () => {
    expect(probe['plantInRelease']).toBe('EACCES');
    expect(probe['overwriteOwnEntry']).toBe('EACCES');
  });

  it('the kernel refuses the agent a read of droverd\'s credentials, agent record and environment', () => {
    expect(probe['readCredentials']).toBe('EACCES');
    expect(probe['readAgentRecord']).toBe('EACCES');
    expect(probe['readDroverdEnviron']).toBe('EACCES');
  });

  it('the kernel refuses the agent a signal to droverd', async () => {
    expect(probe['signalDroverd']).toBe('EPERM');
    expect((await readFile(`/proc/${String(daemons[0]?.child.pid)}/stat`, 'utf8')).split(') ')[1]?.[0]).not.toBe('T');
  });

  it('a droverd killed with SIGKILL leaves the agent user\'s agent running; the next droverd finds it as that user and stops it', async () => {
    const before = await agentRuntime(host);
    expect(before?.pid).toBeGreaterThan(0);
    const first = daemons[0];
    first?.child.kill('SIGKILL');
    await first?.exited;
    // Still alive, orphaned, as nobody.
    expect((await stat(`/proc/${String(before?.pid)}`)).uid).toBe(NOBODY);
    const second = new DaemonProcess(host, {}, undefined, unitFilter(host));
    daemons.push(second);
    const strays = await second.waitForLine((l) => l.event === 'agent.strays' && l['when'] === 'start', 20_000);
    expect(strays['pids']).toEqual([before?.pid]);
    const started = await second.waitForLine((l) => l.event === 'agent.started', 20_000);
    expect(started['pid']).not.toBe(before?.pid);
    await until(async () => ((await stat(`/proc/${String(before?.pid)}`).then(() => false, () => true)) ? true : undefined), 10_000, 'the old agent gone');
    expect(second.lines.some((l) => l.event === 'agent.strays_unreadable')).toBe(false);
  });

  it('refuses root as the agent user, and an unknown user, at start with a code', async () => {
    await killHost(host, daemons);
    const base = JSON.parse(await readFile(host.configPath, 'utf8')) as { agent: Record<string, unknown> };
    for (const [user, code] of [['root', 'AGENT_USER_INVALID'], ['0', 'AGENT_USER_INVALID'], ['drover-no-such-user', 'AGENT_USER_UNKNOWN']] as const) {
      await writeFile(host.configPath, JSON.stringify({ ...base, agent: { ...base.agent, user } }));
      const daemon = new DaemonProcess(host, {}, undefined, unitFilter(host));
      daemons.push(daemon);
      const exit = await daemon.exited;
      expect(exit.code).not.toBe(0);
      expect(daemon.output.join('\n')).toContain(code);
    }
  });
});

describe.skipIf(skip)('an update under the agent user', () => {
  let manager: FakeManager;
  let host: Host;
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    manager = await FakeManager.start();
    host = await createHost(manager);
    await chmod(host.dir, 0o711);
    const settings = JSON.parse(await readFile(host.configPath, 'utf8')) as { agent: Record<string, unknown> };
    await writeFile(host.configPath, JSON.stringify({ ...settings, agent: { ...settings.agent, user: 'nobody' } }));
    await prepareDataDir(host);
    await installAgent(host, manager, '1.0.0', await agentArtifact('1.0.0'));
  }, 30_000);

  afterAll(async () => {
    await destroyHost(host, daemons);
    await manager.close();
  });

  it('downloads, verifies, swaps and health-checks v2, which runs as the agent user too; the agent cannot write its new release either', async () => {
    daemons.push(new DaemonProcess(host, {}, undefined, unitFilter(host)));
    await waitForAgent(host, '1.0.0');
    const v1 = await agentRuntime(host);
    expect((await stat(`/proc/${String(v1?.pid)}`)).uid).toBe(NOBODY);
    const { commandId } = manager.queueUpdate({ version: '2.0.0', bytes: await agentArtifact('2.0.0') });
    const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 30_000);
    expect(result.outcome).toBe('succeeded');
    await waitForAgent(host, '2.0.0');
    const v2 = await agentRuntime(host);
    expect(v2?.pid).not.toBe(v1?.pid);
    expect((await stat(`/proc/${String(v2?.pid)}`)).uid).toBe(NOBODY);
    const release = join(host.stateDir, 'releases', 'agent', '2.0.0');
    const info = await stat(release);
    expect([info.uid, info.mode & 0o777]).toEqual([0, 0o755]);
    expect((await stat(join(release, 'agent.cjs'))).mode & 0o777).toBe(0o444);
  });
});
