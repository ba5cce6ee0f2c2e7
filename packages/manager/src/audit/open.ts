import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { readFileChunks } from '@drover/protocol/internal';
import type { AuditChainHead, HmacAuditKey } from '@drover/protocol';
import type { Logger } from 'pino';
import type { AuditChainLine } from '../store/records.js';
import type { Store } from '../store/store.js';
import { AuditLog, writeSigners } from './log.js';
import type { AuditSignerWithKey } from './log.js';
import { AUDIT_HEAD_META_KEY, AuditTrail } from './trail.js';

// Where a manager's audit chain lives (decision 0038):
// - the embedded store (SQLite, one manager): a log file in the manager's directory;
// - a store several managers share (PostgreSQL): the store itself, so every replica appends to one
//   chain. A manager that kept its chain in a file on such a store so far (before decision 0038, or
//   moved there by `drover manager migrate-store`) has that file copied into the store's empty
//   chain at start, once; the file is left in place as it was.
// signers.json is written beside the log path in both cases.

/** How to open the audit trail of a manager. */
export interface OpenAuditTrailOptions {
  store: Store;
  logPath: string;
  signersPath?: string | undefined;
  signer: AuditSignerWithKey;
  /** The head the store kept (meta `audit.head`). */
  storedHead: AuditChainHead | undefined;
  logger: Logger;
  now: () => Date;
}

// The lines of a log file with their seq, as written (each line's seq is its own record's).
async function* fileLines(path: string): AsyncGenerator<AuditChainLine> {
  let pending = '';
  // Streaming: a character cut between two chunks is decoded whole.
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for await (const chunk of readFileChunks(path)) {
    const text = pending + decoder.decode(chunk, { stream: true });
    const lines = text.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line !== '') yield { seq: (JSON.parse(line) as { seq: number }).seq, line };
  }
  if (pending !== '') yield { seq: (JSON.parse(pending) as { seq: number }).seq, line: pending };
}

/** Opens the manager's audit trail, in a file or in the store as the store allows. */
export async function openAuditTrail(options: OpenAuditTrailOptions): Promise<AuditTrail> {
  const { store, logPath, signer, storedHead, logger, now } = options;
  const signersPath = options.signersPath ?? join(dirname(logPath), 'signers.json');
  // A local hmac-sha256 key's secret is here: GET /manager/v1/audit/verify checks its records with it.
  // A key in a KMS or a token keeps its secret, and its records stay MAC_KEY_MISSING there.
  const key = signer.publicKey;
  const macKeys = new Map<string, HmacAuditKey>('algorithm' in key && key.algorithm === 'hmac-sha256' && key.secret !== undefined ? [[signer.signer.kid, key]] : []);
  const fileTrail = async (): Promise<AuditTrail> => {
    const log = await AuditLog.open({ path: logPath, signersPath, signer, expectedHead: storedHead, logger, now });
    try {
      return await AuditTrail.open({ store, chain: { log }, signersPath, macKeys, logger, now }, storedHead);
    } catch (error) {
      await log.close();
      throw error;
    }
  };
  if (store.chainAuditOutbox === undefined || store.readAuditChain === undefined || store.importAuditChain === undefined) return fileTrail();
  const [last] = await store.readAuditChain(0, 1, { latest: true });
  if (last === undefined && existsSync(logPath)) {
    // The file's chain first takes in what waits in the outbox (as it always did), then moves
    // into the store whole; the store's chain continues it.
    const trail = await fileTrail();
    const head = trail.log?.head;
    await trail.close();
    if (head !== undefined) {
      const imported = await store.importAuditChain(fileLines(logPath), AUDIT_HEAD_META_KEY, JSON.stringify(head));
      if (imported) logger.info({ event: 'audit.chain_imported', records: head.seq, file: logPath }, 'the audit log file now continues in the database, one chain for every replica; the file is left as it was');
      else logger.warn({ event: 'audit.chain_import_skipped', file: logPath }, 'another replica started the audit chain in the database first: this file was not copied into it');
    }
  }
  await mkdir(dirname(signersPath), { recursive: true, mode: 0o700 });
  await writeSigners(signersPath, signer);
  return AuditTrail.open({ store, chain: { signer: signer.signer }, signersPath, macKeys, logger, now }, undefined);
}
