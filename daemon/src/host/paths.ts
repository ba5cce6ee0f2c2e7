import { join } from 'node:path';
import envPaths from 'env-paths';
import { APP_NAME, DEFAULT_CONFIG_PATH } from '../config.js';

/** Every path droverd reads or writes, resolved once at start (DESIGN.md "Host layout"). */
export interface DaemonPaths {
  /** `$STATE_DIRECTORY` (/var/lib/drover under systemd), else env-paths' data dir. */
  readonly state: string;
  /** `$LOGS_DIRECTORY`, else env-paths' log dir. */
  readonly logs: string;
  /** droverd.json: `--config`, else `$CONFIGURATION_DIRECTORY/droverd.json`, else /etc/drover/droverd.json. */
  readonly configFile: string;
  /** True when the config file was named explicitly (then it must exist). */
  readonly configExplicit: boolean;
  readonly journal: string;
  readonly credentials: string;
  readonly trust: string;
  readonly releases: string;
  readonly current: string;
  readonly previous: string;
  readonly staging: string;
  /** The proper-lockfile lock (a directory) that keeps one daemon per state dir. */
  readonly lock: string;
  /** The lock owner's pid and start time, beside the lock. */
  readonly lockOwner: string;
  /** The agent droverd starts or runs: its instance mark and version (written before the spawn), then its pid and start time (decision 0026). */
  readonly agentRuntime: string;
  /** The launcher's boot counter of an uncommitted daemon update. */
  readonly daemonBoots: string;
}

/** What decides droverd's paths: the command line, the environment (systemd's directories), droverd.json. */
export interface PathInputs {
  env?: Readonly<Record<string, string | undefined>>;
  /** `--config`. */
  configFile?: string | undefined;
  /** `--state-dir` (wins over everything else). */
  stateDir?: string | undefined;
  /** `stateDir` from droverd.json (below $STATE_DIRECTORY). */
  configuredStateDir?: string | undefined;
}

// systemd passes one path per directory named in StateDirectory= (colon-separated when several).
function firstOf(value: string | undefined): string | undefined {
  const first = value?.split(':')[0]?.trim();
  return first === undefined || first === '' ? undefined : first;
}

/** Where droverd.json is, before it is read (the state dir may come from it). */
export function resolveConfigFile(inputs: PathInputs): { path: string; explicit: boolean } {
  const env = inputs.env ?? process.env;
  if (inputs.configFile !== undefined) return { path: inputs.configFile, explicit: true };
  const fromEnv = env['DROVER_CONFIG'];
  if (fromEnv !== undefined && fromEnv !== '') return { path: fromEnv, explicit: true };
  const configDir = firstOf(env['CONFIGURATION_DIRECTORY']);
  return { path: configDir === undefined ? DEFAULT_CONFIG_PATH : join(configDir, 'droverd.json'), explicit: false };
}

/** droverd's files and directories, from the command line, then systemd's environment, then droverd.json, then the platform's defaults. */
export function resolvePaths(inputs: PathInputs): DaemonPaths {
  const env = inputs.env ?? process.env;
  const fallback = envPaths(APP_NAME, { suffix: '' });
  const state = inputs.stateDir ?? firstOf(env['STATE_DIRECTORY']) ?? inputs.configuredStateDir ?? fallback.data;
  const logs = firstOf(env['LOGS_DIRECTORY']) ?? fallback.log;
  const config = resolveConfigFile(inputs);
  return {
    state,
    logs,
    configFile: config.path,
    configExplicit: config.explicit,
    journal: join(state, 'journal.json'),
    credentials: join(state, 'credentials.json'),
    trust: join(state, 'trust.json'),
    releases: join(state, 'releases'),
    current: join(state, 'current'),
    previous: join(state, 'previous'),
    staging: join(state, 'staging'),
    lock: join(state, 'droverd.lock'),
    lockOwner: join(state, 'droverd.pid'),
    agentRuntime: join(state, 'agent.json'),
    daemonBoots: join(state, 'daemon-boots.json'),
  };
}
