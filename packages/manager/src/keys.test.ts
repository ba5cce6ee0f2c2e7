import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey } from '@drover/protocol';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { ManagerError } from './errors.js';
import { loadSigningKey, readSecretFile } from './keys.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-keys-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadSigningKey', () => {
  it('loads a PEM key file', async () => {
    const key = Ed25519PrivateKey.generate();
    await writeFile(join(dir, 'k.pem'), key.toPem(), { mode: 0o600 });
    const loaded = await loadSigningKey(join(dir, 'k.pem'), 'audit key', { env: {} });
    expect(loaded).toMatchObject({ ephemeral: false });
    expect(loaded.key.keyid).toBe(key.keyid);
  });

  it('refuses to run without a key file unless DEV_ALLOW_EPHEMERAL=true', async () => {
    await expectRejection(loadSigningKey(undefined, 'audit key', { env: {} }), ManagerError, 'KEY_FILE_MISSING');
    await expectRejection(loadSigningKey(undefined, 'audit key', { env: { DEV_ALLOW_EPHEMERAL: '1' } }), ManagerError, 'KEY_FILE_MISSING');
    await expectRejection(loadSigningKey(join(dir, 'missing.pem'), 'audit key', { env: { DEV_ALLOW_EPHEMERAL: 'true' } }), ManagerError, 'KEY_FILE_MISSING');
    const ephemeral = await loadSigningKey(undefined, 'audit key', { env: { DEV_ALLOW_EPHEMERAL: 'true' } });
    expect(ephemeral.ephemeral).toBe(true);
  });

  it('warns about a key file other users can read', async () => {
    const warnings: unknown[] = [];
    await writeFile(join(dir, 'open.pem'), Ed25519PrivateKey.generate().toPem());
    await chmod(join(dir, 'open.pem'), 0o644);
    const logger = { warn: (obj: unknown) => warnings.push(obj) } as unknown as Parameters<typeof loadSigningKey>[2]['logger'];
    await loadSigningKey(join(dir, 'open.pem'), 'manager signing key', { env: {}, logger });
    expect(warnings).toEqual([expect.objectContaining({ event: 'key.permissions', mode: '644' })]);
  });

  it('reads secret files trimmed, and names a missing one', async () => {
    await writeFile(join(dir, 'token'), 'abc\n');
    expect(await readSecretFile(join(dir, 'token'), 'admin token')).toBe('abc');
    expect(await readSecretFile(undefined, 'admin token')).toBeUndefined();
    await expectRejection(readSecretFile(join(dir, 'nope'), 'admin token'), ManagerError, 'KEY_FILE_MISSING');
  });
});
