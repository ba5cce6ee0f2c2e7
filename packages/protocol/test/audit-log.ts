// Audit logs for the tests of packages/protocol/src/audit/: keys, a clock, entries and whole logs
// written by the real AuditChain, and helpers to read and edit their lines.
import { canonicalize } from '../src/canonical-json.js';
import { Ed25519PrivateKey } from '../src/ed25519.js';
import type { AuditRecord } from '../src/audit/record.js';
import { ed25519AuditSigner } from '../src/audit/signers.js';
import type { AuditSigner, AuditSignerKeys } from '../src/audit/signers.js';
import { AuditChain } from '../src/audit/writer.js';
import type { AuditEntry } from '../src/audit/writer.js';

export const key = new Ed25519PrivateKey(new Uint8Array(32).fill(7));
export const otherKey = new Ed25519PrivateKey(new Uint8Array(32).fill(9));
export const signers: AuditSignerKeys = new Map([[key.keyid, key.publicKey]]);

export function clock(start = Date.UTC(2025, 0, 1)): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

export function entry(i: number): AuditEntry {
  return { event: 'token.used', actor: 'system', outcome: 'success', tokenId: `tok${i}`, agentId: `agent-${i % 3}`, details: { i, note: `record ${i}` } };
}

export async function makeLog(count: number, signer: AuditSigner = ed25519AuditSigner(key)): Promise<string[]> {
  const chain = new AuditChain(signer, { now: clock() });
  const lines: string[] = [];
  for (let i = 1; i <= count; i += 1) lines.push((await chain.append(entry(i))).line);
  return lines;
}

export function parse(line: string): AuditRecord {
  return JSON.parse(line) as AuditRecord;
}

export function line(record: object): string {
  return `${canonicalize(record)}\n`;
}
