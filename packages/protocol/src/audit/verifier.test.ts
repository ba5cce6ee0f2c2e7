import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clock, entry, key, line, makeLog, otherKey, parse, signers } from '../../test/audit-log.js';
import { AUDIT_GENESIS_HASH, AUDIT_LINE_MAX_LENGTH, auditRecordHash } from './record.js';
import type { AuditRecord } from './record.js';
import { ed25519AuditSigner } from './signers.js';
import type { AuditSignerKeys } from './signers.js';
import { AuditLogVerifier, verifyAuditLog, verifyAuditLogLines } from './verifier.js';
import type { AuditVerification } from './verifier.js';
import { AuditChain } from './writer.js';

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
