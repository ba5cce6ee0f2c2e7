import { parseTrustPolicy } from '@drover/protocol';
import type { TrustPolicy } from '@drover/protocol';
import { DaemonError } from '../errors.js';
import { readJsonFile } from '../host/fs-atomic.js';

// trust.json: the release-signing keys this host trusts and how many must sign (k of n). It is the
// root of trust for every release; the manager never delivers it. Read afresh for each update, so
// an operator's key rotation applies without a restart.

/** Loads and checks trust.json, or throws TRUST_POLICY_MISSING / TRUST_POLICY_INVALID. */
export async function loadTrustPolicy(path: string): Promise<TrustPolicy> {
  let value: unknown;
  try {
    value = await readJsonFile(path, 1024 * 1024);
  } catch (error) {
    throw new DaemonError('TRUST_POLICY_MISSING', `${path} cannot be read as JSON. Install the trust policy (drover trust create) there.`, { cause: error });
  }
  if (value === undefined) {
    throw new DaemonError('TRUST_POLICY_MISSING', `There is no trust policy at ${path}, so no release can be verified. Install one (drover trust create --pub KEY.pub --out ${path}).`);
  }
  return parseTrustPolicy(value);
}
