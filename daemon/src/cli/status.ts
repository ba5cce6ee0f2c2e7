import { readJsonFile } from '../host/fs-atomic.js';
import { isAlive, parseIdentity } from '../host/process-identity.js';
import { loadCredentials } from '../manager-link/credentials.js';
import { ReleaseStore } from '../releases/store.js';
import { readJournal } from '../update/journal.js';
import { DAEMON_VERSION } from '../version.js';
import { loadContext } from './context.js';
import type { CliCommand } from './framework.js';

export const statusCommand: CliCommand = {
  name: 'status',
  summary: 'Show the installed versions, the update in progress and the last result, from the journal.',
  usage: '[--json]',
  description: 'Reads the state directory without taking its lock, so it works while droverd runs. Never prints a secret.',
  options: {},
  async run(input) {
    const { paths } = await loadContext(input);
    const store = new ReleaseStore(paths);
    const journal = await readJournal(paths.journal);
    const credentials = await loadCredentials(paths.credentials).catch(() => undefined);
    const owner = parseIdentity(await readJsonFile(paths.lockOwner, 4096).catch(() => undefined));
    const daemonRunning = owner !== undefined && (await isAlive(owner));
    const agentRuntime = parseIdentity(await readJsonFile(paths.agentRuntime, 4096).catch(() => undefined));
    const update = journal?.update ?? null;
    const data = {
      state: paths.state,
      enrolled: credentials !== undefined,
      agentId: credentials?.agentId ?? null,
      manager: credentials?.managerUrl ?? null,
      managerKeyTrust: credentials?.trust ?? null,
      daemon: { running: daemonRunning, pid: daemonRunning ? owner.pid : null, version: DAEMON_VERSION, installed: (await store.currentVersion('daemon')) ?? null },
      agent: {
        current: (await store.currentVersion('agent')) ?? null,
        previous: (await store.previousVersion('agent')) ?? null,
        pid: agentRuntime !== undefined && (await isAlive(agentRuntime)) ? agentRuntime.pid : null,
        releases: (await store.list('agent')).map((release) => release.version),
      },
      update:
        update === null
          ? null
          : {
              commandId: update.commandId,
              artifact: update.artifact,
              step: update.step,
              fromVersion: update.fromVersion,
              toVersion: update.verified?.manifest.version ?? null,
              deploymentId: update.verified?.deploymentId ?? null,
              deferrals: update.deferrals,
              since: update.stepAt,
            },
      lastResult: journal?.lastResult ?? null,
      pendingResults: journal?.pendingResults.length ?? 0,
    };
    const lines = [
      `state:    ${data.state}`,
      `enrolled: ${data.enrolled ? `yes, as ${data.agentId ?? '?'} with ${data.manager ?? '?'} (manager key ${data.managerKeyTrust ?? '?'})` : 'no'}`,
      `daemon:   ${data.daemon.running ? `running (pid ${data.daemon.pid ?? '?'})` : 'not running'}; installed ${data.daemon.installed ?? '(package)'}`,
      `agent:    ${data.agent.current ?? 'none installed'}${data.agent.previous === null ? '' : ` (previous ${data.agent.previous})`}${data.agent.pid === null ? '' : `, pid ${data.agent.pid}`}`,
      `update:   ${data.update === null ? 'none in progress' : `${data.update.artifact} ${data.update.fromVersion ?? 'none'} -> ${data.update.toVersion ?? '?'}: ${data.update.step} since ${data.update.since}`}`,
      `last:     ${data.lastResult === null ? 'none' : `${data.lastResult.artifact} ${data.lastResult.toVersion ?? ''} ${data.lastResult.outcome}${data.lastResult.detail.code === undefined ? '' : ` (${data.lastResult.detail.code})`} at ${data.lastResult.at}`}`,
    ];
    return { data, text: lines.join('\n') };
  },
};
