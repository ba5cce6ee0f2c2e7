import { rm } from 'node:fs/promises';
import { readJsonFile, writeJsonAtomic } from '../host/fs-atomic.js';

// daemon-boots.json: the launcher's count of boots of an uncommitted daemon update. The launcher
// increments it before each boot of the new daemon and, once it reaches the limit, points
// current/daemon back at the old one and sets `rolledBack`, which the old daemon reads to report
// the failure. The new daemon removes the file when it commits.

export interface BootRecord {
  schema: 'drover.daemon-boots/v1';
  commandId: string;
  fromVersion: string;
  toVersion: string;
  boots: number;
  rolledBack: boolean;
}

export async function readBootRecord(path: string): Promise<BootRecord | undefined> {
  let value: unknown;
  try {
    value = await readJsonFile(path, 4096);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Partial<BootRecord>;
  if (r.schema !== 'drover.daemon-boots/v1' || typeof r.commandId !== 'string' || typeof r.boots !== 'number') return undefined;
  return r as BootRecord;
}

export async function writeBootRecord(path: string, record: BootRecord): Promise<void> {
  await writeJsonAtomic(path, record, { mode: 0o600 });
}

export async function clearBootRecord(path: string): Promise<void> {
  await rm(path, { force: true });
}
