import { ManagerError } from '../errors.js';

// What a failed S3 call becomes: one of the BLOB_STORE_* codes, with a message naming the bucket
// and the endpoint and what to check. The SDK's own error is not kept as the cause: a refused
// signature comes back with the request's StringToSign, CanonicalRequest and access key id, which
// have no place in a log line. The cause kept is a plain Error with the S3 error name, the HTTP
// status and the network code.

interface SdkError {
  name?: unknown;
  Code?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/** The S3 error name (NoSuchKey, AccessDenied, ...) and HTTP status of an SDK error, if any. */
export function s3ErrorOf(error: unknown): { name: string; status: number | undefined; code: string | undefined } {
  const e = (typeof error === 'object' && error !== null ? error : {}) as SdkError;
  const name = typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : 'Error';
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  return { name, status, code: typeof e.code === 'string' ? e.code : undefined };
}

/** True when S3 said the object (or, with `bucket`, the bucket) is not there. */
export function isNotFound(error: unknown): boolean {
  const { name, status } = s3ErrorOf(error);
  return name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchBucket');
}

const DENIED = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'AllAccessDisabled', 'AccountProblem']);

/** The ManagerError for a failed S3 call: `what` (e.g. "storing an artifact") failed at `where` (the bucket and endpoint). */
export function blobStoreError(error: unknown, what: string, where: string, options: { headBucket?: boolean } = {}): ManagerError {
  if (error instanceof ManagerError) return error;
  const { name, status, code } = s3ErrorOf(error);
  const cause = Object.assign(new Error(`${name}${status === undefined ? '' : ` (HTTP ${status})`}${code === undefined || code === name ? '' : ` ${code}`}`), { code: code ?? name });
  if (name === 'NoSuchBucket' || (options.headBucket === true && status === 404)) {
    return new ManagerError('BLOB_STORE_BUCKET_NOT_FOUND', `${what} failed: the bucket of ${where} does not exist. Create it, or fix the blob store URL, endpoint and region (and --s3-path-style for servers without virtual-host buckets).`, { cause });
  }
  if (name === 'CredentialsProviderError') {
    return new ManagerError('BLOB_STORE_ACCESS_DENIED', `${what} failed: no credentials for ${where}. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, a role or a web identity of the AWS credential chain).`, { cause });
  }
  if (status === 403 || status === 401 || DENIED.has(name)) {
    return new ManagerError('BLOB_STORE_ACCESS_DENIED', `${what} failed: ${where} refused the manager's credentials (${name}). Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy.`, { cause });
  }
  const answered = status === undefined ? `no answer (${code ?? name})` : `HTTP ${status} (${name})`;
  return new ManagerError('BLOB_STORE_UNREACHABLE', `${what} failed: ${where} gave ${answered}. Check the endpoint, the network to it and the object store's health.`, { cause });
}
