// Artifacts in S3, end to end, on the real S3 server of scripts/services.sh: `drover manager init
// --blob-store s3://...` (credentials only in the environment), `drover manager start`, a signed
// release published with `drover release publish` into the bucket, and the built droverd updating
// from the SigV4 presigned URL its command carries, the bytes never passing through the manager.
// Then what must be refused: a command whose URL was tampered with, and one whose URL expired (the
// object store itself refuses both; droverd fails the update cleanly and v2 keeps running); a
// download through the manager is authorised first, then answered 307; and /readyz says 503 with
// a BLOB_STORE_* code while the bucket is missing or its endpoint unreachable.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import Database from 'better-sqlite3';
import { request } from 'undici';
import type { TrustPolicyDocument, UpdateCommand } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { drover, expectOk as ok } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';
import { DaemonProcess, createHostFor, destroyHost, droverd, releaseTree, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import type { CommandView } from '../helpers/manager-process.js';
import { skipWithoutServices, startServices } from '../helpers/services.js';
import type { S3Service, Services } from '../helpers/services.js';

const platform = `${process.platform}-${process.arch}`;
const skip = skipWithoutServices('the S3 releases suite', 's3');

describe.skipIf(skip)('releases with artifacts in S3 (drover manager init --blob-store s3://, droverd on presigned URLs)', () => {
  let services: Services | undefined;
  let s3: S3Service;
  let admin: S3Client | undefined;
  let root = '';
  let managerDir: string;
  let manager: ManagerProcess | undefined;
  let host: Host | undefined;
  let daemon: DaemonProcess | undefined;
  let adminToken: string;
  let deployToken: string;
  let agentId: string;
  let machineId: string;
  const daemons: DaemonProcess[] = [];
  const bucket = `drover-e2e-${randomBytes(4).toString('hex')}`;
  const cliEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
  let managerEnv: Record<string, string>;
  const at = (...parts: string[]): string => join(root, ...parts);

  const cli = (args: string[], env: Record<string, string> = {}): Promise<RunResult> => drover(args, { env: { ...cliEnv, ...env } });
  const auth = (): Record<string, string> => ({ authorization: `Bearer ${adminToken}` });
  const theManager = (): ManagerProcess => {
    if (manager === undefined) throw new Error('the manager is not running');
    return manager;
  };
  const theHost = (): Host => {
    if (host === undefined) throw new Error('the host was not created');
    return host;
  };
  const bucketClient = (): S3Client => {
    if (admin === undefined) throw new Error('the S3 server did not start');
    return admin;
  };

  async function signedRelease(version: string, bytes: Buffer): Promise<string> {
    const file = at('rel', version, 'agent.cjs');
    await mkdir(at('rel', version), { recursive: true });
    await writeFile(file, bytes);
    ok(await cli(['release', 'sign', '--key', at('keys', 'release.key'), '--artifact', 'agent', '--version', version, '--platform', platform, '--expires-in', '1d', file]), `release sign ${version}`);
    return file;
  }

  async function publish(version: string, bytes: Buffer): Promise<void> {
    ok(await cli(['release', 'publish', '--manager', theManager().url, await signedRelease(version, bytes)], { DROVER_DEPLOY_TOKEN: deployToken }), `release publish ${version}`);
  }

  async function queue(version: string, deploymentId: string): Promise<UpdateCommand> {
    const queued = await theManager().call('POST', `/v1/agents/${agentId}/commands`, auth(), { artifact: 'agent', version, deploymentId, drainTimeoutSeconds: 10 });
    expect(queued.status, JSON.stringify(queued.json)).toBe(201);
    return queued.json as UpdateCommand;
  }

  const finalOutcome = (commandId: string): Promise<CommandView> => theManager().finalOutcome(agentId, commandId, adminToken);

  async function bucketKeys(): Promise<string[]> {
    const listed = await bucketClient().send(new ListObjectsV2Command({ Bucket: bucket }));
    return (listed.Contents ?? []).map((o) => o.Key ?? '').sort();
  }

  async function readyz(): Promise<{ status: number; body: { error?: { code?: string } } }> {
    const response = await request(new URL('/readyz', theManager().url));
    return { status: response.statusCode, body: (await response.body.json()) as { error?: { code?: string } } };
  }

  /** Replaces a queued command's URL in the manager's database, as a forger between manager and host would. */
  function rewriteCommandUrl(commandId: string, url: string): void {
    const db = new Database(join(managerDir, 'manager.db'), { fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      const row = db.prepare('SELECT body_json FROM commands WHERE id = ?').get(commandId) as { body_json: string };
      const body = JSON.parse(row.body_json) as UpdateCommand;
      db.prepare('UPDATE commands SET body_json = ? WHERE id = ?').run(JSON.stringify({ ...body, url }), commandId);
    } finally {
      db.close();
    }
  }

  beforeAll(async () => {
    services = await startServices('s3');
    if (services.s3 === undefined) throw new Error('no S3 service');
    s3 = services.s3;
    admin = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    root = await mkdtemp(join(tmpdir(), 'drover-s3-releases-'));
    managerDir = at('m');
    // The credentials exist only in the manager's environment, as the AWS variables.
    managerEnv = { ...cliEnv, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };

    ok(await cli(['keygen', '--out', at('keys'), '--name', 'release']), 'keygen');
    ok(await cli(['trust', 'create', '--pub', at('keys', 'release.pub'), '--out', at('trust.json')]), 'trust create');
    const init = ok(
      await cli(
        ['manager', 'init', '--dir', managerDir, '--trust', at('trust.json'), '--seats', '2', '--blob-store', `s3://${bucket}/drover/artifacts`, '--s3-endpoint', s3.endpoint, '--s3-region', s3.region, '--s3-path-style', '--json'],
        managerEnv,
      ),
      'manager init --blob-store',
    );
    const created = JSON.parse(init.stdout) as { enrollmentToken: string; blobStore: string };
    expect(created.blobStore).toBe(`s3://${bucket}/drover/artifacts`);
    adminToken = (await readFile(join(managerDir, 'secrets', 'admin.token'), 'utf8')).trim();
    deployToken = (await readFile(join(managerDir, 'secrets', 'deploy.token'), 'utf8')).trim();
    const configPath = join(managerDir, 'manager.json');
    const configText = await readFile(configPath, 'utf8');
    const config = JSON.parse(configText) as { settings: Record<string, unknown>; blobStore: unknown };
    expect(config.blobStore).toEqual({ url: `s3://${bucket}/drover/artifacts`, endpoint: s3.endpoint, region: s3.region, pathStyle: true });
    expect(configText).not.toContain(s3.secretAccessKey);
    config.settings['checkinIntervalSeconds'] = 5;
    await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
    manager = await ManagerProcess.start(managerDir, managerEnv);

    machineId = createHash('sha256').update(randomBytes(16)).digest('hex');
    host = await createHostFor(
      { url: manager.url, managerKey: await readFile(join(managerDir, 'keys', 'manager.key.pub'), 'utf8'), trustPolicy: JSON.parse(await readFile(at('trust.json'), 'utf8')) as TrustPolicyDocument },
      { settings: { machineId, checkin: { backoffMaxSeconds: 2 } } },
    );
    const v1 = await signedRelease('1.0.0', await agentArtifact('1.0.0'));
    ok(await droverd(host, ['install', '--release', `${v1}.release.json`, v1, '--json']), 'droverd install 1.0.0');
    const pinned = (await readFile(join(managerDir, 'keys', 'manager.key.pub'), 'utf8')).trim();
    const enrolled = ok(await droverd(host, ['enroll', '--manager', manager.url, '--token', created.enrollmentToken, '--manager-key', pinned, '--json']), 'droverd enroll');
    agentId = (JSON.parse(enrolled.stdout) as { agentId: string }).agentId;
    daemon = new DaemonProcess(host);
    daemons.push(daemon);
    await waitForAgent(host, '1.0.0');
  }, 150_000);

  afterAll(async () => {
    if (host !== undefined) await destroyHost(host, daemons);
    if (manager !== undefined) await manager.stop();
    if (admin !== undefined) {
      for (const key of await bucketKeys().catch(() => [])) await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      await admin.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
      admin.destroy();
    }
    if (root !== '') await rm(root, { recursive: true, force: true });
    await services?.stop();
  }, 60_000);

  it('the manager is ready with its bucket, and never logs the secret', async () => {
    expect(await readyz()).toMatchObject({ status: 200 });
    expect(theManager().output()).not.toContain(s3.secretAccessKey);
  });

  it('v1 -> v2: published into the bucket as <prefix>/<sha256>, the command carries a presigned GET, droverd downloads from the bucket, verifies and commits', async () => {
    const h = theHost();
    const v2 = await agentArtifact('2.0.0');
    const sha = createHash('sha256').update(v2).digest('hex');
    await publish('2.0.0', v2);
    expect(await bucketKeys()).toEqual([`drover/artifacts/${sha}`]);
    // The manager's own disk holds no artifact.
    expect(await readdir(join(managerDir, 'blobs')).catch(() => [])).toEqual([]);

    const command = await queue('2.0.0', 'dep-v2');
    const url = new URL(command.url);
    expect(`${url.origin}${url.pathname}`).toBe(`${s3.endpoint}/${bucket}/drover/artifacts/${sha}`);
    expect(url.searchParams.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    // Valid until the command's deadline (an hour by default), not longer.
    expect(url.searchParams.get('X-Amz-Expires')).toBe('3600');
    expect(command.url).not.toContain(s3.secretAccessKey);

    expect(await finalOutcome(command.id)).toMatchObject({ outcome: 'succeeded' });
    await waitForAgent(h, '2.0.0');
    expect(await readFile(join(h.stateDir, 'releases', 'agent', '2.0.0', 'agent.cjs'))).toEqual(v2);
    // droverd went to the bucket, not to the manager's download route.
    expect(theManager().output()).not.toContain('/v1/download/agent/2.0.0');
    const audit = await readFile(join(managerDir, 'audit', 'audit.jsonl'), 'utf8');
    expect(audit).not.toContain('download.refused');
  }, 60_000);

  it('GET /v1/download authorises as before, then answers 307 to a short-lived presigned URL serving the bytes', async () => {
    const v2 = await agentArtifact('2.0.0');
    const path = `/v1/download/agent/2.0.0/${platform}`;
    const anonymous = await request(new URL(path, theManager().url));
    expect(anonymous.statusCode).toBe(401);
    expect(((await anonymous.body.json()) as { error: { code: string } }).error.code).toBe('DOWNLOAD_UNAUTHORIZED');

    const { credential } = JSON.parse(await readFile(join(theHost().stateDir, 'credentials.json'), 'utf8')) as { credential: string };
    const wrongMachine = await request(new URL(path, theManager().url), { headers: { authorization: `Bearer ${credential}`, 'x-machine-id': '0'.repeat(64) } });
    expect(wrongMachine.statusCode).toBe(403);
    await wrongMachine.body.dump();

    const redirected = await request(new URL(path, theManager().url), { headers: { authorization: `Bearer ${credential}`, 'x-machine-id': machineId } });
    expect(redirected.statusCode).toBe(307);
    await redirected.body.dump();
    const location = String(redirected.headers['location']);
    expect(new URL(location).searchParams.get('X-Amz-Expires')).toBe('300');
    expect(redirected.headers['cache-control']).toBe('no-store');
    const ranged = await request(location, { headers: { range: 'bytes=10-19' } });
    expect(ranged.statusCode).toBe(206);
    expect(Buffer.from(await ranged.body.arrayBuffer())).toEqual(v2.subarray(10, 20));
  });

  it('a command whose presigned URL was tampered with, or has expired, is refused by the object store; droverd fails the update cleanly and v2 keeps running', async () => {
    const h = theHost();
    await publish('3.0.0', await agentArtifact('3.0.0'));
    const tree = await releaseTree(h);
    const sha3 = createHash('sha256').update(await agentArtifact('3.0.0')).digest('hex');

    for (const variant of ['tampered', 'expired'] as const) {
      // Held back from the host while the URL is changed: droverd is stopped, then started again.
      await daemon?.stop();
      const command = await queue('3.0.0', `dep-v3-${variant}`);
      let url: string;
      if (variant === 'tampered') {
        url = command.url.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
      } else {
        // Signed with the manager's own credentials an hour ago, for 60 s: authentic, and expired.
        url = await getSignedUrl(bucketClient(), new GetObjectCommand({ Bucket: bucket, Key: `drover/artifacts/${sha3}` }), { expiresIn: 60, signingDate: new Date(Date.now() - 3600_000) });
      }
      expect(url).not.toBe(command.url);
      rewriteCommandUrl(command.id, url);
      const running = new DaemonProcess(h);
      daemon = running;
      daemons.push(running);
      const recorded = await finalOutcome(command.id);
      expect(recorded, variant).toMatchObject({ outcome: 'failed', outcomeDetail: { code: 'DOWNLOAD_FAILED' } });
      expect(recorded.outcomeDetail?.message).toContain('403');
      // The restarted droverd starts the agent it has: v2, healthy.
      expect(await waitForAgent(h, '2.0.0')).toMatchObject({ status: 'healthy', version: '2.0.0' });
      // Never staged nor swapped: the update stopped at its download.
      const steps = running.lines.filter((line) => line['commandId'] === command.id).map((line) => line.step);
      expect(steps).toContain('downloading');
      expect(steps).not.toContain('staged');
      expect(await releaseTree(h)).toEqual(tree);
      expect(await readdir(join(h.stateDir, 'staging'))).toEqual([]);
    }
  }, 90_000);

  it('/readyz answers 503 BLOB_STORE_BUCKET_NOT_FOUND while the bucket is gone, and is ready again once it is back', async () => {
    const kept = await bucketKeys();
    const saved = new Map<string, Buffer>();
    for (const key of kept) {
      const object = await bucketClient().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      saved.set(key, Buffer.from(await (object.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()));
      await bucketClient().send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    }
    await bucketClient().send(new DeleteBucketCommand({ Bucket: bucket }));
    try {
      const down = await readyz();
      expect(down).toMatchObject({ status: 503, body: { error: { code: 'BLOB_STORE_BUCKET_NOT_FOUND' } } });
      const healthz = await request(new URL('/healthz', theManager().url));
      expect(healthz.statusCode).toBe(200);
      await healthz.body.dump();
    } finally {
      await bucketClient().send(new CreateBucketCommand({ Bucket: bucket }));
      for (const [key, body] of saved) await bucketClient().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    }
    expect(await readyz()).toMatchObject({ status: 200 });
  }, 30_000);

  it('/readyz answers 503 BLOB_STORE_UNREACHABLE when DROVER_S3_ENDPOINT (over manager.json) names an endpoint that does not answer, and 503 BLOB_STORE_ACCESS_DENIED with a wrong secret', async () => {
    const port = Number(new URL(theManager().url).port);
    expect(await theManager().stop()).toBe(0);
    manager = undefined;
    manager = await ManagerProcess.start(managerDir, { ...managerEnv, DROVER_S3_ENDPOINT: 'http://127.0.0.1:9' }, port);
    expect(await readyz()).toMatchObject({ status: 503, body: { error: { code: 'BLOB_STORE_UNREACHABLE' } } });
    expect(await theManager().stop()).toBe(0);
    manager = undefined;
    const wrong = 'wrong-secret-0123456789abcdef';
    manager = await ManagerProcess.start(managerDir, { ...managerEnv, AWS_SECRET_ACCESS_KEY: wrong }, port);
    expect(await readyz()).toMatchObject({ status: 503, body: { error: { code: 'BLOB_STORE_ACCESS_DENIED' } } });
    expect(theManager().output()).not.toContain(wrong);
    expect(await theManager().stop()).toBe(0);
    manager = await ManagerProcess.start(managerDir, managerEnv, port);
    expect(await readyz()).toMatchObject({ status: 200 });
  }, 60_000);
});
