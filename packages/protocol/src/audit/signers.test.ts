import { describe, expect, it } from 'vitest';
import { expectError } from '../../../../test/helpers/expect-error.js';
import { key, otherKey } from '../../test/audit-log.js';
import { AuditError } from '../errors.js';
import { buildAuditSigners, parseAuditSigners } from './signers.js';

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
    const kms = keys.get('kms-audit');
    expect(kms?.algorithm === 'ed25519' && kms.publicKey.equals(otherKey.publicKey)).toBe(true);
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
