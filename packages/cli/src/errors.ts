import { DroverError } from '@drover/protocol';
import { brandError } from '@drover/protocol/internal';

export const cliErrorCodes = ['USAGE_ERROR', 'FILE_NOT_FOUND', 'FILE_EXISTS', 'IO_ERROR', 'NETWORK_ERROR', 'HTTP_ERROR', 'TOKEN_MISSING', 'LOGIN_UNAVAILABLE', 'LOGIN_DENIED', 'DEVICE_CODE_EXPIRED', 'LOGIN_REFRESH_FAILED', 'OIDC_PROVIDER_ERROR', 'CIRIS_REGISTRY_INVALID', 'CIRIS_TOKEN_UNREADABLE', 'CIRIS_SERVER_UNKNOWN'] as const;
export type CliErrorCode = (typeof cliErrorCodes)[number];

/** A mistake in how the CLI was called or in the files it was given. */
export class CliError extends DroverError<CliErrorCode> {
  override name = 'CliError';
}
brandError(CliError, 'CliError');

/**
 * A refusal by the manager, carrying the manager's own stable code (ENROLLMENT_TOKEN_EXPIRED,
 * RELEASE_UNTRUSTED_SIGNER, ...), so the CLI prints `drover: <CODE>: <message>` as the manager said it.
 */
export class RemoteError extends DroverError {
  override name = 'RemoteError';
  /** The HTTP status the manager answered with. */
  readonly status: number;

  constructor(code: string, message: string, status: number) {
    super(code, message);
    this.status = status;
  }
}
brandError(RemoteError, 'RemoteError');
