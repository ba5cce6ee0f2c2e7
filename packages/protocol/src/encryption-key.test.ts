import { describe, expect, it } from 'vitest';
import { deriveCirisEncryptionKey, resolveEncryptionKey } from './encryption-key.js';
import { SecretError } from './errors.js';
import type { SecretErrorCode } from './errors.js';
import { generateFernetKey, isFernetKey } from './fernet.js';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

function expectSecretError(fn: () => unknown, code: SecretErrorCode): SecretError {
  const error = caught(fn);
  expect(error).toBeInstanceOf(SecretError);
  expect((error as SecretError).code).toBe(code);
  return error as SecretError;
}

describe('deriveCirisEncryptionKey', () => {
  // Known answers computed with Python's cryptography, exactly as CIRISManager's crypto.py does:
  // base64.urlsafe_b64encode(PBKDF2HMAC(SHA256, length=32, salt=salt.encode(), iterations=100000)
  //   .derive(password.encode())).
  it.each([
    ['test-secret-key-for-testing', 'test-salt-sixteen-chars-long', 'L18S4ScPstQtUyvsr9flGAy2vpmfJZ1XAeb14RhsyBc='],
    ['pässwörd-🔑', 'sälz-ünicode-🧂-0123456789', 'W_wrTw_aNpLrePSU0Ty6MSfTZtJcPxAEPO7sCEkXWls='],
  ])('derives CIRISManager\'s key for (%s, %s)', (password, salt, expected) => {
    const key = deriveCirisEncryptionKey(password, salt);
    expect(key).toBe(expected);
    expect(isFernetKey(key)).toBe(true);
  });

  it('depends on both the password and the salt', () => {
    const base = deriveCirisEncryptionKey('password-one', 'salt-sixteen-chars');
    expect(deriveCirisEncryptionKey('password-two', 'salt-sixteen-chars')).not.toBe(base);
    expect(deriveCirisEncryptionKey('password-one', 'salt-sixteen-charz')).not.toBe(base);
  });
});

describe('resolveEncryptionKey', () => {
  const droverKey = generateFernetKey();
  const cirisKey = generateFernetKey();
  const derivation = { MANAGER_JWT_SECRET: 'test-secret-key-for-testing', CIRIS_ENCRYPTION_SALT: 'test-salt-sixteen-chars-long' };

  it('prefers DROVER_ENCRYPTION_KEY over everything', () => {
    expect(resolveEncryptionKey({ DROVER_ENCRYPTION_KEY: droverKey, CIRIS_ENCRYPTION_KEY: cirisKey, ...derivation }))
      .toEqual({ key: droverKey, source: 'DROVER_ENCRYPTION_KEY' });
  });

  it('falls back to the CIRIS_ENCRYPTION_KEY alias, also when DROVER_ENCRYPTION_KEY is empty', () => {
    expect(resolveEncryptionKey({ CIRIS_ENCRYPTION_KEY: cirisKey, ...derivation }))
      .toEqual({ key: cirisKey, source: 'CIRIS_ENCRYPTION_KEY' });
    expect(resolveEncryptionKey({ DROVER_ENCRYPTION_KEY: '', CIRIS_ENCRYPTION_KEY: cirisKey }))
      .toEqual({ key: cirisKey, source: 'CIRIS_ENCRYPTION_KEY' });
  });

  it('derives the key as CIRISManager does when no key is set', () => {
    expect(resolveEncryptionKey(derivation))
      .toEqual({ key: 'L18S4ScPstQtUyvsr9flGAy2vpmfJZ1XAeb14RhsyBc=', source: 'derived' });
  });

  it.each(['DROVER_ENCRYPTION_KEY', 'CIRIS_ENCRYPTION_KEY'])(
    'refuses an invalid %s instead of silently deriving another key, naming the variable but not the value',
    (name) => {
      const bad = 'not-a-fernet-key-but-a-secret-value';
      const error = expectSecretError(() => resolveEncryptionKey({ [name]: bad, ...derivation }), 'FERNET_KEY_INVALID');
      expect(error.message).toContain(name);
      expect(error.message).not.toContain(bad);
    },
  );

  it('accepts a salt of exactly 16 characters and refuses 15', () => {
    expect(resolveEncryptionKey({ MANAGER_JWT_SECRET: 's', CIRIS_ENCRYPTION_SALT: 'x'.repeat(16) }).source).toBe('derived');
    const error = expectSecretError(
      () => resolveEncryptionKey({ MANAGER_JWT_SECRET: 'jwt-secret-value', CIRIS_ENCRYPTION_SALT: 'x'.repeat(15) }),
      'ENCRYPTION_SALT_TOO_SHORT',
    );
    expect(error.message).not.toContain('jwt-secret-value');
    expect(error.message).not.toContain('x'.repeat(15));
  });

  it('counts the salt in characters as Python does, not UTF-16 units', () => {
    // Eight emoji: 16 UTF-16 units but len() == 8 in Python, so CIRISManager refuses it.
    expectSecretError(
      () => resolveEncryptionKey({ MANAGER_JWT_SECRET: 's', CIRIS_ENCRYPTION_SALT: '🧂'.repeat(8) }),
      'ENCRYPTION_SALT_TOO_SHORT',
    );
    expect(resolveEncryptionKey({ MANAGER_JWT_SECRET: 's', CIRIS_ENCRYPTION_SALT: 'ü'.repeat(16) }).source).toBe('derived');
  });

  it('refuses to start with nothing set, naming what to set', () => {
    const error = expectSecretError(() => resolveEncryptionKey({}), 'ENCRYPTION_KEY_MISSING');
    for (const name of ['DROVER_ENCRYPTION_KEY', 'MANAGER_JWT_SECRET', 'CIRIS_ENCRYPTION_SALT']) {
      expect(error.message).toContain(name);
    }
  });

  it.each([
    [{ MANAGER_JWT_SECRET: 'jwt-secret-value' }, 'CIRIS_ENCRYPTION_SALT not set'],
    [{ CIRIS_ENCRYPTION_SALT: 'salt-value-long-enough' }, 'MANAGER_JWT_SECRET not set'],
    [{ MANAGER_JWT_SECRET: '', CIRIS_ENCRYPTION_SALT: 'salt-value-long-enough' }, 'MANAGER_JWT_SECRET not set'],
  ])('refuses half a derivation (%o), naming the missing variable', (env, missing) => {
    const error = expectSecretError(() => resolveEncryptionKey(env), 'ENCRYPTION_KEY_MISSING');
    expect(error.message).toContain(missing);
    for (const value of Object.values(env)) if (value !== '') expect(error.message).not.toContain(value);
  });
});
