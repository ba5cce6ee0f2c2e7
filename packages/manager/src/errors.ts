import { DroverError } from '@drover/protocol';
import { brandError } from '@drover/protocol/internal';
import type { NonceErrorCode } from '@drover/protocol';

// The manager's own codes, listed in docs/errors.md. Refusals that the protocol already names keep
// the protocol's code: release verification throws protocol's ReleaseError as is, and a refused
// update result is a ManagerError carrying the protocol's nonce code (NONCE_REPLAYED, ...) so that
// it can name the command in its body. The HTTP status of every code is in http/status.ts.

/** Codes of requests the manager refuses (each answered as `{"error":{"code","message"}}`). */
export const managerRequestErrorCodes = [
  // the request itself
  'BAD_REQUEST',
  'BODY_MALFORMED',
  'BODY_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'NOT_FOUND',
  'TEXT_MALFORMED',
  'NUMBER_OUT_OF_RANGE',
  'JSON_TOO_DEEP',
  'JSON_TOO_LARGE',
  // operator tokens (admin, deploy) and roles (viewer < operator < admin)
  'AUTH_REQUIRED',
  'AUTH_INVALID',
  'TOKEN_SCOPE_INSUFFICIENT',
  // people's ID tokens (OIDC, decision 0042)
  'OIDC_TOKEN_INVALID',
  'OIDC_TOKEN_EXPIRED',
  'OIDC_ISSUER_MISMATCH',
  'OIDC_AUDIENCE_MISMATCH',
  'ROLE_NONE',
  'OIDC_UNAVAILABLE',
  // the web console's session cookie, and its browser sign-in (decision 0044)
  'CSRF_TOKEN_INVALID',
  'OIDC_NOT_CONFIGURED',
  'OIDC_LOGIN_STATE_INVALID',
  'OIDC_LOGIN_REFUSED',
  'OIDC_TOKEN_EXCHANGE_FAILED',
  // the metrics token (GET /metrics)
  'METRICS_AUTH_REQUIRED',
  'METRICS_AUTH_INVALID',
  // agents
  'CREDENTIAL_INVALID',
  'CREDENTIAL_AGENT_MISMATCH',
  'AGENT_REVOKED',
  'MACHINE_ID_MISMATCH',
  'AGENT_NOT_FOUND',
  'AGENT_ALREADY_ENROLLED',
  'AGENT_VERSION_TOO_OLD',
  // enrollment tokens
  'ENROLLMENT_TOKEN_INVALID',
  'ENROLLMENT_TOKEN_EXPIRED',
  'ENROLLMENT_TOKEN_EXHAUSTED',
  'ENROLLMENT_TOKEN_REVOKED',
  'ENROLLMENT_TOKEN_NOT_FOUND',
  // commands and update nonces
  'COMMAND_UNKNOWN',
  'NONCE_MISSING',
  'NONCE_UNKNOWN',
  'NONCE_WRONG_COMMAND',
  'NONCE_VERSION_MISMATCH',
  // releases and downloads
  'TRUST_POLICY_MISSING',
  'RELEASE_EXISTS',
  'RELEASE_NOT_FOUND',
  'RELEASE_NOT_UPLOADED',
  'UPLOAD_NOT_EXPECTED',
  'PLATFORM_REQUIRED',
  'DOWNLOAD_UNAUTHORIZED',
  'PRESIGNED_URL_INVALID',
  'PRESIGNED_URL_EXPIRED',
  'RANGE_NOT_SATISFIABLE',
  // deployments (the deploy API and the rollout engine)
  'DEPLOYMENT_ACTIVE',
  'DEPLOYMENT_NOT_FOUND',
  'DEPLOYMENT_ACTION_INVALID',
  'DEPLOYMENT_VERSION_REQUIRED',
  'ROLLOUT_OPTIONS_INVALID',
  'PUSH_URL_INVALID',
  'LEASE_BUSY',
  'LEASE_LOST',
  'CHANNEL_FULL',
  'AGENT_IMPORT_CONFLICT',
  // the artifact store (an S3 bucket): what /readyz and an upload answer while it cannot be used
  'BLOB_STORE_UNREACHABLE',
  'BLOB_STORE_BUCKET_NOT_FOUND',
  'BLOB_STORE_ACCESS_DENIED',
  // the database (PostgreSQL): what /readyz and any request answer while it cannot be used
  'STORE_UNAVAILABLE',
  // the manager itself
  'AUDIT_UNAVAILABLE',
  'SHUTTING_DOWN',
  'OVERLOADED',
  'NOT_READY',
  'INTERNAL_ERROR',
] as const;

/** Codes of starting and configuring a manager (thrown by `startManager`, `managerPlugin`, `initManagerDirectory`, the store). */
export const managerStartupErrorCodes = [
  'CONFIG_INVALID',
  'KEY_FILE_MISSING',
  'AUDIT_LOG_CORRUPT',
  'AUDIT_LOG_TRUNCATED',
  'STORE_SCHEMA_TOO_NEW',
  'STORE_NOT_EMPTY',
  'MANAGER_RUNNING',
  'TLS_INVALID',
  'ENCRYPTION_KEY_MISMATCH',
  'STORE_CLOSED',
  'BLOB_STORE_INVALID',
  // the audit signer's configuration (AUDIT_SIGNING_*, REQUIRE_KMS; decision 0046)
  'AUDIT_SIGNER_CONFIG_INVALID',
  'KMS_REQUIRED',
  'KEY_URL_INSECURE',
  'KEY_URL_UNREACHABLE',
  'KEY_URL_PIN_MISMATCH',
] as const;

/**
 * Codes of keys held in an HSM or token through PKCS#11 (`openPkcs11Signer`, `generatePkcs11Key`,
 * `drover keygen --pkcs11`, `drover release sign --key pkcs11:...`). No message carries a PIN.
 */
export const managerPkcs11ErrorCodes = [
  'PKCS11_URI_INVALID',
  'PKCS11_UNAVAILABLE',
  'PKCS11_MODULE_NOT_FOUND',
  'PKCS11_TOKEN_NOT_FOUND',
  'PKCS11_PIN_MISSING',
  'PKCS11_PIN_INCORRECT',
  'PKCS11_PIN_LOCKED',
  'PKCS11_OBJECT_NOT_FOUND',
  'PKCS11_OBJECT_EXISTS',
  'PKCS11_KEY_UNSUPPORTED',
  'PKCS11_FAILED',
] as const;

/**
 * Codes of keys held in AWS KMS (`openKmsSigner`, `drover release sign --key awskms:...`,
 * `drover manager init --signing-key awskms:...`). No message carries a credential.
 */
export const managerKmsErrorCodes = [
  'KMS_KEY_NAME_INVALID',
  'KMS_REGION_MISSING',
  'KMS_KEY_NOT_FOUND',
  'KMS_ACCESS_DENIED',
  'KMS_KEY_DISABLED',
  'KMS_KEY_SPEC_UNSUPPORTED',
  'KMS_MESSAGE_TOO_LARGE',
  'KMS_UNREACHABLE',
  'KMS_FAILED',
] as const;

/**
 * Codes of why one target of a rollout ended failed, skipped or rolled back: shown per agent by
 * `GET /manager/v1/updates/status` and `drover rollout status`, never thrown.
 */
export const managerRolloutCodes = [
  'TARGET_DEADLINE_EXCEEDED',
  'DEFERRAL_WINDOW_EXPIRED',
  'UPDATE_FAILED',
  'HOST_ROLLED_BACK',
  'TARGET_UNHEALTHY',
  'PUSH_UNAUTHORIZED',
  'PUSH_REFUSED',
  'PUSH_UNREACHABLE',
  'ROLLBACK_FAILED',
  'RELEASE_MISSING_FOR_PLATFORM',
  'ALREADY_ON_VERSION',
  'DEPLOYMENT_STOPPED',
  'AGENT_REMOVED',
] as const;

/** A code of a request the manager refused: one of {@link managerRequestErrorCodes}. */
export type ManagerRequestErrorCode = (typeof managerRequestErrorCodes)[number];
/** A code of a manager that could not start: one of {@link managerStartupErrorCodes}. */
export type ManagerStartupErrorCode = (typeof managerStartupErrorCodes)[number];
/** A code of a key in a PKCS#11 token: one of {@link managerPkcs11ErrorCodes}. */
export type ManagerPkcs11ErrorCode = (typeof managerPkcs11ErrorCodes)[number];
/** A code of a key in AWS KMS: one of {@link managerKmsErrorCodes}. */
export type ManagerKmsErrorCode = (typeof managerKmsErrorCodes)[number];
/** Why one target of a rollout ended as it did: one of {@link managerRolloutCodes}. */
export type ManagerRolloutCode = (typeof managerRolloutCodes)[number];
/** Every code a {@link ManagerError} carries of the manager's own (it may also carry a protocol nonce code). */
export type ManagerErrorCode = ManagerRequestErrorCode | ManagerStartupErrorCode | ManagerPkcs11ErrorCode | ManagerKmsErrorCode;

/** Every code `@drover/manager` defines, for docs and exhaustiveness tests. */
export const managerErrorCodes: readonly (ManagerErrorCode | ManagerRolloutCode)[] = [...managerRequestErrorCodes, ...managerStartupErrorCodes, ...managerPkcs11ErrorCodes, ...managerKmsErrorCodes, ...managerRolloutCodes];

/**
 * What the manager throws, and what its routes answer with. `details` holds extra members of the
 * error body (e.g. the `commandId` a refused result named); never a secret.
 *
 * @example
 * ```ts
 * try {
 *   await startManager({ dir: '/var/lib/drover-manager' });
 * } catch (error) {
 *   if (error instanceof ManagerError && error.code === 'ENCRYPTION_KEY_MISMATCH') process.exit(78);
 *   throw error;
 * }
 * ```
 */
export class ManagerError extends DroverError<ManagerErrorCode | NonceErrorCode> {
  override name = 'ManagerError';
  readonly details: Readonly<Record<string, string>> | undefined;

  constructor(code: ManagerErrorCode | NonceErrorCode, message: string, options: { cause?: unknown; details?: Record<string, string> } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.details = options.details;
  }
}
brandError(ManagerError, 'ManagerError');
