// The encryption-at-rest key for stored service tokens, by DESIGN.md "Service tokens": an explicit
// Fernet key, or CIRISManager's PBKDF2 derivation from MANAGER_JWT_SECRET and CIRIS_ENCRYPTION_SALT,
// so a drover manager and a CIRISManager with the same settings read each other's tokens.

import { pbkdf2Sync } from 'node:crypto';
import { SecretError } from './errors.js';
import { encodeBase64UrlPadded, FERNET_KEY_BYTES, parseFernetKey } from './fernet.js';

/** CIRISManager's PBKDF2-HMAC-SHA256 iteration count; changing it changes every derived key. */
export const CIRIS_PBKDF2_ITERATIONS = 100_000;
/** CIRISManager refuses a shorter CIRIS_ENCRYPTION_SALT (counted in characters, as Python's `len`). */
export const CIRIS_MIN_SALT_LENGTH = 16; // characters

/**
 * CIRISManager's key derivation: base64url (padded) of PBKDF2-HMAC-SHA256(password, salt, 100,000
 * iterations, 32 bytes), password and salt as UTF-8. The result is a Fernet key that decrypts what
 * a CIRISManager with the same MANAGER_JWT_SECRET and CIRIS_ENCRYPTION_SALT stored. Enforcing the
 * salt's minimum length is {@link resolveEncryptionKey}'s job.
 *
 * @example
 * ```ts
 * const key = deriveCirisEncryptionKey(env.MANAGER_JWT_SECRET, env.CIRIS_ENCRYPTION_SALT)
 * ```
 */
export function deriveCirisEncryptionKey(password: string, salt: string): string {
  const derived = pbkdf2Sync(
    Buffer.from(password, 'utf8'),
    Buffer.from(salt, 'utf8'),
    CIRIS_PBKDF2_ITERATIONS,
    FERNET_KEY_BYTES,
    'sha256',
  );
  return encodeBase64UrlPadded(derived);
}

export type EncryptionKeySource = 'DROVER_ENCRYPTION_KEY' | 'CIRIS_ENCRYPTION_KEY' | 'derived';

export interface ResolvedEncryptionKey {
  /** A valid Fernet key. */
  key: string;
  /** Where it came from, for a startup log line (never log `key`). */
  source: EncryptionKeySource;
}

// An empty variable counts as unset, as CIRISManager's `if not value` does: `FOO=` in a unit file
// is a mistake, not a key.
function variable(env: Record<string, string | undefined>, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The encryption-at-rest key, by DESIGN.md's rule: DROVER_ENCRYPTION_KEY, else its alias
 * CIRIS_ENCRYPTION_KEY (either must be a valid Fernet key), else derived from MANAGER_JWT_SECRET
 * and CIRIS_ENCRYPTION_SALT as CIRISManager does. Throws SecretError FERNET_KEY_INVALID,
 * ENCRYPTION_SALT_TOO_SHORT or ENCRYPTION_KEY_MISSING; the manager refuses to start on any.
 *
 * @example
 * ```ts
 * const { key, source } = resolveEncryptionKey(process.env)
 * logger.info({ source }, 'encryption key loaded')
 * ```
 */
export function resolveEncryptionKey(env: Record<string, string | undefined>): ResolvedEncryptionKey {
  for (const name of ['DROVER_ENCRYPTION_KEY', 'CIRIS_ENCRYPTION_KEY'] as const) {
    const key = variable(env, name);
    if (key === undefined) continue;
    // CIRISManager logs an invalid key and silently falls back to the derived one; drover refuses,
    // because tokens written under a key the operator did not choose become unreadable once they
    // fix the variable.
    parseFernetKey(key, name);
    return { key, source: name };
  }

  const password = variable(env, 'MANAGER_JWT_SECRET');
  const salt = variable(env, 'CIRIS_ENCRYPTION_SALT');
  if (password === undefined || salt === undefined) {
    const missing = [password === undefined ? 'MANAGER_JWT_SECRET' : '', salt === undefined ? 'CIRIS_ENCRYPTION_SALT' : '']
      .filter((name) => name !== '')
      .join(' and ');
    throw new SecretError(
      'ENCRYPTION_KEY_MISSING',
      `Failed to find an encryption key for stored service tokens (${missing} not set). Set DROVER_ENCRYPTION_KEY ` +
        '(or CIRIS_ENCRYPTION_KEY) to a Fernet key, or set both MANAGER_JWT_SECRET and CIRIS_ENCRYPTION_SALT ' +
        `(at least ${CIRIS_MIN_SALT_LENGTH} characters) to derive one as CIRISManager does.`,
    );
  }
  // Code points, not UTF-16 units: Python's len(salt) is what CIRISManager checks.
  if (Array.from(salt).length < CIRIS_MIN_SALT_LENGTH) {
    throw new SecretError(
      'ENCRYPTION_SALT_TOO_SHORT',
      `Failed to derive the encryption key: CIRIS_ENCRYPTION_SALT must be at least ${CIRIS_MIN_SALT_LENGTH} ` +
        'characters. Set a longer salt (e.g. `openssl rand -hex 16`), or the one your CIRISManager already uses.',
    );
  }
  return { key: deriveCirisEncryptionKey(password, salt), source: 'derived' };
}
