import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { DEFAULT_AGENT_CONFIG_DIR, limits } from './config.js';
import { DaemonError } from './errors.js';
import { parseLogLevel } from './logger.js';
import type { LogLevel } from './logger.js';

// droverd.json: what an operator configures. Unknown keys are refused, so a misspelt setting fails
// loudly at start instead of being silently ignored on a fleet of hosts. Durations are in seconds
// in the file (fractions allowed) and in milliseconds here.

/** The `manager` section of droverd.json: its URL, the pinned key, enrollment. */
export interface ManagerSettings {
  /** The manager's base URL, e.g. https://manager.example.com. */
  url: string | undefined;
  /** The pinned manager public key (base64, base64url, hex or PEM), or undefined. */
  key: string | undefined;
  /** Trust the keys the manager presents at enrollment when none is pinned (logged). */
  tofu: boolean;
  /** Enroll at `droverd run` with this token when not enrolled yet. */
  enrollmentToken: string | undefined;
}

/** The `agent` section of droverd.json: where its config lives, where it listens, how it is stopped and restarted. */
export interface AgentSettings {
  /** Given to the agent as DROVER_CONFIG_DIR; never written by an update. */
  configDir: string;
  /** Where the agent listens (AGENT_HOST). */
  host: string;
  /** AGENT_PORT/PORT; 0: droverd picks a free loopback port at each start. */
  port: number;
  /** Extra environment for the agent (the daemon's own environment is not passed on). */
  env: Record<string, string>;
  stopTimeoutMs: number;
  restartBackoffMaxMs: number;
  /**
   * The user the agent runs as (a name or a numeric uid), never root; undefined: droverd's own user
   * (decision 0030). install.sh creates the system user `drover` and names it here.
   */
  user: string | undefined;
  /** The agent's group (a name or a numeric gid); undefined: the user's primary group. */
  group: string | undefined;
  /** The agent's own writable directory (HOME, DROVER_AGENT_DATA_DIR); undefined: `<state dir>/agent-data`. */
  dataDir: string | undefined;
}

/** droverd.json, checked and with every default filled in ({@link loadSettings}). */
export interface Settings {
  manager: ManagerSettings;
  stateDir: string | undefined;
  /** This host's platform as releases name it, e.g. linux-x64. */
  platform: string;
  /** A hashed machine id to use instead of node-machine-id's (cloned images that share /etc/machine-id). */
  machineId: string | undefined;
  keepReleases: number;
  logLevel: LogLevel;
  agent: AgentSettings;
  update: { healthGraceMs: number; healthTimeoutMs: number; deferBackoffMaxMs: number };
  download: { stallTimeoutMs: number; maxAttempts: number; maxDurationMs: number };
  /** `credentialRotationMs`: how old the host's credential may get before droverd rotates it (decision 0032); 0: never. */
  /** `channelWaitSeconds`: how long a check-in asks the manager to hold it for a command (the command channel, decision 0041); 0: no channel. */
  checkin: { backoffMaxMs: number; credentialRotationMs: number; channelWaitSeconds: number };
  /** node_exporter's textfile directory, where droverd keeps droverd.prom; undefined: no metrics file. */
  metrics: { textfileDir: string | undefined };
}

type Json = Record<string, unknown>;

class Reader {
  readonly #source: string;
  constructor(source: string) {
    this.#source = source;
  }

  fail(path: string, expected: string): never {
    throw new DaemonError('CONFIG_INVALID', `${this.#source}: "${path}" must be ${expected}. Fix the file and start droverd again.`);
  }

  object(value: unknown, path: string, keys: readonly string[]): Json {
    if (value === undefined) return {};
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(path || '/', 'an object');
    for (const key of Object.keys(value)) {
      if (!keys.includes(key)) this.fail(`${path}/${key}`, `one of the known settings (${keys.join(', ')}); unknown keys are refused`);
    }
    return value as Json;
  }

  string(obj: Json, key: string, path: string, fallback?: string): string | undefined {
    const value = obj[key];
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || value.trim() === '' || value.length > 4096) this.fail(`${path}/${key}`, 'a non-empty string');
    return value;
  }

  boolean(obj: Json, key: string, path: string, fallback: boolean): boolean {
    const value = obj[key];
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') this.fail(`${path}/${key}`, 'true or false');
    return value;
  }

  number(obj: Json, key: string, path: string, fallback: number, min: number, max: number, integer = false): number {
    const value = obj[key];
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      this.fail(`${path}/${key}`, `a${integer ? 'n integer' : ' number'} from ${min} to ${max}`);
    }
    return value;
  }

  seconds(obj: Json, key: string, path: string, fallbackMs: number, maxSeconds = 86_400): number {
    return Math.round(this.number(obj, key, path, fallbackMs / 1000, 0, maxSeconds) * 1000);
  }
}

/** This host's platform as releases name it: `<os>-<arch>`, e.g. linux-x64. */
export function hostPlatform(): string {
  return `${process.platform}-${process.arch}`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// What useradd/groupadd accept (and a bare number, taken as an id).
const ACCOUNT_NAME = /^(?:[a-z_][a-z0-9_-]{0,30}\$?|[0-9]{1,10})$/;

function rotationHours(r: Reader, checkin: Json): number {
  const hours = r.number(checkin, 'credentialRotationHours', '/checkin', limits.credentialRotationHours, 0, 8760);
  if (hours !== 0 && hours < 1) r.fail('/checkin/credentialRotationHours', '0 (no rotation) or a number of hours from 1 to 8760');
  return hours;
}

/** Validates droverd.json's content (an object) and fills in the defaults. */
export function parseSettings(input: unknown, source = 'droverd.json', env: Readonly<Record<string, string | undefined>> = {}): Settings {
  const r: Reader = new Reader(source);
  const root = r.object(input, '', ['manager', 'stateDir', 'platform', 'machineId', 'keepReleases', 'logLevel', 'agent', 'update', 'download', 'checkin', 'metrics']);
  const manager = r.object(root['manager'], '/manager', ['url', 'key', 'tofu', 'enrollmentToken']);
  const agent = r.object(root['agent'], '/agent', ['configDir', 'host', 'port', 'env', 'stopTimeoutSeconds', 'restartBackoffMaxSeconds', 'user', 'group', 'dataDir']);
  const update = r.object(root['update'], '/update', ['healthGraceSeconds', 'healthTimeoutSeconds', 'deferBackoffMaxSeconds']);
  const download = r.object(root['download'], '/download', ['stallTimeoutSeconds', 'maxAttempts', 'maxDurationSeconds']);
  const checkin = r.object(root['checkin'], '/checkin', ['backoffMaxSeconds', 'credentialRotationHours', 'channelWaitSeconds']);
  const metrics = r.object(root['metrics'], '/metrics', ['textfileDir']);

  const url = env['DROVER_MANAGER_URL'] ?? r.string(manager, 'url', '/manager');
  if (url !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || parsed.username !== '' || parsed.password !== '') {
      r.fail('/manager/url', 'an http(s) URL without credentials in it');
    }
  }
  const machineId = r.string(root, 'machineId', '');
  if (machineId !== undefined && !/^[0-9a-f]{64}$/.test(machineId)) r.fail('/machineId', '64 lowercase hex characters (a SHA-256)');
  const platform = r.string(root, 'platform', '', hostPlatform()) ?? hostPlatform();
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(platform)) r.fail('/platform', 'a platform name such as linux-x64');
  const logLevelText = env['DROVER_LOG_LEVEL'] ?? r.string(root, 'logLevel', '', 'info');
  const logLevel = parseLogLevel(logLevelText) ?? r.fail('/logLevel', 'debug, info, warn or error');

  const agentEnvRaw = r.object(agent['env'], '/agent/env', Object.keys((agent['env'] as Json | undefined) ?? {}));
  const agentEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(agentEnvRaw)) {
    if (!ENV_NAME.test(name) || typeof value !== 'string') r.fail(`/agent/env/${name}`, 'a string, under a valid variable name');
    agentEnv[name] = value;
  }

  const agentUser = r.string(agent, 'user', '/agent');
  if (agentUser !== undefined && !ACCOUNT_NAME.test(agentUser)) r.fail('/agent/user', 'a user name or a numeric uid');
  const agentGroup = r.string(agent, 'group', '/agent');
  if (agentGroup !== undefined && !ACCOUNT_NAME.test(agentGroup)) r.fail('/agent/group', 'a group name or a numeric gid');
  if (agentGroup !== undefined && agentUser === undefined) r.fail('/agent/group', 'set only together with /agent/user');
  const agentDataDir = r.string(agent, 'dataDir', '/agent');
  if (agentDataDir !== undefined && !isAbsolute(agentDataDir)) r.fail('/agent/dataDir', 'an absolute path');
  const textfileDir = r.string(metrics, 'textfileDir', '/metrics');
  if (textfileDir !== undefined && !isAbsolute(textfileDir)) r.fail('/metrics/textfileDir', "an absolute path (node_exporter's --collector.textfile.directory)");

  return {
    manager: {
      url,
      key: r.string(manager, 'key', '/manager'),
      tofu: r.boolean(manager, 'tofu', '/manager', false),
      enrollmentToken: env['DROVER_ENROLLMENT_TOKEN'] ?? r.string(manager, 'enrollmentToken', '/manager'),
    },
    stateDir: r.string(root, 'stateDir', ''),
    platform,
    machineId,
    keepReleases: r.number(root, 'keepReleases', '', limits.keepReleases, 2, 100, true),
    logLevel,
    agent: {
      configDir: r.string(agent, 'configDir', '/agent', DEFAULT_AGENT_CONFIG_DIR) ?? DEFAULT_AGENT_CONFIG_DIR,
      host: r.string(agent, 'host', '/agent', '127.0.0.1') ?? '127.0.0.1',
      port: r.number(agent, 'port', '/agent', 8080, 0, 65_535, true),
      env: agentEnv,
      stopTimeoutMs: r.seconds(agent, 'stopTimeoutSeconds', '/agent', limits.agentStopTimeoutMs),
      restartBackoffMaxMs: r.seconds(agent, 'restartBackoffMaxSeconds', '/agent', limits.restartBackoffMaxMs),
      user: agentUser,
      group: agentGroup,
      dataDir: agentDataDir,
    },
    update: {
      healthGraceMs: r.seconds(update, 'healthGraceSeconds', '/update', limits.healthGraceMs),
      healthTimeoutMs: r.seconds(update, 'healthTimeoutSeconds', '/update', limits.healthTimeoutMs),
      deferBackoffMaxMs: r.seconds(update, 'deferBackoffMaxSeconds', '/update', limits.deferBackoffMaxMs),
    },
    download: {
      stallTimeoutMs: r.seconds(download, 'stallTimeoutSeconds', '/download', limits.downloadStallTimeoutMs, 3600),
      maxAttempts: r.number(download, 'maxAttempts', '/download', limits.downloadMaxAttempts, 1, 100, true),
      maxDurationMs: r.seconds(download, 'maxDurationSeconds', '/download', limits.downloadMaxDurationMs),
    },
    checkin: {
      backoffMaxMs: r.seconds(checkin, 'backoffMaxSeconds', '/checkin', limits.checkinBackoffMaxMs),
      // Hours: 0 turns rotation off, else from 1 (a rotation costs two writes and two audit records) to a year.
      credentialRotationMs: rotationHours(r, checkin) * 3_600_000,
      // Whole seconds, 0 (no channel: check in at the interval only) to 300; the manager caps it too.
      channelWaitSeconds: r.number(checkin, 'channelWaitSeconds', '/checkin', limits.checkinChannelWaitSeconds, 0, 300, true),
    },
    metrics: { textfileDir },
  };
}

/** Reads droverd.json; a missing file is fine unless it was named explicitly. */
export async function loadSettings(path: string, explicit: boolean, env: Readonly<Record<string, string | undefined>> = process.env): Promise<Settings> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return parseSettings({}, path, env);
    if (code === 'ENOENT') throw new DaemonError('CONFIG_NOT_FOUND', `The configuration file ${path} does not exist. Check --config (or DROVER_CONFIG).`, { cause: error });
    throw new DaemonError('IO_ERROR', `Cannot read the configuration file ${path} (${code ?? 'error'}). Check its permissions.`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new DaemonError('CONFIG_INVALID', `${path} is not valid JSON. Fix the file and start droverd again.`, { cause: error });
  }
  return parseSettings(value, path, env);
}
