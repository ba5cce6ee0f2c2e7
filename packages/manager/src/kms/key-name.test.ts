import { describe, expect, it } from 'vitest';
import { expectError } from '../../../../test/helpers/expect-error.js';
import { ManagerError } from '../errors.js';
import { isKmsKeyName, parseKmsKeyName } from './key-name.js';

const KEY_ID = '1234abcd-12ab-34cd-56ef-1234567890ab';
const env = { AWS_REGION: 'eu-central-1' };

describe('awskms: key names', () => {
  it('takes a key id, an alias, a key or alias ARN, and the awskms:/// form; the region from the ARN over AWS_REGION', () => {
    expect(parseKmsKeyName(`awskms:${KEY_ID}`, env)).toEqual({ keyId: KEY_ID, region: 'eu-central-1' });
    expect(parseKmsKeyName('awskms:alias/drover/release-2026', env)).toEqual({ keyId: 'alias/drover/release-2026', region: 'eu-central-1' });
    expect(parseKmsKeyName(`awskms:arn:aws:kms:us-east-2:111122223333:key/${KEY_ID}`, env)).toEqual({ keyId: `arn:aws:kms:us-east-2:111122223333:key/${KEY_ID}`, region: 'us-east-2' });
    expect(parseKmsKeyName('awskms:arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/rel', {})).toMatchObject({ region: 'us-gov-west-1' });
    expect(parseKmsKeyName(`awskms:///${KEY_ID}`, env)).toEqual({ keyId: KEY_ID, region: 'eu-central-1' });
    expect(parseKmsKeyName('awskms:mrk-1234abcd12ab34cd56ef1234567890ab', { AWS_DEFAULT_REGION: 'ap-south-1' })).toMatchObject({ region: 'ap-south-1' });
    expect(isKmsKeyName('AWSKMS:alias/x')).toBe(true);
    expect(isKmsKeyName('pkcs11:token=t')).toBe(false);
  });

  it('the endpoint from DROVER_KMS_ENDPOINT, AWS_ENDPOINT_URL_KMS or awskms://HOST/ (HTTPS)', () => {
    expect(parseKmsKeyName('awskms:alias/a', { ...env, DROVER_KMS_ENDPOINT: 'http://127.0.0.1:4566', AWS_ENDPOINT_URL_KMS: 'https://other' })).toMatchObject({ endpoint: 'http://127.0.0.1:4566' });
    expect(parseKmsKeyName('awskms:alias/a', { ...env, AWS_ENDPOINT_URL_KMS: 'https://kms-fips.us-east-1.amazonaws.com' })).toMatchObject({ endpoint: 'https://kms-fips.us-east-1.amazonaws.com' });
    expect(parseKmsKeyName('awskms://vpce-1.kms.eu-central-1.vpce.amazonaws.com/alias/a', env)).toMatchObject({ endpoint: 'https://vpce-1.kms.eu-central-1.vpce.amazonaws.com', keyId: 'alias/a' });
  });

  it('refuses what KMS would not take as a KeyId, an endpoint with credentials or a path, and a name without a region', () => {
    for (const name of ['awskms:', 'awskms:not-a-key', 'awskms:alias/', 'awskms:alias/a b', 'awskms:arn:aws:s3:::bucket', 'awskms://', 'awskms://user:pw@host/alias/a', 'pkcs11:token=a']) {
      expectError(() => parseKmsKeyName(name, env), ManagerError, 'KMS_KEY_NAME_INVALID');
    }
    expectError(() => parseKmsKeyName('awskms:alias/a', { ...env, DROVER_KMS_ENDPOINT: 'https://user:secret@host' }), ManagerError, 'KMS_KEY_NAME_INVALID');
    expectError(() => parseKmsKeyName('awskms:alias/a', { ...env, DROVER_KMS_ENDPOINT: 'https://host/path' }), ManagerError, 'KMS_KEY_NAME_INVALID');
    expectError(() => parseKmsKeyName('awskms:alias/a', {}), ManagerError, 'KMS_REGION_MISSING');
    expectError(() => parseKmsKeyName('awskms:alias/a', { AWS_REGION: '  ' }), ManagerError, 'KMS_REGION_MISSING');
  });
});
