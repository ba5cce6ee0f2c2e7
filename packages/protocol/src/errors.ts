// Every error a user of drover can see carries a stable `code` (listed in docs/errors.md) and,
// where one exists, its native `cause`. Error classes are branded with `Symbol.for(...)` so that
// `instanceof` holds across copies of this package (the daemon bundles its own), as undici does.

const kBrand = Symbol('drover.error.brand');

/**
 * Brands an error class so `instanceof` works across copies of drover's packages. Call it once
 * after declaring a subclass of {@link DroverError}.
 */
export function brandError(cls: abstract new (...args: never[]) => Error, name: string): void {
  const symbol = Symbol.for(`drover.error.${name}`);
  Object.defineProperty(cls.prototype, symbol, { value: true });
  Object.defineProperty(cls, kBrand, { value: symbol });
}

/** Codes of malformed keys and signatures, whatever they sign. */
export const cryptoErrorCodes = ['KEY_INVALID', 'SIGNATURE_MALFORMED'] as const;
/** Codes of release (DSSE envelope and artifact) verification: each names the rule that refused. */
export const releaseErrorCodes = [
  'RELEASE_MALFORMED',
  'RELEASE_SIGNATURE_INVALID',
  'RELEASE_UNTRUSTED_SIGNER',
  'RELEASE_THRESHOLD_NOT_MET',
  'RELEASE_WRONG_ARTIFACT',
  'RELEASE_WRONG_PLATFORM',
  'RELEASE_EXPIRED',
  'DOWNGRADE_REFUSED',
  'ARTIFACT_TOO_LARGE',
  'ARTIFACT_TOO_SHORT',
  'ARTIFACT_DIGEST_MISMATCH',
  'TRUST_POLICY_INVALID',
] as const;
/** Codes of update-nonce verification. */
export const nonceErrorCodes = [
  'NONCE_MALFORMED',
  'NONCE_SIGNATURE_INVALID',
  'NONCE_WRONG_AGENT',
  'NONCE_WRONG_MACHINE',
  'NONCE_EXPIRED',
  'NONCE_NOT_YET_VALID',
  'NONCE_REPLAYED',
  'NONCE_DOWNGRADE_REFUSED',
] as const;
/** Codes of service tokens and encryption at rest. */
export const secretErrorCodes = [
  'SERVICE_TOKEN_MISSING',
  'FERNET_KEY_INVALID',
  'FERNET_TOKEN_INVALID',
  'FERNET_TOKEN_EXPIRED',
  'ENCRYPTION_KEY_MISSING',
  'ENCRYPTION_SALT_TOO_SHORT',
] as const;
/** Codes of the audit log and canonical JSON. */
export const auditErrorCodes = ['AUDIT_RECORD_MALFORMED', 'AUDIT_SIGNERS_INVALID', 'AUDIT_MAC_KEYS_INVALID', 'CANONICAL_JSON_UNSUPPORTED'] as const;
/** Codes of minisign keys and signatures. */
export const minisignErrorCodes = [
  'MINISIGN_KEY_INVALID',
  'MINISIGN_SIGNATURE_MALFORMED',
  'MINISIGN_KEY_MISMATCH',
  'MINISIGN_ALGORITHM_UNSUPPORTED',
  'MINISIGN_SIGNATURE_INVALID',
  'MINISIGN_TRUSTED_COMMENT_INVALID',
] as const;
/** Codes of versions and wire-message validation. */
export const dataErrorCodes = ['VERSION_INVALID', 'SCHEMA_INVALID'] as const;

/** A code of {@link CryptoError}: one of {@link cryptoErrorCodes}. */
export type CryptoErrorCode = (typeof cryptoErrorCodes)[number];
/** A code of {@link ReleaseError}: one of {@link releaseErrorCodes}. */
export type ReleaseErrorCode = (typeof releaseErrorCodes)[number];
/** A code of {@link NonceError}: one of {@link nonceErrorCodes}. */
export type NonceErrorCode = (typeof nonceErrorCodes)[number];
/** A code of {@link SecretError}: one of {@link secretErrorCodes}. */
export type SecretErrorCode = (typeof secretErrorCodes)[number];
/** A code of {@link AuditError}: one of {@link auditErrorCodes}. */
export type AuditErrorCode = (typeof auditErrorCodes)[number];
/** A code of {@link MinisignError}: one of {@link minisignErrorCodes}. */
export type MinisignErrorCode = (typeof minisignErrorCodes)[number];
/** A code of {@link DataError}: one of {@link dataErrorCodes}. */
export type DataErrorCode = (typeof dataErrorCodes)[number];
/** Any code `@drover/protocol` raises: the union of its error classes' codes. */
export type ProtocolErrorCode =
  | CryptoErrorCode
  | ReleaseErrorCode
  | NonceErrorCode
  | SecretErrorCode
  | AuditErrorCode
  | MinisignErrorCode
  | DataErrorCode;

/** Every code `@drover/protocol` can raise, for docs and exhaustiveness tests. */
export const protocolErrorCodes: readonly ProtocolErrorCode[] = [
  ...cryptoErrorCodes,
  ...releaseErrorCodes,
  ...nonceErrorCodes,
  ...secretErrorCodes,
  ...auditErrorCodes,
  ...minisignErrorCodes,
  ...dataErrorCodes,
];

/**
 * The base of every error drover raises on purpose. `code` is stable; `message` says what
 * failed and what to do next, and never contains a secret.
 *
 * @example
 * ```ts
 * try { verifyRelease(envelope, policy, expect) } catch (error) {
 *   if (error instanceof ReleaseError && error.code === 'RELEASE_EXPIRED') { ... }
 * }
 * ```
 */
export class DroverError<Code extends string = string> extends Error {
  /** The class's name, fixed so it survives minification; each subclass sets its own. */
  override name = 'DroverError';
  /** The stable code, listed in docs/errors.md; branch on it, not on the message. */
  readonly code: Code;

  /**
   * Makes an error with a stable code; subclasses fix the code's type.
   *
   * @param code - the stable code
   * @param message - what failed and what to do next; never a secret
   * @param options - `cause`: the error that led to this one, kept as the native `cause`
   */
  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** `instanceof` by brand, so it holds across copies of drover's packages (a bundled daemon has its own). */
  static override [Symbol.hasInstance]<C extends abstract new (...args: never[]) => unknown>(this: C, value: unknown): value is InstanceType<C> {
    const symbol = (this as unknown as Record<typeof kBrand, symbol | undefined>)[kBrand];
    if (symbol === undefined || typeof value !== 'object' || value === null) return false;
    return (value as Record<symbol, unknown>)[symbol] === true;
  }

  /** The error as an API body's `error` member: its code and message, nothing else (no stack, no cause). */
  toJSON(): { code: Code; message: string } {
    return { code: this.code, message: this.message };
  }
}
brandError(DroverError, 'DroverError');

/** A key or a signature is malformed (`KEY_INVALID`, `SIGNATURE_MALFORMED`), whatever it signs. */
export class CryptoError extends DroverError<CryptoErrorCode> {
  override name = 'CryptoError';
}
brandError(CryptoError, 'CryptoError');

/** A release envelope, its trust policy or its artifact was refused; the code names the rule that refused it. */
export class ReleaseError extends DroverError<ReleaseErrorCode> {
  override name = 'ReleaseError';
}
brandError(ReleaseError, 'ReleaseError');

/** An update nonce was refused; the code names the check that failed. */
export class NonceError extends DroverError<NonceErrorCode> {
  override name = 'NonceError';
}
brandError(NonceError, 'NonceError');

/** A service token, a Fernet key or token, or the encryption-at-rest settings are missing or invalid. */
export class SecretError extends DroverError<SecretErrorCode> {
  override name = 'SecretError';
}
brandError(SecretError, 'SecretError');

/** An audit record, signers.json or a value to canonicalise for the audit hash is malformed. */
export class AuditError extends DroverError<AuditErrorCode> {
  override name = 'AuditError';
}
brandError(AuditError, 'AuditError');

/** A minisign public key or `.minisig` file is malformed, or its signature does not hold. */
export class MinisignError extends DroverError<MinisignErrorCode> {
  override name = 'MinisignError';
}
brandError(MinisignError, 'MinisignError');

/** A version or a wire message is malformed (`VERSION_INVALID`, `SCHEMA_INVALID`). */
export class DataError extends DroverError<DataErrorCode> {
  override name = 'DataError';
}
brandError(DataError, 'DataError');

/**
 * True when `value` is a drover error, optionally with the given code.
 *
 * @param value - anything caught
 * @param code - when given, the code the error must carry
 * @returns whether `value` is a {@link DroverError} (of that code); narrows its type
 */
export function isDroverError(value: unknown, code?: string): value is DroverError {
  return value instanceof DroverError && (code === undefined || value.code === code);
}
