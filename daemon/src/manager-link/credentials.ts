import { stat } from 'node:fs/promises';
import { Ed25519PublicKey } from '@drover/protocol';
import type { ManagerKey } from '@drover/protocol';
import { DaemonError } from '../errors.js';
import { readJsonFile, writeJsonAtomic } from '../host/fs-atomic.js';

// credentials.json holds what enrollment gave this host: its agent id, the credential it presents
// to the manager, the service token it gives the agent, and the manager keys it trusts to sign
// update nonces. It is a secret: written 0600, never logged (tokens are named by their id).

/** credentials.json: what enrollment gave this host (agent id, credential, service token, pinned manager keys). A secret. */
export interface Credentials {
  schema: 'drover.credentials/v1';
  managerUrl: string;
  agentId: string;
  credential: string;
  serviceToken: string;
  /** The manager keys nonces must be signed by: the pinned one, or (TOFU) those presented at enrollment. */
  managerKeys: ManagerKey[];
  /** How the manager keys came to be trusted. */
  trust: 'pinned' | 'tofu';
  machineId: string;
  checkinIntervalSeconds: number;
  enrolledAt: string;
  /** When `credential` was issued (a rotation's time, decision 0032); absent until the first rotation: `enrolledAt`. */
  credentialIssuedAt?: string;
  /**
   * The credential before the last rotation, kept until the manager has accepted the new one once:
   * if it refuses the new one, droverd goes back to this (decision 0032). A secret, like `credential`.
   */
  previousCredential?: string;
}

function isCredentials(value: unknown): value is Credentials {
  if (typeof value !== 'object' || value === null) return false;
  const c = value as Partial<Credentials>;
  return (
    c.schema === 'drover.credentials/v1' &&
    typeof c.managerUrl === 'string' &&
    typeof c.agentId === 'string' &&
    typeof c.credential === 'string' &&
    typeof c.serviceToken === 'string' &&
    Array.isArray(c.managerKeys) &&
    c.managerKeys.length > 0 &&
    (c.trust === 'pinned' || c.trust === 'tofu') &&
    typeof c.machineId === 'string' &&
    typeof c.checkinIntervalSeconds === 'number' &&
    (c.credentialIssuedAt === undefined || typeof c.credentialIssuedAt === 'string') &&
    (c.previousCredential === undefined || typeof c.previousCredential === 'string')
  );
}

/** Reads credentials.json; undefined when the host is not enrolled. */
export async function loadCredentials(path: string): Promise<Credentials | undefined> {
  let value: unknown;
  try {
    value = await readJsonFile(path, 64 * 1024);
  } catch (error) {
    throw new DaemonError('STATE_CORRUPT', `${path} cannot be read. Enroll again (droverd enroll) after removing it.`, { cause: error });
  }
  if (value === undefined) return undefined;
  if (!isCredentials(value)) throw new DaemonError('STATE_CORRUPT', `${path} is not a droverd credentials file. Enroll again (droverd enroll) after removing it.`);
  // A credentials file others can read leaks the host's identity: refuse to go on with it.
  const { mode } = await stat(path);
  if ((mode & 0o077) !== 0) {
    throw new DaemonError('STATE_CORRUPT', `${path} is readable by other users (mode ${(mode & 0o777).toString(8)}). Run chmod 600 on it.`);
  }
  return value;
}

/** Writes credentials.json atomically, mode 0600. */
export async function saveCredentials(path: string, credentials: Credentials): Promise<void> {
  await writeJsonAtomic(path, credentials, { mode: 0o600 });
}

/** The manager keys of a credentials file, parsed. */
export function managerPublicKeys(credentials: Credentials): Ed25519PublicKey[] {
  return credentials.managerKeys.map((key) => Ed25519PublicKey.from(key.publicKey));
}
