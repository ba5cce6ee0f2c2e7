import { isBelow, verifyNonce, verifyRelease } from '@drover/protocol';
import type { NoncePayload, ReleasePayload } from '@drover/protocol';
import { DaemonError } from '../errors.js';
import { managerPublicKeys } from '../manager-link/credentials.js';
import type { Credentials } from '../manager-link/credentials.js';
import { checkNames } from '../releases/store.js';
import { loadTrustPolicy } from '../releases/trust.js';
import { NO_VERSION } from '../version.js';
import { checkDeadline } from './deadlines.js';
import { sameVersion } from './health-gate.js';
import type { UpdateRecord } from './journal.js';

// The update's first step (received -> command_verified): everything an update command claims is
// checked here, and nothing in it is acted on before this passes. Each check names the threat it
// stops. A refusal throws; the machine reports it as `rejected`.

export interface CommandVerification {
  credentials: Credentials;
  machineId: string;
  /** trust.json, read afresh for each command. */
  trustPath: string;
  platform: string;
  daemonVersion: string;
  /** True when droverd was started by the launcher, which alone can undo a bad self-update. */
  underLauncher: boolean;
  /** True when the journal holds this nonce id already. */
  isNonceUsed: (nonceId: string) => boolean;
}

/** The command's nonce and signed release, once both verified for this host and its running version. */
export async function verifyUpdateCommand(update: UpdateRecord, o: CommandVerification): Promise<{ nonce: NoncePayload; manifest: ReleasePayload }> {
  const { command, artifact } = update;
  if (artifact === 'daemon' && !o.underLauncher) {
    throw new DaemonError('COMMAND_UNSUPPORTED', 'This droverd was not started by the launcher, so it cannot update itself safely. Install it with systemd/install.sh.');
  }
  // deadline: a command the manager already gave up on is not started.
  checkDeadline(update);
  const running = update.fromVersion ?? NO_VERSION;
  // stolen command, replay, downgrade: the nonce is the manager's signed, single-use permission
  // for THIS agent on THIS machine to move from the running version.
  const nonce = verifyNonce(command.nonce, {
    managerKeys: managerPublicKeys(o.credentials),
    agentId: o.credentials.agentId,
    machineId: o.machineId,
    runningVersion: running,
    artifact,
    isUsed: o.isNonceUsed,
  });
  // arbitrary installation, key compromise, mix-and-match, freeze, rollback: the release must be
  // signed by enough keys of trust.json, for this artifact and platform, unexpired, and above
  // the running version unless the nonce is a signed rollback.
  const trust = await loadTrustPolicy(o.trustPath);
  const manifest = verifyRelease(command.release, trust, {
    artifact,
    platform: o.platform,
    runningVersion: update.fromVersion ?? undefined,
    rollback: nonce.rollback,
  });
  // mix-and-match: the nonce authorises exactly this release, not another signed one.
  if (!sameVersion(nonce.toVersion, manifest.version)) {
    throw new DaemonError('COMMAND_MISMATCH', `The nonce authorises version ${nonce.toVersion}, but the command's release is ${manifest.version}. The command is refused.`);
  }
  if (artifact === 'agent' && manifest.minDaemonVersion !== undefined && isBelow(o.daemonVersion, manifest.minDaemonVersion)) {
    throw new DaemonError('DAEMON_TOO_OLD', `The release needs droverd ${manifest.minDaemonVersion} or later; this is ${o.daemonVersion}. Update droverd first.`);
  }
  // path traversal: the signed version and file name become a directory and a file under releases/.
  checkNames(manifest.version, manifest.file.name);
  return { nonce, manifest };
}
