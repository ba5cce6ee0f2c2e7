import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { Ed25519PrivateKey, ed25519AuditSigner, hmacAuditSigner, parseAuditSigners, rsaAuditSigner, verifyAuditLog } from '@drover/protocol';
import { expectRejection } from '../../../../test/helpers/expect-error.js';
import { AuditLog } from './log.js';
import type { AuditSignerWithKey } from './log.js';
import { ManagerError } from '../errors.js';

let dir: string;
let path: string;
const key = Ed25519PrivateKey.generate();
const signer: AuditSignerWithKey = { signer: ed25519AuditSigner(key), publicKey: key.publicKey };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-audit-'));
  path = join(dir, 'audit', 'audit.jsonl');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function verify(): Promise<ReturnType<typeof verifyAuditLog>> {
  const signers = parseAuditSigners(await readFile(join(dir, 'audit', 'signers.json'), 'utf8'));
  return verifyAuditLog(await readFile(path), signers);
}

const entry = (i: number) => ({ event: 'test.event', actor: 'system', outcome: 'success', details: { i } });

describe('AuditLog', () => {
  it('writes a verifiable chain (mode 0600) with signers.json beside it, and continues it after reopening', async () => {
    const log = await AuditLog.open({ path, signer });
    await log.append(entry(1));
    await log.append(entry(2));
    await log.close();
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const reopened = await AuditLog.open({ path, signer });
    expect(reopened.head?.seq).toBe(2);
    await reopened.append(entry(3));
    await reopened.close();
    expect(await verify()).toMatchObject({ ok: true, count: 3, lastSeq: 3 });
  });

  it('writes a batch in chunks, all or none: on a full disk (/dev/full) nothing is written and the chain does not move', async () => {
    // A batch of long records spans several writes.
    const long = (i: number) => ({ ...entry(i), details: { i, text: 'x'.repeat(300_000) } });
    const log = await AuditLog.open({ path, signer });
    const batch = await log.appendMany([long(1), long(2), long(3), long(4), entry(5)]);
    expect(batch.written.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    await log.close();
    expect(await verify()).toMatchObject({ ok: true, count: 5 });

    // Linux's /dev/full answers every write ENOSPC (checked first: opening a missing one would create a file).
    expect((await stat('/dev/full')).isCharacterDevice()).toBe(true);
    const full = await AuditLog.open({ path: '/dev/full', signer, signersPath: join(dir, 'full-signers.json') });
    try {
      const failed = await full.appendMany([entry(1), entry(2)]);
      expect(failed.written).toEqual([]);
      expect((failed.error as NodeJS.ErrnoException).code).toBe('ENOSPC');
      expect(full.head).toBeUndefined();
    } finally {
      await full.close();
    }
  });

  it('reads its last records back for reconciliation, and calls a line that is not JSON corruption', async () => {
    const first = await AuditLog.open({ path, signer });
    await first.appendMany([entry(1), entry(2), entry(3)]);
    expect((await first.tail(2)).map((r) => r.details['i'])).toEqual([2, 3]);
    expect(await first.tail(10)).toHaveLength(3);
    await first.close();
    // The middle record becomes garbage of the same length; the last one stays intact, so the log opens.
    const lines = (await readFile(path, 'utf8')).split('\n');
    lines[1] = '#'.repeat(lines[1]?.length ?? 0);
    await writeFile(path, lines.join('\n'));
    const reopened = await AuditLog.open({ path, signer });
    expect(await reopened.tail(1)).toHaveLength(1);
    await expectRejection(reopened.tail(2), ManagerError, 'AUDIT_LOG_CORRUPT');
    await reopened.close();
  });

  it('keeps concurrent appends in order, each durable when it resolves', async () => {
    const heads: number[] = [];
    const log = await AuditLog.open({ path, signer, onHead: (head) => void heads.push(head.seq) });
    const records = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(entry(i))));
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    // Each resolved append is on disk: the file already holds every record.
    expect((await readFile(path, 'utf8')).trim().split('\n')).toHaveLength(50);
    expect(Math.max(...heads)).toBe(50);
    expect(heads).toEqual([...heads].sort((a, b) => a - b));
    await log.close();
    expect(await verify()).toMatchObject({ ok: true, count: 50 });
  });

  it('cuts a partial last line left by a crash and records that it did', async () => {
    const log = await AuditLog.open({ path, signer });
    await log.append(entry(1));
    await log.close();
    const partial = '{"seq":2,"ts":"2026-01-01T00:00:00.000Z","ev';
    await appendFile(path, partial);
    const repaired = await AuditLog.open({ path, signer });
    await repaired.append(entry(3));
    await repaired.close();
    const lines = (await readFile(path, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { seq: number; event: string; details: { bytes?: number } });
    expect(lines.map((r) => r.event)).toEqual(['test.event', 'audit.partial_line_removed', 'test.event']);
    expect(lines[1]?.details.bytes).toBe(partial.length);
    expect(await verify()).toMatchObject({ ok: true, count: 3 });
  });

  it('refuses to continue a log whose last record was edited, or whose tail was cut off', async () => {
    const log = await AuditLog.open({ path, signer });
    await log.append(entry(1));
    const second = await log.append(entry(2));
    await log.close();
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace('"i":2', '"i":7'));
    await expectRejection(AuditLog.open({ path, signer }), ManagerError, 'AUDIT_LOG_CORRUPT');
    // The first line alone is a valid log, but the manager had written seq 2.
    await writeFile(path, `${text.split('\n')[0] ?? ''}\n`);
    await expectRejection(AuditLog.open({ path, signer, expectedHead: { seq: second.seq, hash: second.hash } }), ManagerError, 'AUDIT_LOG_TRUNCATED');
  });

  it('keeps every old signer in signers.json when the audit key rotates', async () => {
    const first = await AuditLog.open({ path, signer });
    await first.append(entry(1));
    await first.close();
    const next = Ed25519PrivateKey.generate();
    const rotated = await AuditLog.open({ path, signer: { signer: ed25519AuditSigner(next), publicKey: next.publicKey } });
    await rotated.append(entry(2));
    await rotated.close();
    const signers = parseAuditSigners(await readFile(join(dir, 'audit', 'signers.json'), 'utf8'));
    expect([...signers.keys()].sort()).toEqual([key.keyid, next.keyid].sort());
    expect(await verify()).toMatchObject({ ok: true, count: 2 });
  });

  it('rotates to an rsa-sha256 key and then an hmac-sha256 key: signers.json lists all three kids, never the HMAC secret', async () => {
    const first = await AuditLog.open({ path, signer });
    await first.append(entry(1));
    await first.close();
    const rsa = rsaAuditSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'audit-rsa');
    const second = await AuditLog.open({ path, signer: { signer: rsa.signer, publicKey: rsa.key } });
    await second.append(entry(2));
    await second.close();
    const secret = new Uint8Array(32).fill(3);
    const hmac = hmacAuditSigner(secret, 'audit-hmac');
    const third = await AuditLog.open({ path, signer: { signer: hmac.signer, publicKey: hmac.key } });
    await third.append(entry(3));
    await third.close();
    const text = await readFile(join(dir, 'audit', 'signers.json'), 'utf8');
    expect(text).not.toContain(Buffer.from(secret).toString('base64'));
    expect([...parseAuditSigners(text)].map(([kid, listed]) => `${kid}:${listed.algorithm}`)).toEqual([`${key.keyid}:ed25519`, 'audit-rsa:rsa-sha256', 'audit-hmac:hmac-sha256']);
    // Reopened with the same HMAC kid: no second entry, no conflict (the secret is not compared, it is not there).
    await (await AuditLog.open({ path, signer: { signer: hmac.signer, publicKey: hmac.key } })).close();
    // A signer whose algorithm is not its key's is refused before anything is written.
    await expectRejection(AuditLog.open({ path, signer: { signer: rsa.signer, publicKey: key.publicKey } }), ManagerError, 'AUDIT_SIGNER_CONFIG_INVALID');
  });

  it('refuses appends after close', async () => {
    const log = await AuditLog.open({ path, signer });
    await log.close();
    await expectRejection(log.append(entry(1)), ManagerError, 'AUDIT_UNAVAILABLE');
  });
});
