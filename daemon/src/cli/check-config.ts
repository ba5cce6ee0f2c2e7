import { pinnedManagerKey } from '../manager-link/enroll.js';
import { loadTrustPolicy } from '../releases/trust.js';
import { loadContext } from './context.js';
import { stringOption } from './framework.js';
import type { CliCommand } from './framework.js';

// `droverd check-config`: droverd.json (and optionally a trust policy) checked exactly as droverd
// reads them, without starting, enrolling or writing anything. install.sh runs it on the
// droverd.json it is about to write, before it writes anything (issue 17: validate, then act).

export const checkConfigCommand: CliCommand = {
  name: 'check-config',
  summary: 'Check droverd.json (and a trust policy) as droverd reads them, without starting or writing anything.',
  usage: '[--config FILE] [--trust FILE]',
  description:
    'Exits 0 when droverd.json parses, names an http(s) manager URL, and pins a manager key that is an Ed25519 public key (or says manager.tofu: true); with --trust, when FILE is a valid release trust policy. Otherwise exits with CONFIG_INVALID, MANAGER_KEY_NOT_PINNED, TRUST_POLICY_MISSING or TRUST_POLICY_INVALID.',
  options: {
    trust: { type: 'string', arg: 'FILE', help: 'Also check this release trust policy (trust.json).' },
  },
  async run(input) {
    const { settings, paths } = await loadContext(input);
    if (settings.manager.url !== undefined) pinnedManagerKey(settings.manager.key, settings.manager.tofu);
    const trust = stringOption(input.values, 'trust');
    if (trust !== undefined) await loadTrustPolicy(trust);
    const data = { ok: true, config: paths.configFile, manager: settings.manager.url ?? null, trust: trust ?? null };
    return { data, text: `${paths.configFile} is valid${trust === undefined ? '' : `; ${trust} is a valid trust policy`}.` };
  },
};
