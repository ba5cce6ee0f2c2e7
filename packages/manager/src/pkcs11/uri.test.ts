import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectError } from '../../../../test/helpers/expect-error.js';
import { ManagerError } from '../errors.js';
import { modulePath, readPin } from './token.js';
import { describePkcs11Uri, isPkcs11Uri, parsePkcs11Uri } from './uri.js';

describe('parsePkcs11Uri (RFC 7512)', () => {
  it('reads the path attributes, percent-decoded, and the query attributes', () => {
    const uri = parsePkcs11Uri('pkcs11:token=Release%20HSM;object=signer%3Ba;id=%01%ff;type=private?pin-source=file:/run/pin&module-path=/usr/lib/softhsm/libsofthsm2.so');
    expect(uri).toEqual({
      token: 'Release HSM',
      object: 'signer;a',
      id: Uint8Array.from([0x01, 0xff]),
      type: 'private',
      pinSource: 'file:/run/pin',
      modulePath: '/usr/lib/softhsm/libsofthsm2.so',
    });
    expect(describePkcs11Uri(uri)).toBe('pkcs11:token=Release%20HSM;object=signer%3Ba;id=%01%ff');
  });

  it('names a token by serial or slot-id, a key by id alone', () => {
    expect(parsePkcs11Uri('pkcs11:serial=abc123;id=%07')).toEqual({ serial: 'abc123', id: Uint8Array.from([7]) });
    expect(parsePkcs11Uri('pkcs11:slot-id=3;object=k').slotId).toBe(3);
  });

  it.each([
    ['not a pkcs11 URI', 'file:/etc/key'],
    ['no token', 'pkcs11:object=k'],
    ['no key', 'pkcs11:token=t'],
    ['an unknown attribute (a misspelling must not select another key)', 'pkcs11:token=t;objet=k'],
    ['a query attribute in the path', 'pkcs11:token=t;object=k;pin-source=file:/p'],
    ['an attribute twice', 'pkcs11:token=t;token=u;object=k'],
    ['a broken escape', 'pkcs11:token=t%4;object=k'],
    ['a public key for signing', 'pkcs11:token=t;object=k;type=cert'],
    ['a bad slot-id', 'pkcs11:slot-id=x;object=k'],
  ])('refuses %s with PKCS11_URI_INVALID', (_why, text) => {
    expectError(() => parsePkcs11Uri(text), ManagerError, 'PKCS11_URI_INVALID');
  });

  it('refuses a PIN in the URI without repeating it', () => {
    try {
      parsePkcs11Uri('pkcs11:token=t;object=k?pin-value=271828');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ManagerError);
      expect((error as ManagerError).code).toBe('PKCS11_URI_INVALID');
      expect((error as ManagerError).message).not.toContain('271828');
    }
  });

  it('round-trips any label and id through describePkcs11Uri', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), fc.uint8Array({ minLength: 1, maxLength: 20 }), (token, object, id) => {
        const parsed = parsePkcs11Uri(describePkcs11Uri({ token, object, id }));
        expect(parsed).toEqual({ token, object, id });
      }),
    );
  });

  it('isPkcs11Uri tells a URI from a key file path', () => {
    expect(isPkcs11Uri('pkcs11:token=t;object=k')).toBe(true);
    expect(isPkcs11Uri('PKCS11:token=t;object=k')).toBe(true);
    expect(isPkcs11Uri('keys/release.key')).toBe(false);
  });
});

describe('where the PIN and the module come from', () => {
  it('reads the PIN from pin-source (file: URI or path, one trailing newline dropped), else DROVER_PKCS11_PIN, else refuses', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drover-pin-'));
    try {
      await writeFile(join(dir, 'pin'), '12 34\n', { mode: 0o600 });
      expect(readPin(parsePkcs11Uri(`pkcs11:token=t;object=k?pin-source=file:${join(dir, 'pin')}`), {})).toBe('12 34');
      expect(readPin(parsePkcs11Uri(`pkcs11:token=t;object=k?pin-source=file://${join(dir, 'pin')}`), {})).toBe('12 34');
      expect(readPin(parsePkcs11Uri(`pkcs11:token=t;object=k?pin-source=${join(dir, 'pin')}`), { DROVER_PKCS11_PIN: 'other' })).toBe('12 34');
      expect(readPin(parsePkcs11Uri('pkcs11:token=t;object=k'), { DROVER_PKCS11_PIN: '9876' })).toBe('9876');
      expectError(() => readPin(parsePkcs11Uri('pkcs11:token=t;object=k'), {}), ManagerError, 'PKCS11_PIN_MISSING');
      expectError(() => readPin(parsePkcs11Uri(`pkcs11:token=t;object=k?pin-source=file:${join(dir, 'nope')}`), {}), ManagerError, 'PKCS11_PIN_MISSING');
      await writeFile(join(dir, 'big'), 'x'.repeat(1000));
      expectError(() => readPin(parsePkcs11Uri(`pkcs11:token=t;object=k?pin-source=file:${join(dir, 'big')}`), {}), ManagerError, 'PKCS11_PIN_MISSING');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes the module from module-path, else DROVER_PKCS11_MODULE, and refuses none or a missing file', () => {
    expect(modulePath(parsePkcs11Uri('pkcs11:token=t;object=k?module-path=/bin/sh'), { DROVER_PKCS11_MODULE: '/nope' })).toBe('/bin/sh');
    expect(modulePath(parsePkcs11Uri('pkcs11:token=t;object=k'), { DROVER_PKCS11_MODULE: '/bin/sh' })).toBe('/bin/sh');
    expectError(() => modulePath(parsePkcs11Uri('pkcs11:token=t;object=k'), {}), ManagerError, 'PKCS11_MODULE_NOT_FOUND');
    expectError(() => modulePath(parsePkcs11Uri('pkcs11:token=t;object=k?module-path=/nonexistent/p11.so'), {}), ManagerError, 'PKCS11_MODULE_NOT_FOUND');
  });
});
