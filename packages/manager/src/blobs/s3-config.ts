import { ManagerError } from '../errors.js';

// Where an S3 blob store is and how to reach it: `s3://bucket/prefix`, an endpoint (AWS by default;
// Cloudflare R2, MinIO, Swift's s3api...), a region, path-style addressing, and a public endpoint
// for the presigned URLs hosts download from. Credentials are never part of this: they come from
// the AWS variables (AWS_ACCESS_KEY_ID, ...) or the SDK's credential chain, and never reach
// manager.json, a log line or an error message.

/** An S3-compatible bucket for artifact bytes: what manager.json's `blobStore` and `drover manager init --blob-store` hold. */
export interface S3BlobStoreConfig {
  /** `s3://bucket` or `s3://bucket/prefix`: objects are `<prefix>/<sha256>`. */
  url: string;
  /** The S3 API endpoint, e.g. `https://<account>.r2.cloudflarestorage.com` or `http://minio:9000`; default AWS's for the region. */
  endpoint?: string | undefined;
  /** The signing region (default `DROVER_S3_REGION`, `AWS_REGION`, else `us-east-1`; R2 takes `auto`). */
  region?: string | undefined;
  /** Address buckets as `<endpoint>/<bucket>` rather than `<bucket>.<host>` (MinIO, Swift, most self-hosted servers). */
  pathStyle?: boolean | undefined;
  /** The endpoint presigned download URLs name, when hosts reach the bucket at another address than the manager does. */
  downloadEndpoint?: string | undefined;
}

/** The bucket and key prefix an `s3://` URL names. */
export interface S3Location {
  bucket: string;
  /** '' or a prefix without leading or trailing slashes. */
  prefix: string;
}

// Bucket names as S3, R2 and MinIO allow them (3-63 of lowercase letters, digits, dots, hyphens);
// underscores too, which older regions and self-hosted servers accept.
const BUCKET = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;
const PREFIX_SEGMENT = /^[A-Za-z0-9._=+-]{1,256}$/;
const REGION = /^[a-z0-9-]{1,64}$/;

function invalid(message: string): ManagerError {
  return new ManagerError('BLOB_STORE_INVALID', message);
}

/**
 * Parses `s3://bucket[/prefix]`. The text is never repeated in the error: someone may have pasted
 * credentials into it.
 */
export function parseS3Url(url: string): S3Location {
  const match = /^s3:\/\/([^/?#]*)((?:\/[^?#]*)?)$/.exec(url);
  if (match === null) throw invalid('The blob store must be `fs` or an `s3://BUCKET[/PREFIX]` URL (without a query, and without credentials: those come from AWS_ACCESS_KEY_ID and friends).');
  const [, bucket = '', path = ''] = match;
  if (bucket.includes('@') || bucket.includes(':')) throw invalid('An s3:// blob store URL carries no credentials or port: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and the endpoint with --s3-endpoint.');
  if (!BUCKET.test(bucket)) throw invalid('The bucket of the s3:// blob store URL is not a valid bucket name (3-63 lowercase letters, digits, dots and hyphens).');
  const segments = path.split('/').filter((segment) => segment !== '');
  if (segments.some((segment) => !PREFIX_SEGMENT.test(segment) || segment === '.' || segment === '..')) {
    throw invalid('The prefix of the s3:// blob store URL has a segment that is empty, `.` or `..`, or holds characters other than letters, digits and `._=+-`.');
  }
  return { bucket, prefix: segments.join('/') };
}

function checkEndpoint(value: string | undefined, what: string): string | undefined {
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`${what} is not a URL; give one such as https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid(`${what} must be an http(s) URL.`);
  if (url.username !== '' || url.password !== '') throw invalid(`${what} must not carry credentials: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY instead.`);
  if (url.search !== '' || url.hash !== '') throw invalid(`${what} must not have a query or a fragment.`);
  return url.toString().replace(/\/+$/, '');
}

/** Checks an S3 blob store configuration; returns it normalized (endpoints without a trailing slash). Throws BLOB_STORE_INVALID. */
export function checkS3Config(config: S3BlobStoreConfig): S3BlobStoreConfig & S3Location {
  const location = parseS3Url(config.url);
  if (config.region !== undefined && !REGION.test(config.region)) throw invalid('The S3 region must be lowercase letters, digits and hyphens (e.g. us-east-1, or auto for R2).');
  const endpoint = checkEndpoint(config.endpoint, 'The S3 endpoint');
  const downloadEndpoint = checkEndpoint(config.downloadEndpoint, 'The S3 download endpoint');
  return {
    url: `s3://${location.bucket}${location.prefix === '' ? '' : `/${location.prefix}`}`,
    ...location,
    ...(endpoint === undefined ? {} : { endpoint }),
    ...(config.region === undefined ? {} : { region: config.region }),
    ...(config.pathStyle === undefined ? {} : { pathStyle: config.pathStyle }),
    ...(downloadEndpoint === undefined ? {} : { downloadEndpoint }),
  };
}

function parseBoolean(value: string, name: string): boolean {
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw invalid(`${name} takes true or false.`);
}

const nonEmpty = (value: string | undefined): string | undefined => (value === undefined || value.trim() === '' ? undefined : value.trim());

/**
 * The blob store the environment asks for, over what manager.json says: `DROVER_BLOB_STORE`
 * (`fs`, or `s3://bucket/prefix`), `DROVER_S3_ENDPOINT`, `DROVER_S3_REGION` (else `AWS_REGION`),
 * `DROVER_S3_PATH_STYLE` (true/false), `DROVER_S3_DOWNLOAD_ENDPOINT`. Undefined: the filesystem store.
 */
export function resolveBlobStoreConfig(fromFile: S3BlobStoreConfig | undefined, env: Record<string, string | undefined>): S3BlobStoreConfig | undefined {
  const chosen = nonEmpty(env['DROVER_BLOB_STORE']);
  if (chosen === 'fs') return undefined;
  if (chosen === undefined && fromFile === undefined) return undefined;
  const pathStyle = nonEmpty(env['DROVER_S3_PATH_STYLE']);
  const config: S3BlobStoreConfig = {
    ...fromFile,
    url: chosen ?? fromFile?.url ?? '',
  };
  const endpoint = nonEmpty(env['DROVER_S3_ENDPOINT']);
  const region = nonEmpty(env['DROVER_S3_REGION']) ?? config.region ?? nonEmpty(env['AWS_REGION']);
  const downloadEndpoint = nonEmpty(env['DROVER_S3_DOWNLOAD_ENDPOINT']);
  if (endpoint !== undefined) config.endpoint = endpoint;
  if (region !== undefined) config.region = region;
  if (pathStyle !== undefined) config.pathStyle = parseBoolean(pathStyle, 'DROVER_S3_PATH_STYLE');
  if (downloadEndpoint !== undefined) config.downloadEndpoint = downloadEndpoint;
  return checkS3Config(config);
}

/** Credentials the environment names explicitly (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]); else the SDK's chain finds them. */
export function credentialsFromEnv(env: Record<string, string | undefined>): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined {
  const accessKeyId = nonEmpty(env['AWS_ACCESS_KEY_ID']);
  const secretAccessKey = nonEmpty(env['AWS_SECRET_ACCESS_KEY']);
  if (accessKeyId === undefined || secretAccessKey === undefined) return undefined;
  const sessionToken = nonEmpty(env['AWS_SESSION_TOKEN']);
  return { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) };
}
