// `awskms:` key names: what `--key awskms:...` and manager.json accept, and where the key's region
// and endpoint come from. A name is the KeyId that KMS itself takes (a key id, an alias, or the
// ARN of either), so what an operator copies from the AWS console works unchanged. The form
// `awskms://HOST/KEY` (cosign's) is accepted too: HOST is then the endpoint, over HTTPS.

import { ManagerError } from '../errors.js';

/** A parsed `awskms:` name. */
export interface KmsKeyName {
  /** The KeyId sent to KMS: key id, `alias/NAME`, or an ARN. */
  keyId: string;
  /** The region: the ARN's, else AWS_REGION, else AWS_DEFAULT_REGION. */
  region: string;
  /** An endpoint other than AWS's (DROVER_KMS_ENDPOINT, AWS_ENDPOINT_URL_KMS, or the name's HOST). */
  endpoint?: string;
}

const PREFIX = 'awskms:';
const KEY_ID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;
const ALIAS = /^alias\/[a-zA-Z0-9/_-]{1,250}$/;
const ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:(?:key\/(?:[0-9a-f-]{36}|mrk-[0-9a-f]{32})|alias\/[a-zA-Z0-9/_-]{1,250})$/;
const HOST = /^[a-zA-Z0-9.-]+(?::\d{1,5})?$/;

/** True when a key is named as a key in AWS KMS (`awskms:...`). */
export function isKmsKeyName(spec: string): boolean {
  return spec.toLowerCase().startsWith(PREFIX);
}

/**
 * Parses `awskms:KEY`, `awskms:///KEY` or `awskms://HOST/KEY`, KEY being a key id, `alias/NAME` or
 * an ARN; the region and endpoint come from the ARN, the name and `env`.
 *
 * @throws ManagerError `KMS_KEY_NAME_INVALID`, `KMS_REGION_MISSING`
 */
export function parseKmsKeyName(spec: string, env: Record<string, string | undefined>): KmsKeyName {
  if (!isKmsKeyName(spec)) throw invalid(spec);
  let rest = spec.slice(PREFIX.length);
  let hostEndpoint: string | undefined;
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    if (slash === -1) throw invalid(spec);
    const host = rest.slice(2, slash);
    if (host !== '') {
      if (!HOST.test(host)) throw invalid(spec);
      hostEndpoint = `https://${host}`;
    }
    rest = rest.slice(slash + 1);
  }
  const arn = ARN.exec(rest);
  if (arn === null && !KEY_ID.test(rest) && !ALIAS.test(rest)) throw invalid(spec);
  const region = arn?.[1] ?? nonEmpty(env['AWS_REGION']) ?? nonEmpty(env['AWS_DEFAULT_REGION']);
  if (region === undefined) {
    throw new ManagerError('KMS_REGION_MISSING', `The region of ${spec} is unknown. Set AWS_REGION, or name the key by its ARN (arn:aws:kms:REGION:ACCOUNT:key/ID).`);
  }
  const endpoint = nonEmpty(env['DROVER_KMS_ENDPOINT']) ?? nonEmpty(env['AWS_ENDPOINT_URL_KMS']) ?? hostEndpoint;
  if (endpoint !== undefined && !/^https?:\/\/[^/@\s]+\/?$/.test(endpoint)) {
    throw new ManagerError('KMS_KEY_NAME_INVALID', 'The KMS endpoint (DROVER_KMS_ENDPOINT or AWS_ENDPOINT_URL_KMS) must be an http(s) URL of a host, without a path or credentials.');
  }
  return { keyId: rest, region, ...(endpoint === undefined ? {} : { endpoint }) };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function invalid(spec: string): ManagerError {
  // The name is not a secret: KMS key ids, aliases and ARNs are identifiers.
  return new ManagerError('KMS_KEY_NAME_INVALID', `${JSON.stringify(spec.slice(0, 300))} is not an AWS KMS key name. Write it as awskms:KEY_ID, awskms:alias/NAME or awskms:arn:aws:kms:REGION:ACCOUNT:key/ID.`);
}
