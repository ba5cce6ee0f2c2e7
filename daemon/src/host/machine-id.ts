import * as nodeMachineId from 'node-machine-id';
import { DaemonError } from '../errors.js';

// The machine id binds a host's credential and every update nonce to this machine: the manager
// refuses a check-in from another machine id (a copied credentials.json), and the daemon refuses a
// nonce issued for another machine. It is sent hashed (SHA-256, lowercase hex), never raw.

type MachineIdModule = typeof nodeMachineId;

// node-machine-id is CommonJS without named-export hints: under Node's ESM loader its functions
// hang off `default`; under a bundler they may be on the namespace itself.
const machineIdModule: MachineIdModule = (nodeMachineId as MachineIdModule & { default?: MachineIdModule }).default ?? nodeMachineId;

const HASHED = /^[0-9a-f]{64}$/;

/** Reads this host's hashed machine id. */
export type MachineIdSource = () => Promise<string>;

/** node-machine-id's hashed id (SHA-256 of /etc/machine-id or /var/lib/dbus/machine-id). */
export const systemMachineId: MachineIdSource = async () => machineIdModule.machineId(false);

/**
 * The host's machine id: `override` (droverd.json `machineId`, for images that share
 * /etc/machine-id) when set, else `source` (node-machine-id). Always 64 lowercase hex.
 */
export async function resolveMachineId(override: string | undefined, source: MachineIdSource = systemMachineId): Promise<string> {
  if (override !== undefined) return override;
  let id: string;
  try {
    id = (await source()).trim().toLowerCase();
  } catch (error) {
    throw new DaemonError('IO_ERROR', 'Cannot read this host\'s machine id (/etc/machine-id). Create it (systemd-machine-id-setup) or set "machineId" in droverd.json.', { cause: error });
  }
  if (!HASHED.test(id)) {
    throw new DaemonError('IO_ERROR', 'This host\'s machine id could not be read as a SHA-256. Create /etc/machine-id (systemd-machine-id-setup) or set "machineId" in droverd.json.');
  }
  return id;
}
