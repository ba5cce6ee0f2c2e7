import { createHash } from 'node:crypto';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { expectError, expectRejection } from '../../../test/helpers/expect-error.js';
import {
  AUDIT_GENESIS_HASH,
  AUDIT_LINE_MAX_LENGTH,
  AuditChain,
  AuditLogVerifier,
  auditRecordHash,
  buildAuditSigners,
  ed25519AuditSigner,
  parseAuditSigners,
  verifyAuditLog,
  verifyAuditLogLines,
} from './audit-chain.js';
import type { AuditEntry, AuditRecord, AuditSigner, AuditSignerKeys, AuditVerification } from './audit-chain.js';
import { canonicalize } from './canonical-json.js';
import { Ed25519PrivateKey } from './ed25519.js';
import { AuditError, CryptoError } from './errors.js';

const key = new Ed25519PrivateKey(new Uint8Array(32).fill(7));
const otherKey = new Ed25519PrivateKey(new Uint8Array(32).fill(9));
const signers: AuditSignerKeys = new Map([[key.keyid, key.publicKey]]);

function clock(start = Date.UTC(2025, 0, 1)): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

function entry(i: number): AuditEntry {
  return { event: 'token.used', actor: 'system', outcome: 'success', tokenId: `tok${i}`, agentId: `agent-${i % 3}`, details: { i, note: `record ${i}` } };
}

async function makeLog(count: number, signer: AuditSigner = ed25519AuditSigner(key)): Promise<string[]> {
  const chain = new AuditChain(signer, { now: clock() });
  const lines: string[] = [];
  for (let i = 1; i <= count; i += 1) lines.push((await chain.append(entry(i))).line);
  return lines;
}

function parse(line: string): AuditRecord {
  return JSON.parse(line) as AuditRecord;
}

function line(record: object): string {
  return `${canonicalize(record)}\n`;
}

/** Re-hashes (but cannot re-sign) a record after a change, as an attacker without the key would. */
function rehash(record: AuditRecord): AuditRecord {
  return { ...record, hash: Buffer.from(auditRecordHash(record)).toString('hex') };
}

/** Runs both verifiers (whole text, and line by line) and checks they agree. */
async function verifyBoth(text: string, keys: AuditSignerKeys = signers): Promise<AuditVerification> {
  const whole = verifyAuditLog(text, keys);
  const terminated = text === '' || text.endsWith('\n');
  const lines = text === '' ? [] : (terminated ? text.slice(0, -1) : text).split('\n');
  const streamed = await verifyAuditLogLines(
    (async function* () {
      for (const text of lines) yield await Promise.resolve(text);
    })(),
    keys,
    { finalLineTerminated: terminated },
  );
  expect(streamed).toStrictEqual(whole);
  // The same as bytes, whole and line by line.
  const bytes = Buffer.from(text, 'utf8');
  expect(verifyAuditLog(bytes, keys)).toStrictEqual(whole);
  const byteLines = lines.map((text) => Buffer.from(text, 'utf8'));
  expect(await verifyAuditLogLines(byteLines, keys, { finalLineTerminated: terminated })).toStrictEqual(whole);
  return whole;
}

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

    // Recompute the hash independently: SHA-256(canonical body || 32 zero bytes).
    const { prev, hash, ...withSignature } = first.record;
    const body = Object.fromEntries(Object.entries(withSignature).filter(([name]) => name !== 'kid' && name !== 'sig'));
    const expectedHash = createHash('sha256').update(canonicalize(body), 'utf8').update(Buffer.alloc(32)).digest();
    expect(hash).toBe(expectedHash.toString('hex'));
    expect(prev).toBe('0'.repeat(64));
    // The signature is Ed25519 over the 32 raw hash bytes, checked with the other implementation.
    expect(nacl.sign.detached.verify(expectedHash, Buffer.from(first.record.sig, 'base64'), key.publicKey.raw)).toBe(true);

    const body2 = { ...second.record } as Partial<AuditRecord>;
    delete body2.prev;
    delete body2.hash;
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
    ];
    for (const [bad, code] of cases) await expectRejection(chain.append(bad as AuditEntry), AuditError, code);
    expect(chain.nextSeq).toBe(1);
    expectError(() => new AuditChain({ kid: 'has space', sign: () => new Uint8Array(64) }), AuditError, 'AUDIT_SIGNERS_INVALID');
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

describe('verifyAuditLog', () => {
  it('verifies an intact log and reports its head', async () => {
    const lines = await makeLog(5);
    const result = await verifyBoth(lines.join(''));
    expect(result).toStrictEqual({ ok: true, count: 5, lastSeq: 5, lastHash: parse(lines[4] ?? '').hash });
  });

  it('refuses an empty log unless told a new log is expected', async () => {
    expect(await verifyBoth('')).toMatchObject({ ok: false, count: 0, seq: 1, line: 1, reason: 'EMPTY' });
    expect(verifyAuditLog('', signers, { allowEmpty: true })).toStrictEqual({ ok: true, count: 0, lastSeq: 0, lastHash: AUDIT_GENESIS_HASH });
  });

  it('reports a modified record at its seq (HASH_MISMATCH)', async () => {
    const lines = await makeLog(6);
    lines[3] = line({ ...parse(lines[3] ?? ''), details: { i: 4, note: 'nothing to see' } });
    expect(await verifyBoth(lines.join(''))).toMatchObject({ ok: false, count: 3, seq: 4, line: 4, reason: 'HASH_MISMATCH' });
  });

  it('reports a modified and re-hashed record at its seq (SIGNATURE_INVALID)', async () => {
    const lines = await makeLog(6);
    lines[2] = line(rehash({ ...parse(lines[2] ?? ''), outcome: 'failure' }));
    expect(await verifyBoth(lines.join(''))).toMatchObject({ ok: false, count: 2, seq: 3, line: 3, reason: 'SIGNATURE_INVALID' });
  });

  it('reports a record whose link was changed (PREV_MISMATCH)', async () => {
    const lines = await makeLog(4);
    lines[1] = line({ ...parse(lines[1] ?? ''), prev: 'ab'.repeat(32) });
    expect(await verifyBoth(lines.join(''))).toMatchObject({ ok: false, count: 1, seq: 2, reason: 'PREV_MISMATCH' });
    const first = await makeLog(1);
    const notGenesis = line(rehash({ ...parse(first[0] ?? ''), prev: 'cd'.repeat(32) }));
    expect(await verifyBoth(notGenesis)).toMatchObject({ ok: false, count: 0, seq: 1, reason: 'PREV_MISMATCH' });
  });

  it('reports a deleted record at the seq after the gap', async () => {
    const lines = await makeLog(6);
    lines.splice(2, 1); // delete seq 3
    expect(await verifyBoth(lines.join(''))).toMatchObject({ ok: false, count: 2, seq: 4, line: 3, reason: 'SEQ_OUT_OF_ORDER' });
    const headless = (await makeLog(3)).slice(1);
    expect(await verifyBoth(headless.join(''))).toMatchObject({ ok: false, count: 0, seq: 2, line: 1, reason: 'SEQ_OUT_OF_ORDER' });
  });

  it('reports a deleted record whose successors were renumbered', async () => {
    const lines = await makeLog(5);
    const renumbered = [lines[0], lines[1], ...lines.slice(3).map((text) => line(rehash({ ...parse(text), seq: parse(text).seq - 1 })))];
    expect(await verifyBoth(renumbered.join(''))).toMatchObject({ ok: false, count: 2, seq: 3, line: 3, reason: 'PREV_MISMATCH' });
  });

  it('reports an inserted forgery at its seq: unknown key, or a trusted kid with a bad signature', async () => {
    const lines = await makeLog(5);
    const previous = parse(lines[1] ?? '');
    // The attacker claims seq 3 and links correctly to record 2, but has no trusted key.
    const forged = await new AuditChain(ed25519AuditSigner(otherKey), { head: { seq: 2, hash: previous.hash } }).append(entry(99));
    const withForgery = [...lines.slice(0, 2), forged.line, ...lines.slice(2)];
    expect(await verifyBoth(withForgery.join(''))).toMatchObject({ ok: false, count: 2, seq: 3, line: 3, reason: 'UNKNOWN_SIGNER' });

    const spoofedKid = [...lines.slice(0, 2), line({ ...forged.record, kid: key.keyid }), ...lines.slice(2)];
    expect(await verifyBoth(spoofedKid.join(''))).toMatchObject({ ok: false, count: 2, seq: 3, line: 3, reason: 'SIGNATURE_INVALID' });
  });

  it('reports an inserted copy of an earlier record at the copy', async () => {
    const lines = await makeLog(5);
    const replayed = [...lines.slice(0, 4), lines[1], lines[4]];
    expect(await verifyBoth(replayed.join(''))).toMatchObject({ ok: false, count: 4, seq: 2, line: 5, reason: 'SEQ_OUT_OF_ORDER' });
  });

  it('reports two swapped records at the first out-of-place one', async () => {
    const lines = await makeLog(6);
    [lines[2], lines[3]] = [lines[3] ?? '', lines[2] ?? ''];
    expect(await verifyBoth(lines.join(''))).toMatchObject({ ok: false, count: 2, seq: 4, line: 3, reason: 'SEQ_OUT_OF_ORDER' });
  });

  it('refuses a partial final line, and a last record without its newline', async () => {
    const lines = await makeLog(3);
    const text = lines.join('');
    expect(await verifyBoth(text.slice(0, -30))).toMatchObject({ ok: false, count: 2, seq: 3, line: 3, reason: 'MALFORMED' });
    expect(await verifyBoth(text.slice(0, -1))).toMatchObject({ ok: false, count: 2, seq: 3, line: 3, reason: 'MALFORMED' });
  });

  it('refuses blank lines anywhere, including a trailing one', async () => {
    const lines = await makeLog(3);
    expect(await verifyBoth(`${lines.join('')}\n`)).toMatchObject({ ok: false, count: 3, seq: 4, line: 4, reason: 'MALFORMED' });
    expect(await verifyBoth([lines[0], '\n', lines[1], lines[2]].join(''))).toMatchObject({ ok: false, count: 1, seq: 2, line: 2, reason: 'MALFORMED' });
  });

  it('refuses lines that are not canonical JSON, even with the right content', async () => {
    const lines = await makeLog(3);
    const record = parse(lines[1] ?? '');
    const pretty = `${JSON.stringify(record, null, 1).replace(/\n/g, '')}\n`;
    expect(await verifyBoth([lines[0], pretty, lines[2]].join(''))).toMatchObject({ ok: false, seq: 2, line: 2, reason: 'NOT_CANONICAL' });
    // A duplicate name: JSON.parse keeps the last, a human or another parser may read the first.
    const duplicate = (lines[1] ?? '').replace('"outcome":"success"', '"outcome":"failure","outcome":"success"');
    expect(await verifyBoth([lines[0], duplicate, lines[2]].join(''))).toMatchObject({ ok: false, seq: 2, reason: 'NOT_CANONICAL' });
    const crlf = lines.map((text) => text.replace('\n', '\r\n'));
    expect(await verifyBoth(crlf.join(''))).toMatchObject({ ok: false, seq: 1, reason: 'NOT_CANONICAL' });
  });

  it('refuses malformed records: bad JSON, missing fields, lone surrogates, oversized lines', async () => {
    const lines = await makeLog(2);
    const record = parse(lines[1] ?? '');
    const noOutcome: Partial<AuditRecord> = { ...record };
    delete noOutcome.outcome;
    const cases = ['not json\n', '[1]\n', line(noOutcome), line({ ...record, seq: 2.5 }), line({ ...record, sig: 'AAAA' }), line({ ...record, ts: 'yesterday' }), (lines[1] ?? '').replace('"note":"record 2"', '"note":"\\ud800"'), `${'x'.repeat(AUDIT_LINE_MAX_LENGTH + 1)}\n`];
    for (const bad of cases) {
      expect(await verifyBoth(`${lines[0]}${bad}`)).toMatchObject({ ok: false, count: 1, seq: 2, line: 2, reason: 'MALFORMED' });
    }
  });

  it('refuses invalid UTF-8 instead of decoding it to U+FFFD, and a byte order mark', async () => {
    const chain = new AuditChain(ed25519AuditSigner(key), { now: clock() });
    const lines = [(await chain.append(entry(1))).line, (await chain.append({ ...entry(2), details: { note: '\ufffd' } })).line];
    const bytes = Buffer.from(lines.join(''), 'utf8');
    expect(verifyAuditLog(bytes, signers)).toMatchObject({ ok: true, count: 2 });
    // Replace the 3 bytes of U+FFFD by one invalid byte: a lenient decoder would read the same text.
    const at = bytes.indexOf(Buffer.from('\ufffd', 'utf8'));
    const edited = Buffer.concat([bytes.subarray(0, at), Buffer.from([0xff]), bytes.subarray(at + 3)]);
    expect(edited.toString('utf8')).toBe(lines.join(''));
    expect(verifyAuditLog(edited, signers)).toMatchObject({ ok: false, count: 1, seq: 2, line: 2, reason: 'MALFORMED' });
    expect(await verifyAuditLogLines([edited.subarray(0, edited.indexOf(0x0a)), edited.subarray(edited.indexOf(0x0a) + 1, -1)], signers)).toMatchObject({ ok: false, seq: 2, reason: 'MALFORMED' });
    expect(verifyAuditLog(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]), signers)).toMatchObject({ ok: false, seq: 1, line: 1, reason: 'MALFORMED' });
  });

  it('verifies across a key rotation when both keys are trusted', async () => {
    const chain = new AuditChain(ed25519AuditSigner(key), { now: clock() });
    const lines = [(await chain.append(entry(1))).line];
    const rotated = AuditChain.resume(lines[0], ed25519AuditSigner(otherKey), { now: clock() });
    lines.push((await rotated.append(entry(2))).line);
    const both = new Map([
      [key.keyid, key.publicKey],
      [otherKey.keyid, otherKey.publicKey],
    ]);
    expect(await verifyBoth(lines.join(''), both)).toMatchObject({ ok: true, count: 2 });
    expect(await verifyBoth(lines.join(''))).toMatchObject({ ok: false, count: 1, seq: 2, reason: 'UNKNOWN_SIGNER' });
  });

  it('verifies a segment of a rotated log after a known head', async () => {
    const lines = await makeLog(5);
    const head = { seq: 2, hash: parse(lines[1] ?? '').hash };
    expect(verifyAuditLog(lines.slice(2).join(''), signers, { after: head })).toMatchObject({ ok: true, count: 3, lastSeq: 5 });
    expect(verifyAuditLog(lines.slice(2).join(''), signers)).toMatchObject({ ok: false, seq: 3, reason: 'SEQ_OUT_OF_ORDER' });
  });

  it('stops reading lines at the first break', async () => {
    const lines = (await makeLog(5)).map((text) => text.slice(0, -1));
    lines[1] = 'garbage';
    let pulled = 0;
    const source = (function* () {
      for (const text of lines) {
        pulled += 1;
        yield text;
      }
    })();
    expect(await verifyAuditLogLines(source, signers)).toMatchObject({ ok: false, seq: 2, reason: 'MALFORMED' });
    expect(pulled).toBe(3); // one line of look-ahead
  });

  it('keeps reporting the first break once broken', () => {
    const verifier = new AuditLogVerifier(signers);
    const first = verifier.push('nope');
    expect(verifier.push('still nope')).toBe(first);
    expect(verifier.result()).toMatchObject({ ok: false, line: 1 });
  });

  it('reports any single-character change at the line that was changed (property)', async () => {
    const lines = await makeLog(4);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: lines.length - 1 }),
        fc.nat(),
        fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }),
        async (index, at, char) => {
          const target = lines[index] ?? '';
          const position = at % (target.length - 1); // keep the newline
          fc.pre(target[position] !== char);
          const changed = [...lines];
          changed[index] = target.slice(0, position) + char + target.slice(position + 1);
          const result = await verifyBoth(changed.join(''));
          expect(result.ok).toBe(false);
          expect(!result.ok && result.line).toBe(index + 1);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('signers.json', () => {
  it('round-trips through the builder and the parser', () => {
    const document = buildAuditSigners([key.publicKey, { kid: 'kms-audit', publicKey: otherKey.publicKey }]);
    expect(document).toStrictEqual({
      signers: [
        { kid: key.keyid, algorithm: 'ed25519', publicKey: key.publicKey.toBase64() },
        { kid: 'kms-audit', algorithm: 'ed25519', publicKey: otherKey.publicKey.toBase64() },
      ],
    });
    const keys = parseAuditSigners(JSON.stringify(document, null, 2));
    expect([...keys.keys()]).toEqual([key.keyid, 'kms-audit']);
    expect(keys.get('kms-audit')?.equals(otherKey.publicKey)).toBe(true);
  });

  it.each([
    ['not JSON', '{'],
    ['no list', '{}'],
    ['an empty list', '{"signers":[]}'],
    ['an unknown top-level field', { signers: [{ kid: 'a', algorithm: 'ed25519', publicKey: key.publicKey.toBase64() }], trustAll: true }],
    ['an unknown entry field', { signers: [{ kid: 'a', algorithm: 'ed25519', publicKey: key.publicKey.toBase64(), validUntil: '2020-01-01' }] }],
    ['another algorithm', { signers: [{ kid: 'a', algorithm: 'rsa', publicKey: key.publicKey.toBase64() }] }],
    ['a short key', { signers: [{ kid: 'a', algorithm: 'ed25519', publicKey: Buffer.alloc(31).toString('base64') }] }],
    ['a base64url key', { signers: [{ kid: 'a', algorithm: 'ed25519', publicKey: Buffer.from(key.publicKey.raw).toString('base64url') }] }],
    ['a missing kid', { signers: [{ algorithm: 'ed25519', publicKey: key.publicKey.toBase64() }] }],
    [
      'a duplicate kid',
      {
        signers: [
          { kid: 'a', algorithm: 'ed25519', publicKey: key.publicKey.toBase64() },
          { kid: 'a', algorithm: 'ed25519', publicKey: otherKey.publicKey.toBase64() },
        ],
      },
    ],
  ])('refuses %s', (_what, input) => {
    expectError(() => parseAuditSigners(input), AuditError, 'AUDIT_SIGNERS_INVALID');
  });
});
