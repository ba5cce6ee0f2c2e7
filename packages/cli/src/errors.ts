import { DroverError, brandError } from '@drover/protocol';

export const cliErrorCodes = ['USAGE_ERROR', 'FILE_NOT_FOUND', 'FILE_EXISTS', 'IO_ERROR'] as const;
export type CliErrorCode = (typeof cliErrorCodes)[number];

/** A mistake in how the CLI was called or in the files it was given. */
export class CliError extends DroverError<CliErrorCode> {
  override name = 'CliError';
}
brandError(CliError, 'CliError');
