import { AgentIdSchema, Fernet, resolveEncryptionKey, sha256, toHex } from '@drover/protocol/internal';
import type { EncryptionKeySource } from '@drover/protocol/internal';
import { SecretError, isDroverError } from '@drover/protocol';
import { CliError } from '../errors.js';

// CIRISManager's agent registry (`<agents_directory>/metadata.json`), read as its own code reads it:
// ciris_manager/agent_registry.py (`AgentRegistry._load_metadata`, `RegisteredAgent.from_dict`)
// and ciris_manager/crypto.py (`TokenEncryption`), CIRISAI/CIRISManager at
// 7d902f2fcd5a8e9156b2add2d6e91a9e9ec3e6f2. docs/ciris-compat.md C1-C4 and decision 0036.

/** The server ids CIRISManager recognises as the suffix of a composite key (`_parse_key`). */
const KNOWN_SERVERS = new Set(['main', 'scout', 'scout2']);
const GROUPS = new Set(['explorer', 'early_adopter', 'general']);
const ID_PATTERN = new RegExp(AgentIdSchema.pattern ?? '^[A-Za-z0-9][A-Za-z0-9._-]*$');
const ID_MAX_LENGTH = AgentIdSchema.maxLength ?? 128;

/** One agent of the registry, its service token still encrypted. */
export interface CirisRegistryAgent {
  /** The registry's key (`agent_id-server_id`, `agent_id-occurrence_id-server_id`, or a bare id): drover's agent id. */
  key: string;
  agentId: string;
  occurrenceId: string | undefined;
  serverId: string;
  name: string;
  port: number;
  /** Fernet ciphertext, as stored; undefined when the agent has none. */
  serviceTokenCiphertext: string | undefined;
  currentVersion: string | undefined;
  group: 'explorer' | 'early_adopter' | 'general' | undefined;
}

export interface CirisRegistry {
  sha256: string;
  agents: CirisRegistryAgent[];
}

function invalid(message: string): CliError {
  return new CliError('CIRIS_REGISTRY_INVALID', `${message} Point --ciris-registry at CIRISManager's metadata.json (e.g. /opt/ciris/agents/metadata.json).`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// `_parse_key`: a key ending in a known server id is agent_id[-occurrence_id]-server_id; any other
// key is a bare agent id on server main.
function parseKey(key: string): { agentId: string; occurrenceId: string | undefined; serverId: string | undefined } {
  const parts = key.split('-');
  const last = parts.at(-1) ?? '';
  if (parts.length >= 2 && KNOWN_SERVERS.has(last)) {
    return { agentId: parts[0] ?? key, occurrenceId: parts.length === 2 ? undefined : parts.slice(1, -1).join('-'), serverId: last };
  }
  return { agentId: key, occurrenceId: undefined, serverId: undefined };
}

function optionalText(data: Record<string, unknown>, field: string, key: string): string | undefined {
  const value = data[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(`Agent "${key}": ${field} is not a string.`);
  return value;
}

/** Parses the registry's bytes; throws CIRIS_REGISTRY_INVALID naming the first agent it cannot read. */
export function parseCirisRegistry(bytes: Uint8Array): CirisRegistry {
  let data: unknown;
  try {
    data = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new CliError('CIRIS_REGISTRY_INVALID', 'The registry file is not JSON. Point --ciris-registry at CIRISManager\'s metadata.json.', { cause: error });
  }
  if (!isObject(data)) throw invalid('The registry file is not a JSON object.');
  const agentsData = data['agents'] ?? {};
  if (!isObject(agentsData)) throw invalid('Its "agents" is not an object.');
  const agents: CirisRegistryAgent[] = [];
  for (const [key, value] of Object.entries(agentsData)) {
    if (!isObject(value)) throw invalid(`Agent "${key}" is not an object.`);
    // `_load_metadata`: an explicit agent_id is trusted with the data's server_id; otherwise the
    // key is parsed, and its server suffix wins over the data's.
    const parsed = parseKey(key);
    const explicit = optionalText(value, 'agent_id', key);
    const dataServer = optionalText(value, 'server_id', key) ?? 'main';
    const agentId = explicit ?? parsed.agentId;
    const serverId = explicit === undefined ? (parsed.serverId ?? dataServer) : dataServer;
    const occurrenceId = explicit === undefined ? parsed.occurrenceId : optionalText(value, 'occurrence_id', key);
    const name = value['name'];
    const port = value['port'];
    if (typeof name !== 'string' || name === '') throw invalid(`Agent "${key}" has no name.`);
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`Agent "${key}" has no valid port.`);
    if (key.length > ID_MAX_LENGTH || !ID_PATTERN.test(key)) {
      throw invalid(`Agent "${key.slice(0, 80)}": drover's agent ids are letters, digits, ".", "_" and "-" (at most ${ID_MAX_LENGTH}), starting with a letter or digit; this key is not one.`);
    }
    const metadata = isObject(value['metadata']) ? value['metadata'] : {};
    const group = typeof metadata['canary_group'] === 'string' && GROUPS.has(metadata['canary_group']) ? (metadata['canary_group'] as CirisRegistryAgent['group']) : undefined;
    const token = optionalText(value, 'service_token', key);
    agents.push({
      key,
      agentId,
      occurrenceId,
      serverId,
      name,
      port,
      serviceTokenCiphertext: token === undefined || token === '' ? undefined : token,
      currentVersion: optionalText(value, 'current_version', key),
      group,
    });
  }
  return { sha256: toHex(sha256(bytes)), agents };
}

/**
 * The key CIRISManager's `TokenEncryption._get_cipher` uses: CIRIS_ENCRYPTION_KEY, else PBKDF2 from
 * MANAGER_JWT_SECRET with CIRIS_ENCRYPTION_SALT (both required, the salt at least 16 characters).
 * Where CIRISManager logs an invalid CIRIS_ENCRYPTION_KEY and falls back to the derived key, this
 * refuses (FERNET_KEY_INVALID): the operator configured a key, and the tokens were written under it.
 * DROVER_ENCRYPTION_KEY is drover's own key and plays no part here.
 */
export function cirisRegistryKey(env: NodeJS.ProcessEnv): { fernet: Fernet; source: EncryptionKeySource } {
  const { CIRIS_ENCRYPTION_KEY, MANAGER_JWT_SECRET, CIRIS_ENCRYPTION_SALT } = env;
  try {
    const { key, source } = resolveEncryptionKey({ CIRIS_ENCRYPTION_KEY, MANAGER_JWT_SECRET, CIRIS_ENCRYPTION_SALT });
    return { fernet: new Fernet(key), source };
  } catch (error) {
    if (isDroverError(error) && error.code === 'ENCRYPTION_KEY_MISSING') {
      throw new SecretError(
        'ENCRYPTION_KEY_MISSING',
        "Failed to find CIRISManager's encryption key: set CIRIS_ENCRYPTION_KEY, or MANAGER_JWT_SECRET and CIRIS_ENCRYPTION_SALT, to the values CIRISManager runs with.",
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Decrypts every agent's service token as `TokenEncryption.decrypt_token` does (a Fernet token,
 * which starts "gAAAAA"), all before anything is sent: one that does not decrypt and nothing is
 * imported (CIRIS_TOKEN_UNREADABLE, naming the agents, never a token).
 */
export function decryptServiceTokens(agents: readonly CirisRegistryAgent[], fernet: Fernet, source: EncryptionKeySource): Map<string, string> {
  const tokens = new Map<string, string>();
  const unreadable: string[] = [];
  for (const agent of agents) {
    if (agent.serviceTokenCiphertext === undefined) continue;
    try {
      if (!agent.serviceTokenCiphertext.startsWith('gAAAAA')) throw new Error('not a Fernet token');
      tokens.set(agent.key, fernet.decryptText(agent.serviceTokenCiphertext));
    } catch {
      unreadable.push(agent.key);
    }
  }
  if (unreadable.length > 0) {
    const from = source === 'derived' ? 'derived from MANAGER_JWT_SECRET and CIRIS_ENCRYPTION_SALT' : `in ${source}`;
    throw new CliError(
      'CIRIS_TOKEN_UNREADABLE',
      `Nothing was imported: the service token of ${unreadable.length} agent(s) (${unreadable.slice(0, 5).join(', ')}${unreadable.length > 5 ? ', ...' : ''}) ` +
        `does not decrypt with the key ${from}. Set CIRIS_ENCRYPTION_KEY (or MANAGER_JWT_SECRET and CIRIS_ENCRYPTION_SALT) to what CIRISManager runs with.`,
    );
  }
  return tokens;
}
