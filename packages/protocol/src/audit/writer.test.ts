import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { expectError, expectRejection } from '../../../../test/helpers/expect-error.js';
import { clock, entry, key, line, makeLog, otherKey, parse, signers } from '../../test/audit-log.js';
import { canonicalize } from '../canonical-json.js';
import { AuditError, CryptoError } from '../errors.js';
import { AUDIT_GENESIS_HASH, AUDIT_LINE_MAX_LENGTH } from './record.js';
import type { AuditRecord } from './record.js';
import { ed25519AuditSigner } from './signers.js';
import type { AuditSigner } from './signers.js';
import { verifyAuditLog } from './verifier.js';
import { AuditChain } from './writer.js';
import type { AuditEntry } from './writer.js';

describe('AuditChain', () => {
  it('links, hashes and signs records as the design says', async () => {
    const chain = new AuditChain(ed25519AuditSigner(key), { now: clock() });
    const first = await chain.append(entry(1));
    const second = await chain.append({ event: 'agent.enrolled', actor: 'operator:alice', outcome: 'success', details: { at: new Date(0) } });

    expect(first.record.seq).toBe(1);
    expect(first.record.prev).toBe(AUDIT_GENESIS_HASH);
    expect(second.record.seq).toBe(2);
    expect(second.record.prev).toBe(first.record.hash);
    expect(first.record.kid).toBe(key.keyid);
    expect(first.record.alg).toBe('ed25519');

    // Recompute the hash independently: SHA-256(canonical body || 32 zero bytes).
    const { prev, hash, ...withSignature } = first.record;
    const body = Object.fromEntries(Object.entries(withSignature).filter(([name]) => name !== 'alg' && name !== 'kid' && name !== 'sig'));
    const expectedHash = createHash('sha256').update(canonicalize(body), 'utf8').update(Buffer.alloc(32)).digest();
    expect(hash).toBe(expectedHash.toString('hex'));
    expect(prev).toBe('0'.repeat(64));
    // The signature is Ed25519 over the 32 raw hash bytes, checked with the other implementation.
    expect(nacl.sign.detached.verify(expectedHash, Buffer.from(first.record.sig, 'base64'), key.publicKey.raw)).toBe(true);

    const body2 = { ...second.record } as Partial<AuditRecord>;
    delete body2.prev;
    delete body2.hash;
    delete body2.alg;
    delete body2.kid;
    delete body2.sig;
    const expectedHash2 = createHash('sha256').update(canonicalize(body2), 'utf8').update(Buffer.from(first.record.hash, 'hex')).digest();
    expect(second.record.hash).toBe(expectedHash2.toString('hex'));
    expect(second.record.details).toStrictEqual({ at: '1970-01-01T00:00:00.000Z' });
  });

  it('returns the canonical line, newline-terminated, that parses back to the record', async () => {
    const chain = new AuditChain(ed25519AuditSigner(key), { now: clock() });
    const { record, line: text } = await chain.append({ event: 'e', actor: 'a', outcome: 'success', agentId: undefined, details: { b: 1, a: undefined } });
    expect(text.endsWith('\n')).toBe(true);
    expect(text.slice(0, -1)).toBe(canonicalize(record));
    expect(JSON.parse(text)).toStrictEqual(record);
    expect('agentId' in record).toBe(false);
    expect(record.details).toStrictEqual({ b: 1 });
    expect(record.ts).toBe('2025-01-01T00:00:01.000Z');
  });

  it('serialises concurrent appends in call order', async () => {
    let resolveSlow: (() => void) | undefined;
    let calls = 0;
    // The first signature is slow, so a chain that did not queue would interleave records.
    const signer: AuditSigner = {
      kid: key.keyid,
      sign: async (bytes) => {
        calls += 1;
        if (calls === 1) await new Promise<void>((resolve) => (resolveSlow = resolve));
        return key.sign(bytes);
      },
    };
    const chain = new AuditChain(signer, { now: clock() });
    const pending = Array.from({ length: 10 }, (_, i) => chain.append(entry(i + 1)));
    while (resolveSlow === undefined) await new Promise(setImmediate); // the first signature started: all ten appends ran up to the chain
    resolveSlow();
    const results = await Promise.all(pending);
    expect(results.map((r) => r.record.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(results.map((r) => r.record.tokenId)).toEqual(results.map((_, i) => `tok${i + 1}`));
    expect(verifyAuditLog(results.map((r) => r.line).join(''), signers)).toMatchObject({ ok: true, count: 10 });
  });

  it('does not advance when the signer fails, and refuses a signature of the wrong size', async () => {
    let fail = true;
    const signer: AuditSigner = {
      kid: key.keyid,
      sign: (bytes) => {
        if (fail) throw new Error('KMS unavailable');
        return key.sign(bytes);
      },
    };
    const chain = new AuditChain(signer, { now: clock() });
    await expect(chain.append(entry(1))).rejects.toThrow('KMS unavailable');
    expect(chain.nextSeq).toBe(1);
    fail = false;
    const ok = await chain.append(entry(1));
    expect(ok.record.seq).toBe(1);
    expect(verifyAuditLog(ok.line, signers)).toMatchObject({ ok: true, count: 1 });

    const short = new AuditChain({ kid: 'kms-key', sign: () => new Uint8Array(63) });
    await expectRejection(short.append(entry(1)), CryptoError, 'SIGNATURE_MALFORMED');
    expect(short.nextSeq).toBe(1);
  });

  it('persists lines in seq order and does not advance when persisting fails', async () => {
    const chain = new AuditChain(ed25519AuditSigner(key), { now: clock() });
    const file: string[] = [];
    let failNext = false;
    const persist = async ({ line: text }: { line: string }): Promise<void> => {
      // Random delays: without the chain's serialisation, writes would land out of order.
      for (let turns = Math.floor(Math.random() * 4); turns > 0; turns--) await new Promise(setImmediate);
      if (failNext) {
        failNext = false;
        throw new Error('ENOSPC');
      }
      file.push(text);
    };
    const first = Array.from({ length: 5 }, (_, i) => chain.append(entry(i + 1), persist));
    await Promise.all(first);
    failNext = true;
    await expect(chain.append(entry(6), persist)).rejects.toThrow('ENOSPC');
    expect(chain.nextSeq).toBe(6);
    await chain.append(entry(7), persist);
    expect(file.map((text) => parse(text).seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(verifyAuditLog(file.join(''), signers)).toMatchObject({ ok: true, count: 6 });
  });

  it('appends a batch in one persist call, stops at an entry it cannot take, and stays put when persisting fails', async () => {
    const chain = new AuditChain(ed25519AuditSigner(key), { now: clock() });
    const writes: string[] = [];
    let fail = false;
    const persist = (appended: readonly { line: string }[]): void => {
      if (fail) throw new Error('ENOSPC');
      writes.push(appended.map((a) => a.line).join(''));
    };
    // A batch and a single append share one chain, in call order.
    const [batch, single] = await Promise.all([
      chain.appendMany([entry(1), entry(2), entry(3)], persist),
      chain.append(entry(4), (a) => {
        persist([a]);
      }),
    ]);
    expect(batch.appended.map((a) => a.record.seq)).toEqual([1, 2, 3]);
    expect(batch.error).toBeUndefined();
    expect(single.record.seq).toBe(4);
    expect(writes).toHaveLength(2);

    const bad = await chain.appendMany([entry(5), { ...entry(6), event: '' }, entry(7)], persist);
    expect(bad.appended.map((a) => a.record.seq)).toEqual([5]);
    expectError(() => {
      throw bad.error;
    }, AuditError, 'AUDIT_RECORD_MALFORMED');
    expect(chain.nextSeq).toBe(6);

    fail = true;
    await expect(chain.appendMany([entry(6), entry(7)], persist)).rejects.toThrow('ENOSPC');
    expect(chain.nextSeq).toBe(6);
    fail = false;
    const after = await chain.appendMany([entry(6)], persist);
    expect(after.appended[0]?.record.prev).toBe(bad.appended[0]?.record.hash);
    expect(verifyAuditLog(writes.join(''), signers)).toMatchObject({ ok: true, count: 6 });
    // Nothing to append: nothing persisted.
    expect((await chain.appendMany([], persist)).appended).toEqual([]);
    expect(writes).toHaveLength(4);
  });

  it('refuses malformed entries and details outside JSON', async () => {
    const chain = new AuditChain(ed25519AuditSigner(key));
    const cases: [unknown, string][] = [
      [{ event: '', actor: 'a', outcome: 'success' }, 'AUDIT_RECORD_MALFORMED'],
      [{ event: 'e', actor: 'a' }, 'AUDIT_RECORD_MALFORMED'],
      [{ event: 'e', actor: 'a', outcome: 'ok', agentId: 5 }, 'AUDIT_RECORD_MALFORMED'],
      [{ event: 'e', actor: 'a', outcome: 'ok', details: [1] }, 'AUDIT_RECORD_MALFORMED'],
      [{ event: 'e', actor: 'a', outcome: 'ok', details: { n: 1n } }, 'CANONICAL_JSON_UNSUPPORTED'],
      [{ event: 'e', actor: 'a', outcome: 'ok', details: { n: NaN } }, 'CANONICAL_JSON_UNSUPPORTED'],
      [{ event: 'e', actor: 'a', outcome: 'ok', details: { big: 'x'.repeat(AUDIT_LINE_MAX_LENGTH) } }, 'AUDIT_RECORD_MALFORMED'],
      [{ event: 'e', actor: 'a', outcome: 'ok', ts: '2026-12-05T10:00:00Z' }, 'AUDIT_RECORD_MALFORMED'],
      [{ event: 'e', actor: 'a', outcome: 'ok', ts: '2026-02-30T10:00:00.000Z' }, 'AUDIT_RECORD_MALFORMED'],
      [{ event: 'e', actor: 'a', outcome: 'ok', ts: 17 }, 'AUDIT_RECORD_MALFORMED'],
    ];
    for (const [bad, code] of cases) await expectRejection(chain.append(bad as AuditEntry), AuditError, code);
    expect(chain.nextSeq).toBe(1);
    expectError(() => new AuditChain({ kid: 'has space', sign: () => new Uint8Array(64) }), AuditError, 'AUDIT_SIGNERS_INVALID');
  });

  it("stamps an entry's own ts (an outbox's time of the change) instead of the clock's", async () => {
    const chain = new AuditChain(ed25519AuditSigner(key), { now: clock() });
    const ts = '2026-12-05T10:00:00.123Z';
    const { record } = await chain.append({ ...entry(1), ts });
    expect(record.ts).toBe(ts);
    expect((await chain.append(entry(2))).record.ts).not.toBe(ts);
  });

  it('an async (KMS-style) signer with its own kid produces a log that verifies with that kid', async () => {
    const kms: AuditSigner = { kid: 'arn:aws:kms:eu-west-1:111122223333:key/audit', sign: (bytes) => Promise.resolve(otherKey.sign(bytes)) };
    const lines = await makeLog(3, kms);
    expect(verifyAuditLog(lines.join(''), new Map([[kms.kid, otherKey.publicKey]]))).toMatchObject({ ok: true, count: 3 });
    expect(verifyAuditLog(lines.join(''), signers)).toMatchObject({ ok: false, seq: 1, reason: 'UNKNOWN_SIGNER' });
  });
});

describe('AuditChain.resume', () => {
  it('continues a log after a restart, from its last line or last record', async () => {
    const lines = await makeLog(3);
    const fromLine = AuditChain.resume(lines[2], ed25519AuditSigner(key), { now: clock(Date.UTC(2025, 1, 1)) });
    expect(fromLine.nextSeq).toBe(4);
    expect(fromLine.head).toStrictEqual({ seq: 3, hash: parse(lines[2] ?? '').hash });
    const more = [(await fromLine.append(entry(4))).line, (await fromLine.append(entry(5))).line];
    expect(verifyAuditLog([...lines, ...more].join(''), signers)).toMatchObject({ ok: true, count: 5 });

    const fromRecord = AuditChain.resume(parse(lines[2] ?? ''), ed25519AuditSigner(key));
    expect(fromRecord.nextSeq).toBe(4);
  });

  it('starts a new log from nothing', () => {
    expect(AuditChain.resume(undefined, ed25519AuditSigner(key)).nextSeq).toBe(1);
    expect(AuditChain.resume('', ed25519AuditSigner(key)).head).toBeUndefined();
  });

  it('refuses a partial, modified or malformed last line', async () => {
    const [last = ''] = await makeLog(1);
    const signer = ed25519AuditSigner(key);
    expectError(() => AuditChain.resume(last.slice(0, 40), signer), AuditError, 'AUDIT_RECORD_MALFORMED');
    expectError(() => AuditChain.resume(line({ ...parse(last), outcome: 'failure' }), signer), AuditError, 'AUDIT_RECORD_MALFORMED');
    expectError(() => AuditChain.resume('[1,2]', signer), AuditError, 'AUDIT_RECORD_MALFORMED');
    expectError(() => AuditChain.resume(`${last}${last}`, signer), AuditError, 'AUDIT_RECORD_MALFORMED');
    expectError(() => AuditChain.resume(line({ ...parse(last), seq: 0 }), signer), AuditError, 'AUDIT_RECORD_MALFORMED');
  });
});
