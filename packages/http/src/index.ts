// @drover/http: the one outbound HTTP layer of droverd, the drover CLI and the manager's push calls.
export { HttpClient, userAgent, header, defaultTimeouts, defaultMaxResponseBytes, isTlsTrustError, whatToCheck } from './http-client.js';
export type {
  HttpClientOptions,
  HttpMethod,
  HttpRequest,
  HttpResponse,
  JsonResponse,
  RequestBody,
  ResponseHeaders,
  RetryEvent,
  StreamRequest,
  StreamResponse,
  Timeouts,
} from './http-client.js';
export { defaultRetryPolicy, isRetryableStatus, isNetworkError, isRepeatable, parseRetryAfter, backoffDelay, retryDelay } from './retry-policy.js';
export type { RetryPolicy } from './retry-policy.js';
export { deadlineSignal } from './deadline.js';
export type { Deadline } from './deadline.js';
export { endpoint, redactUrl } from './url.js';
export { HttpError, httpErrorCodes } from './errors.js';
export type { HttpErrorCode } from './errors.js';
