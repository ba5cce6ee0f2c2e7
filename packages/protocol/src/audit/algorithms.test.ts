// Audit records signed with each algorithm of decision 0046, and chains that change algorithm
// and key at a rotation.
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { expectError } from '../../../../test/helpers/expect-error.js';
import { clock, entry, key, line, parse } from '../../test/audit-log.js';
import { toBase64, toHex } from '../bytes.js';
import { AuditError } from '../errors.js';
import { auditRecordHash } from './record.js';
import type { AuditRecord } from './record.js';
import { buildAuditSigners, ed25519AuditSigner, hmacAuditSigner, parseAuditHmacKeys, parseAuditSigners, rsaAuditSigner, withAuditHmacKeys } from './signers.js';
import type { AuditSigner } from './signers.js';
import { verifyAuditLog } from './verifier.js';
import { AuditChain } from './writer.js';

const rsa = rsaAuditSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'audit-rsa-1');
const hmacSecret = new Uint8Array(32).fill(5);
const hmac = hmacAuditSigner(hmacSecret, 'audit-hmac-1');
const ed = ed25519AuditSigner(key);

// signers.json as the manager publishes it (no HMAC secret), and the verifier's HMAC key file.
const signersJson = JSON.stringify(
  buildAuditSigners([key.publicKey, { kid: rsa.signer.kid, publicKey: rsa.key }, { kid: hmac.signer.kid, publicKey: hmac.key }]),
);
const hmacKeysJson = JSON.stringify({ keys: [{ kid: hmac.signer.kid, key: toBase64(hmacSecret) }] });
const verifierKeys = withAuditHmacKeys(parseAuditSigners(signersJson), parseAuditHmacKeys(hmacKeysJson));

// A log of `perSigner` records by each signer in turn: a key rotation at each change of signer.
async function rotatedLog(signers: AuditSigner[], perSigner = 2): Promise<string[]> {
  const lines: string[] = [];
  let chain = new AuditChain(signers[0] as AuditSigner, { now: clock() });
  let i = 0;
  for (const signer of signers) {
    if (i > 0) chain = AuditChain.resume(lines[lines.length - 1], signer, { now: clock(Date.UTC(2025, 0, 1) + i * 10_000) });
    for (let n = 0; n < perSigner; n += 1) lines.push((await chain.append(entry((i += 1)))).line);
  }
  return lines;
}

function edit(lines: string[], index: number, change: (record: AuditRecord) => AuditRecord): string {
  return lines.map((text, i) => (i === index ? line(change(parse(text))) : text)).join('');
}

describe('audit algorithms', () => {
  it('verifies a chain that rotates from ed25519 to rsa-sha256 to hmac-sha256, each record naming its alg', async () => {
    const lines = await rotatedLog([ed, rsa.signer, hmac.signer]);
    expect(lines.map((text) => [parse(text).alg, parse(text).kid])).toEqual([
      ['ed25519', key.keyid],
      ['ed25519', key.keyid],
      ['rsa-sha256', 'audit-rsa-1'],
      ['rsa-sha256', 'audit-rsa-1'],
      ['hmac-sha256', 'audit-hmac-1'],
      ['hmac-sha256', 'audit-hmac-1'],
    ]);
    expect(Buffer.from(parse(lines[2] ?? '').sig, 'base64')).toHaveLength(256);
    const verdict = verifyAuditLog(lines.join(''), verifierKeys);
    expect(verdict).toMatchObject({ ok: true, count: 6, lastSeq: 6, lastHash: parse(lines[5] ?? '').hash });
  });

  it('signs the same digest whatever the algorithm: SHA-256(canonical body || prev), alg outside it', async () => {
    const [text] = await rotatedLog([hmac.signer], 1);
    const record = parse(text ?? '');
    expect(record.hash).toBe(toHex(auditRecordHash(record)));
    const withoutAlg: Partial<AuditRecord> = { ...record };
    delete withoutAlg.alg;
    expect(toHex(auditRecordHash({ ...withoutAlg, prev: record.prev }))).toBe(record.hash);
    expect(record.sig).toBe(createHmac('sha256', hmacSecret).update(Buffer.from(record.hash, 'hex')).digest('base64'));
  });

  it('keeps verifying records written before records named their algorithm (no alg: ed25519)', async () => {
    const lines = await rotatedLog([ed, rsa.signer]);
    const old = lines.map((text, i) => {
      if (i >= 2) return text;
      const record: Partial<AuditRecord> = parse(text);
      delete record.alg;
      return line(record);
    });
    expect(old[0]).not.toContain('"alg"');
    expect(verifyAuditLog(old.join(''), verifierKeys)).toMatchObject({ ok: true, count: 4 });
  });

  describe.each([
    ['ed25519', 0],
    ['rsa-sha256', 2],
    ['hmac-sha256', 4],
  ] as const)('a tampered %s record', (alg, index) => {
    it('is HASH_MISMATCH when its content changed', async () => {
      const lines = await rotatedLog([ed, rsa.signer, hmac.signer]);
      expect(parse(lines[index] ?? '').alg).toBe(alg);
      const verdict = verifyAuditLog(
        edit(lines, index, (record) => ({ ...record, outcome: 'denied' })),
        verifierKeys,
      );
      expect(verdict).toMatchObject({ ok: false, reason: 'HASH_MISMATCH', seq: index + 1, count: index });
    });

    it('is SIGNATURE_INVALID when it was re-hashed after the change', async () => {
      const lines = await rotatedLog([ed, rsa.signer, hmac.signer]);
      const verdict = verifyAuditLog(
        edit(lines, index, (record) => {
          const changed = { ...record, outcome: 'denied' };
          return { ...changed, hash: toHex(auditRecordHash(changed)) };
        }),
        verifierKeys,
      );
      // The next record's prev no longer links, but the re-hashed record breaks first.
      expect(verdict).toMatchObject({ ok: false, reason: 'SIGNATURE_INVALID', seq: index + 1 });
    });

    it('is SIGNATURE_INVALID when a byte of its signature is flipped', async () => {
      const lines = await rotatedLog([ed, rsa.signer, hmac.signer]);
      const verdict = verifyAuditLog(
        edit(lines, index, (record) => {
          const sig = Buffer.from(record.sig, 'base64');
          sig[sig.length - 1] = (sig[sig.length - 1] ?? 0) ^ 1;
          return { ...record, sig: sig.toString('base64') };
        }),
        verifierKeys,
      );
      expect(verdict).toMatchObject({ ok: false, reason: 'SIGNATURE_INVALID', seq: index + 1 });
    });
  });

  it('refuses a record whose alg is not its key\'s (ALGORITHM_MISMATCH): an RSA public key is never an HMAC secret', async () => {
    const lines = await rotatedLog([rsa.signer], 2);
    // The forger knows the public key and MACs the re-hashed record with it, claiming hmac-sha256.
    const forged = edit(lines, 1, (record) => {
      const changed = { ...record, outcome: 'denied' };
      const hash = auditRecordHash(changed);
      return { ...changed, hash: toHex(hash), alg: 'hmac-sha256', sig: createHmac('sha256', rsa.key.spki).update(hash).digest('base64') };
    });
    expect(verifyAuditLog(forged, verifierKeys)).toMatchObject({ ok: false, reason: 'ALGORITHM_MISMATCH', seq: 2, count: 1 });
  });

  it('says MAC_KEY_MISSING for an hmac-sha256 record when the verifier has no secret, and verifies once given it', async () => {
    const lines = await rotatedLog([ed, hmac.signer]);
    expect(verifyAuditLog(lines.join(''), parseAuditSigners(signersJson))).toMatchObject({ ok: false, reason: 'MAC_KEY_MISSING', seq: 3 });
    expect(verifyAuditLog(lines.join(''), verifierKeys)).toMatchObject({ ok: true, count: 4 });
    // Another secret under the same kid: the MAC does not verify.
    const wrong = withAuditHmacKeys(parseAuditSigners(signersJson), parseAuditHmacKeys({ keys: [{ kid: 'audit-hmac-1', key: toBase64(new Uint8Array(32).fill(6)) }] }));
    expect(verifyAuditLog(lines.join(''), wrong)).toMatchObject({ ok: false, reason: 'SIGNATURE_INVALID', seq: 3 });
  });

  it('checks an hmac-sha256 record through its holder (verifyMac) when the verifier has no secret; an error there is no verdict', async () => {
    const lines = await rotatedLog([ed, hmac.signer]);
    const asked: number[] = [];
    // The holder: knows the secret the verifier never sees (as KMS VerifyMac does).
    const holder = (hash: Uint8Array, mac: Uint8Array): boolean => {
      asked.push(mac.length);
      return Buffer.from(createHmac('sha256', hmacSecret).update(hash).digest()).equals(mac);
    };
    const keys = withAuditHmacKeys(parseAuditSigners(signersJson), new Map([[hmac.signer.kid, { algorithm: 'hmac-sha256' as const, verifyMac: holder }]]));
    expect(verifyAuditLog(lines.join(''), keys)).toMatchObject({ ok: true, count: 4 });
    expect(asked).toEqual([32, 32]);
    const forged = edit(lines, 3, (record) => ({ ...record, sig: toBase64(new Uint8Array(32).fill(9)) }));
    expect(verifyAuditLog(forged, keys)).toMatchObject({ ok: false, reason: 'SIGNATURE_INVALID', seq: 4 });
    // A secret, when given too, is used and the holder is not asked.
    asked.length = 0;
    const both = withAuditHmacKeys(parseAuditSigners(signersJson), new Map([[hmac.signer.kid, { ...hmac.key, verifyMac: holder }]]));
    expect(verifyAuditLog(lines.join(''), both)).toMatchObject({ ok: true, count: 4 });
    expect(asked).toEqual([]);
    const down = withAuditHmacKeys(parseAuditSigners(signersJson), new Map([[hmac.signer.kid, { algorithm: 'hmac-sha256' as const, verifyMac: (): boolean => { throw new Error('holder unreachable'); } }]]));
    expect(() => verifyAuditLog(lines.join(''), down)).toThrow('holder unreachable');
  });

  it('refuses an unknown alg, and a sig whose length does not fit its alg, as MALFORMED', async () => {
    const lines = await rotatedLog([ed], 1);
    expect(verifyAuditLog(edit(lines, 0, (record) => ({ ...record, alg: 'rsa-pss' as never })), verifierKeys)).toMatchObject({ ok: false, reason: 'MALFORMED' });
    expect(verifyAuditLog(edit(lines, 0, (record) => ({ ...record, alg: 'hmac-sha256' })), verifierKeys)).toMatchObject({ ok: false, reason: 'MALFORMED' });
  });

  it('never publishes an HMAC secret in signers.json, and refuses one there', () => {
    expect(signersJson).not.toContain(toBase64(hmacSecret));
    expect((JSON.parse(signersJson) as { signers: unknown[] }).signers[2]).toStrictEqual({ kid: 'audit-hmac-1', algorithm: 'hmac-sha256' });
    expectError(() => parseAuditSigners({ signers: [{ kid: 'h', algorithm: 'hmac-sha256', publicKey: toBase64(hmacSecret) }] }), AuditError, 'AUDIT_SIGNERS_INVALID');
  });

  it.each([
    ['not JSON', '{'],
    ['no list', '{"kid":"a"}'],
    ['a short key', { keys: [{ kid: 'a', key: toBase64(new Uint8Array(16)) }] }],
    ['a key that is not base64', { keys: [{ kid: 'a', key: '!!!' }] }],
    ['an unknown field', { keys: [{ kid: 'a', key: toBase64(hmacSecret), note: 'x' }] }],
  ])('refuses an HMAC key file with %s (AUDIT_MAC_KEYS_INVALID), never quoting the secret', (_what, input) => {
    expectError(() => parseAuditHmacKeys(input), AuditError, 'AUDIT_MAC_KEYS_INVALID');
    try {
      parseAuditHmacKeys(input);
    } catch (error) {
      expect(String(error)).not.toContain(toBase64(hmacSecret));
    }
  });

  it('refuses an HMAC secret for a kid signers.json lists with another algorithm', () => {
    expectError(() => withAuditHmacKeys(parseAuditSigners(signersJson), parseAuditHmacKeys({ keys: [{ kid: 'audit-rsa-1', key: toBase64(hmacSecret) }] })), AuditError, 'AUDIT_MAC_KEYS_INVALID');
  });

  it.each([
    ['an RSA-1024 key', () => rsaAuditSigner(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey)],
    ['an EC key', () => rsaAuditSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)],
    ['a 16-byte HMAC secret', () => hmacAuditSigner(new Uint8Array(16))],
  ])('refuses %s as an audit key (AUDIT_SIGNERS_INVALID)', (_what, make) => {
    expectError(make, AuditError, 'AUDIT_SIGNERS_INVALID');
  });
});
