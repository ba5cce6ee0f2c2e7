import { describe, expect, it } from 'vitest';
import { expectError } from '../../../../test/helpers/expect-error.js';
import { ManagerError } from '../errors.js';
import { credentialsFromEnv, parseS3Url, resolveBlobStoreConfig } from './s3-config.js';

describe('the S3 blob store configuration', () => {
  it('parses s3://bucket[/prefix] into a bucket and a prefix without slashes at either end', () => {
    expect(parseS3Url('s3://artifacts')).toEqual({ bucket: 'artifacts', prefix: '' });
    expect(parseS3Url('s3://artifacts/drover/prod/')).toEqual({ bucket: 'artifacts', prefix: 'drover/prod' });
    expectError(() => parseS3Url('https://artifacts/x'), ManagerError, 'BLOB_STORE_INVALID');
    expectError(() => parseS3Url('s3://artifacts/x?versionId=1'), ManagerError, 'BLOB_STORE_INVALID');
  });

  it('takes manager.json, with DROVER_BLOB_STORE and DROVER_S3_* over it; fs or nothing is the filesystem', () => {
    const file = { url: 's3://from-file/p', endpoint: 'http://file.example:9000', region: 'eu-west-1', pathStyle: false };
    expect(resolveBlobStoreConfig(undefined, {})).toBeUndefined();
    expect(resolveBlobStoreConfig(file, { DROVER_BLOB_STORE: 'fs' })).toBeUndefined();
    expect(resolveBlobStoreConfig(file, {})).toMatchObject({ url: 's3://from-file/p', bucket: 'from-file', prefix: 'p', endpoint: 'http://file.example:9000', region: 'eu-west-1', pathStyle: false });
    expect(
      resolveBlobStoreConfig(file, {
        DROVER_BLOB_STORE: 's3://from-env/q',
        DROVER_S3_ENDPOINT: 'https://env.example/',
        DROVER_S3_REGION: 'auto',
        DROVER_S3_PATH_STYLE: 'true',
        DROVER_S3_DOWNLOAD_ENDPOINT: 'https://cdn.example',
        AWS_REGION: 'us-west-2',
      }),
    ).toMatchObject({ bucket: 'from-env', prefix: 'q', endpoint: 'https://env.example', region: 'auto', pathStyle: true, downloadEndpoint: 'https://cdn.example' });
    // AWS_REGION only when neither the file nor DROVER_S3_REGION names one.
    expect(resolveBlobStoreConfig(undefined, { DROVER_BLOB_STORE: 's3://b-1', AWS_REGION: 'us-west-2' })).toMatchObject({ region: 'us-west-2' });
    expectError(() => resolveBlobStoreConfig(undefined, { DROVER_BLOB_STORE: 'minio://x' }), ManagerError, 'BLOB_STORE_INVALID');
    expectError(() => resolveBlobStoreConfig(file, { DROVER_S3_PATH_STYLE: 'maybe' }), ManagerError, 'BLOB_STORE_INVALID');
  });

  it('reads credentials from the AWS variables only when both halves are set, else leaves them to the SDK chain', () => {
    expect(credentialsFromEnv({})).toBeUndefined();
    expect(credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'id' })).toBeUndefined();
    expect(credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret' })).toEqual({ accessKeyId: 'id', secretAccessKey: 'secret' });
    expect(credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret', AWS_SESSION_TOKEN: 't' })).toEqual({ accessKeyId: 'id', secretAccessKey: 'secret', sessionToken: 't' });
  });
});
