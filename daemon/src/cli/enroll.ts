import { exitCodes, limits } from '../config.js';
import { DaemonError } from '../errors.js';
import { collectInventory } from '../host/inventory.js';
import { acquireStateLock } from '../host/lock.js';
import { resolveMachineId } from '../host/machine-id.js';
import { createManagerHttp } from '../http-clients.js';
import { createDaemonLogger } from '../logger.js';
import { loadCredentials, saveCredentials } from '../manager-link/credentials.js';
import { enroll } from '../manager-link/enroll.js';
import { ReleaseStore } from '../releases/store.js';
import { DAEMON_VERSION, NO_VERSION } from '../version.js';
import { loadContext } from './context.js';
import { requireOption, stringOption } from './framework.js';
import type { CliCommand } from './framework.js';

export const enrollCommand: CliCommand = {
  name: 'enroll',
  summary: 'Enroll this host with a manager and store its credentials (credentials.json, mode 0600).',
  usage: '--manager URL --token TOKEN (--manager-key KEY | --tofu) [--force]',
  description:
    'The manager key signs update nonces; pin it with --manager-key (base64, hex or PEM public key). --tofu trusts the keys the manager presents instead, and says so in the log. Neither: refused (MANAGER_KEY_NOT_PINNED). Stop droverd before enrolling again.',
  options: {
    manager: { type: 'string', arg: 'URL', help: 'The manager\'s base URL (default: manager.url in droverd.json).' },
    token: { type: 'string', arg: 'TOKEN', help: 'The enrollment token from the operator (or $DROVER_ENROLLMENT_TOKEN).' },
    'manager-key': { type: 'string', arg: 'KEY', help: 'The manager\'s public key to pin (default: manager.key in droverd.json).' },
    tofu: { type: 'boolean', help: 'Trust the manager keys presented at enrollment (no pin).' },
    force: { type: 'boolean', help: 'Enroll again even if this host is enrolled (replaces credentials.json).' },
  },
  async run(input) {
    const { settings, paths } = await loadContext(input);
    const managerUrl = stringOption(input.values, 'manager') ?? settings.manager.url;
    if (managerUrl === undefined) throw new DaemonError('USAGE_ERROR', '--manager is required (or manager.url in droverd.json).');
    const token = stringOption(input.values, 'token') ?? settings.manager.enrollmentToken ?? requireOption(input.values, 'token');
    const pinnedKey = stringOption(input.values, 'manager-key') ?? settings.manager.key;
    const tofu = input.values['tofu'] === true || (pinnedKey === undefined && settings.manager.tofu);
    const logger = createDaemonLogger({
      level: settings.logLevel,
      destination: {
        write: (line: string) => {
          input.io.stderr(line);
        },
      },
    });
    const lock = await acquireStateLock(paths.state, {
      lockPath: paths.lock,
      ownerPath: paths.lockOwner,
      onCompromised: () => {
        // a one-shot command: nothing to stop
      },
    });
    const http = createManagerHttp({ daemonVersion: DAEMON_VERSION, logger });
    try {
      if ((await loadCredentials(paths.credentials)) !== undefined && input.values['force'] !== true) {
        throw new DaemonError('ALREADY_ENROLLED', `This host is already enrolled (${paths.credentials}). Pass --force to enroll again.`);
      }
      const machineId = await resolveMachineId(settings.machineId);
      const store = new ReleaseStore(paths);
      const credentials = await enroll({
        http,
        managerUrl,
        enrollmentToken: token,
        pinnedKey,
        tofu,
        machineId,
        platform: settings.platform,
        agentVersion: (await store.currentVersion('agent')) ?? NO_VERSION,
        daemonVersion: DAEMON_VERSION,
        inventory: () => collectInventory(logger, limits.inventoryTimeoutMs),
        logger,
      });
      await saveCredentials(paths.credentials, credentials);
      const data = { enrolled: true, agentId: credentials.agentId, manager: credentials.managerUrl, trust: credentials.trust, managerKeys: credentials.managerKeys.map((k) => k.keyid), credentials: paths.credentials };
      return { data, text: `Enrolled as ${credentials.agentId} with ${credentials.managerUrl} (manager key ${credentials.trust}: ${data.managerKeys.join(', ')}).`, exitCode: exitCodes.ok };
    } finally {
      await http.close();
      await lock.release();
    }
  },
};
