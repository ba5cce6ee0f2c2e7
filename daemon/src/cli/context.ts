import { resolveConfigFile, resolvePaths } from '../host/paths.js';
import type { DaemonPaths } from '../host/paths.js';
import { loadSettings } from '../settings.js';
import type { Settings } from '../settings.js';
import { stringOption } from './framework.js';
import type { CommandInput } from './framework.js';

/** The settings and paths a command works with, from --config, --state-dir and the environment. */
export async function loadContext(input: CommandInput): Promise<{ settings: Settings; paths: DaemonPaths }> {
  const env = input.io.env;
  const config = resolveConfigFile({ env, configFile: stringOption(input.values, 'config') });
  const settings = await loadSettings(config.path, config.explicit, env);
  const paths = resolvePaths({ env, configFile: stringOption(input.values, 'config'), stateDir: stringOption(input.values, 'state-dir'), configuredStateDir: settings.stateDir });
  return { settings, paths };
}
