import { limits } from '../config.js';
import { DaemonError } from '../errors.js';
import type { DaemonPaths } from '../host/paths.js';
import { ReleaseStore } from '../releases/store.js';
import { readJournal } from '../update/journal.js';
import { clearBootRecord, readBootRecord, writeBootRecord } from './boot-counter.js';
import type { BootRecord } from './boot-counter.js';

// The launcher: what systemd starts. It is installed once (install.sh) and never updated by
// droverd, so a broken droverd release can never break the way back. Before each boot it looks
// at the journal: while a daemon self-update awaits its commit (swapped, starting, health_check)
// and current/daemon is the new version, it counts the boot; once the new droverd has failed to
// boot `daemonMaxFailedBoots` times it points current/daemon back at the previous version. Then it
// imports current/daemon's bundle.

const AWAITING_COMMIT = new Set(['swapped', 'starting', 'health_check']);

export interface BootDecision {
  /** The bundle to import. */
  entry: string;
  version: string;
  /** Set when this boot counted against an uncommitted self-update. */
  counted?: BootRecord;
  /** Set when the launcher went back to the previous droverd on this boot. */
  rolledBack?: { from: string; to: string };
}

/** Decides which droverd to boot, counting and rolling back as above. */
export async function prepareBoot(paths: DaemonPaths, maxFailedBoots: number = limits.daemonMaxFailedBoots): Promise<BootDecision> {
  const store = new ReleaseStore(paths);
  const journal = await readJournal(paths.journal).catch(() => undefined);
  const update = journal?.update ?? null;
  let counted: BootRecord | undefined;
  let rolledBack: BootDecision['rolledBack'];
  if (update !== null && update.artifact === 'daemon' && AWAITING_COMMIT.has(update.step) && update.verified !== undefined && update.fromVersion !== null) {
    const target = update.verified.manifest.version;
    const current = await store.currentVersion('daemon');
    if (current === target) {
      const existing = await readBootRecord(paths.daemonBoots);
      let record: BootRecord =
        existing?.commandId === update.commandId
          ? existing
          : { schema: 'drover.daemon-boots/v1', commandId: update.commandId, fromVersion: update.fromVersion, toVersion: target, boots: 0, rolledBack: false };
      if (record.boots >= maxFailedBoots) {
        // The new droverd never committed: go back to the one that ran before, and say so.
        await store.pointCurrent('daemon', update.fromVersion);
        record = { ...record, rolledBack: true };
        rolledBack = { from: target, to: update.fromVersion };
      } else {
        record = { ...record, boots: record.boots + 1 };
      }
      await writeBootRecord(paths.daemonBoots, record);
      counted = record;
    }
  } else if (update === null) {
    // Nothing awaits a commit: a record left behind (a crash after the commit) is stale.
    await clearBootRecord(paths.daemonBoots);
  }
  const release = await store.current('daemon');
  if (release === undefined) {
    throw new DaemonError('AGENT_NOT_INSTALLED', `No droverd release is installed (${paths.current}/daemon). Install droverd with systemd/install.sh.`);
  }
  return { entry: release.entry, version: release.version, ...(counted === undefined ? {} : { counted }), ...(rolledBack === undefined ? {} : { rolledBack }) };
}
