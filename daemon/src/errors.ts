import { DroverError } from '@drover/protocol';
import { brandError } from '@drover/protocol/internal';

/**
 * Codes droverd raises itself (listed under "droverd" in docs/errors.md). Refusals by the protocol
 * (`NONCE_*`, `RELEASE_*`, `ARTIFACT_*`, `DOWNGRADE_REFUSED`) keep their protocol codes and are
 * reported to the manager as they are.
 */
export const daemonErrorCodes = [
  'USAGE_ERROR',
  'CONFIG_INVALID',
  'CONFIG_NOT_FOUND',
  'STATE_LOCKED',
  'STATE_CORRUPT',
  'IO_ERROR',
  'DISK_FULL',
  'NOT_ENROLLED',
  'ALREADY_ENROLLED',
  'MANAGER_KEY_NOT_PINNED',
  'MANAGER_KEY_MISMATCH',
  'ENROLLMENT_REFUSED',
  'MANAGER_UNREACHABLE',
  'MANAGER_REFUSED',
  'RESPONSE_INVALID',
  'RESPONSE_TOO_LARGE',
  'TRUST_POLICY_MISSING',
  'COMMAND_INVALID',
  'COMMAND_UNSUPPORTED',
  'COMMAND_MISMATCH',
  'DAEMON_TOO_OLD',
  'UPDATE_DEADLINE_EXCEEDED',
  'DEFERRAL_WINDOW_EXPIRED',
  'DOWNLOAD_FAILED',
  'DOWNLOAD_STALLED',
  'RELEASE_CONFLICT',
  'AGENT_NOT_INSTALLED',
  'AGENT_START_FAILED',
  'AGENT_USER_UNKNOWN',
  'AGENT_USER_INVALID',
  'AGENT_USER_NO_ACCESS',
  'AGENT_BUSY',
  'DRAIN_FAILED',
  'AGENT_EXITED',
  'HEALTH_CHECK_FAILED',
  'ROLLBACK_FAILED',
  'DAEMON_BOOT_FAILED',
  'DAEMON_RESTART_FAILED',
  'VERIFY_FAILED',
  'INTERRUPTED',
  'INTERNAL_ERROR',
] as const;
/** A code a {@link DaemonError} carries: one of {@link daemonErrorCodes}. */
export type DaemonErrorCode = (typeof daemonErrorCodes)[number];

/**
 * What droverd throws on purpose: a stable `code` and a message that says what failed and what to
 * do next. Never carries a secret: tokens and credentials are named by their id.
 *
 * @example
 * ```ts
 * try { await acquireStateLock(paths.state) } catch (error) {
 *   if (error instanceof DaemonError && error.code === 'STATE_LOCKED') process.exit(exitCodes.locked)
 * }
 * ```
 */
export class DaemonError extends DroverError<DaemonErrorCode> {
  override name = 'DaemonError';
}
brandError(DaemonError, 'DaemonError');

/** The stable code of any error, for results and logs; unexpected errors become INTERNAL_ERROR. */
export function errorCode(error: unknown): string {
  if (error instanceof DroverError) return error.code;
  return 'INTERNAL_ERROR';
}

/** A short description of any error for a log line or a result detail (messages never hold secrets). */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message.slice(0, 4000);
  return String(error).slice(0, 4000);
}
