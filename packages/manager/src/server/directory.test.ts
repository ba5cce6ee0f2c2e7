import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DroverError } from '@drover/protocol';
import { generateFernetKey } from '@drover/protocol/internal';
import { ManagerError } from '../errors.js';
import { initManagerDirectory } from './init.js';
import { createManagerLogger } from '../logger.js';
import { readManagerDirectory } from './directory.js';

let dir: string;
let lines: { event?: string; path?: string }[];
const logger = (): ReturnType<typeof createManagerLogger> =>
  createManagerLogger({
    destination: new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString('utf8')) as { event?: string });
        done();
      },
    }),
  });

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-manager-dir-'));
  lines = [];
  await initManagerDirectory({ dir, env: {} });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readManagerDirectory', () => {
  it('reads what `drover manager init` wrote: paths under the directory, tokens one a line, the key file', async () => {
    await writeFile(join(dir, 'secrets', 'admin.token'), 'new-token\n  old-token  \n\n', { mode: 0o600 });
    const { config, options } = await readManagerDirectory(dir, { env: {}, logger: logger() });
    expect(config.schema).toBe('drover.manager/v1');
    expect(options).toMatchObject({
      databasePath: join(dir, 'manager.db'),
      managerKeyPath: join(dir, 'keys', 'manager.key'),
      adminTokens: ['new-token', 'old-token'],
      deployTokens: [(await readFile(join(dir, 'secrets', 'deploy.token'), 'utf8')).trim()],
      encryptionKey: (await readFile(join(dir, 'secrets', 'encryption.key'), 'utf8')).trim(),
      trustPolicy: undefined,
      env: {},
    });
  });

  it('reads the metrics token init wrote (0600, named in manager.json); a directory without one has none, quietly', async () => {
    const file = join(dir, 'secrets', 'metrics.token');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const config = JSON.parse(await readFile(join(dir, 'manager.json'), 'utf8')) as { paths: Record<string, string> };
    expect(config.paths['metricsTokens']).toBe('secrets/metrics.token');
    const token = (await readFile(file, 'utf8')).trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await readManagerDirectory(dir, { env: {}, logger: logger() })).options.metricsTokens).toEqual([token]);
    // A directory made before metrics: no paths.metricsTokens, no file.
    delete config.paths['metricsTokens'];
    await writeFile(join(dir, 'manager.json'), JSON.stringify(config));
    await unlink(file);
    expect((await readManagerDirectory(dir, { env: {}, logger: logger() })).options.metricsTokens).toEqual([]);
    expect(lines.filter((line) => line.event === 'config.token_file_missing')).toEqual([]);
  });

  it('leaves the encryption key to the environment when it names one', async () => {
    const { options } = await readManagerDirectory(dir, { env: { DROVER_ENCRYPTION_KEY: generateFernetKey() }, logger: logger() });
    expect(options.encryptionKey).toBeUndefined();
  });

  it('reads a missing token file as no tokens, and says so in the log', async () => {
    await unlink(join(dir, 'secrets', 'deploy.token'));
    const { options } = await readManagerDirectory(dir, { env: {}, logger: logger() });
    expect(options.deployTokens).toEqual([]);
    expect(lines).toContainEqual(expect.objectContaining({ event: 'config.token_file_missing', path: join(dir, 'secrets', 'deploy.token') }));
  });

  it('refuses a trust policy that is not JSON (CONFIG_INVALID), and no encryption key at all (ENCRYPTION_KEY_MISSING)', async () => {
    await writeFile(join(dir, 'trust.json'), '{ not json');
    const broken = readManagerDirectory(dir, { env: {}, logger: logger() });
    await expect(broken).rejects.toBeInstanceOf(ManagerError);
    await expect(broken).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await unlink(join(dir, 'trust.json'));
    await unlink(join(dir, 'secrets', 'encryption.key'));
    const keyless = readManagerDirectory(dir, { env: {}, logger: logger() });
    await expect(keyless).rejects.toBeInstanceOf(DroverError);
    await expect(keyless).rejects.toMatchObject({ code: 'ENCRYPTION_KEY_MISSING' });
  });
});
