import { DroverError } from '@drover/protocol';
import { brandError } from '@drover/protocol/internal';

/** Codes of the HTTP layer: each says why a request got no usable answer. */
export const httpErrorCodes = ['NETWORK_ERROR', 'DEADLINE_EXCEEDED', 'RESPONSE_TOO_LARGE', 'URL_INVALID'] as const;
/** A code an {@link HttpError} carries: one of {@link httpErrorCodes}. */
export type HttpErrorCode = (typeof httpErrorCodes)[number];

/**
 * A request that got no usable answer: the peer could not be reached after the retries
 * (`NETWORK_ERROR`, the last failure as `cause`), the caller's overall deadline passed
 * (`DEADLINE_EXCEEDED`), the answer was larger than the caller reads (`RESPONSE_TOO_LARGE`), or
 * the URL is not http(s) (`URL_INVALID`). An HTTP status, even a 5xx, is an answer, not an error.
 * Messages name the URL without its query string or user info, which may hold a capability.
 */
export class HttpError extends DroverError<HttpErrorCode> {
  override name = 'HttpError';
}
brandError(HttpError, 'HttpError');
