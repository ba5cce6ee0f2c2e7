// What the suites of keys held outside drover (PKCS#11 tokens, AWS KMS) share: a failed command's
// code, `openssl pkeyutl -verify -rawin` of a raw Ed25519 signature, and the manager scenario in
// which such keys sign the update nonces and the audit log.

import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ed25519PublicKey, NONCE_PAYLOAD_TYPE, pae } from '@drover/protocol';
import type { EnrollResponse, UpdateCommand } from '@drover/protocol';
import { Pool } from 'undici';
import { expect } from 'vitest';
import { enrollBody } from '../../packages/manager/test/harness.js';
import { expectOk } from './cli.js';
import type { RunResult } from './cli.js';
import { ManagerProcess } from './manager-process.js';

/** Runs a tool (openssl, minisign) to completion; `status` null when it could not start. */
export function tool(command: string, args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  if (result.error !== undefined) return { status: null, stdout: '', stderr: String(result.error) };
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Writes `message` and `signature` into `dir` and has openssl verify them under the PEM public key `pubPath`. */
export async function opensslVerify(dir: string, pubPath: string, name: string, message: Uint8Array, signature: Uint8Array): Promise<{ status: number | null; stdout: string; stderr: string }> {
  await writeFile(join(dir, `${name}.bin`), message);
  await writeFile(join(dir, `${name}.sig`), signature);
  return tool('openssl', ['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', pubPath, '-in', `${name}.bin`, '-sigfile', `${name}.sig`], dir);
}

/** The stable code a failed `drover --json` printed. */
export function errorCode(result: RunResult): string {
  expect(result.code, result.stdout + result.stderr).toBe(1);
  return (JSON.parse(result.stdout) as { error: { code: string } }).error.code;
}

/** Every file under `dir`, recursively. */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

async function http(url: string, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; json: unknown }> {
  const pool = new Pool(url, { connections: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });
  try {
    const res = await pool.request({ method, path, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.body.text();
    return { status: res.statusCode, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
  } finally {
    await pool.close();
  }
}

/** The manager scenario's inputs: a manager directory made by `drover manager init` with external keys. */
export interface ExternalKeyManager {
  dir: string;
  mgr: string;
  env: NodeJS.ProcessEnv;
  enrollmentToken: string;
  /** PEM files (relative to `dir`) of the nonce and audit keys' public halves. */
  noncePubPath: string;
  auditPubPath: string;
  /** The `--key` a release is signed with (trusted by the manager's trust policy). */
  releaseKey: string;
  cli: (args: string[], env?: NodeJS.ProcessEnv) => Promise<RunResult>;
  /** Called once the update command is queued (its nonce signed), e.g. to count the signer's calls. */
  afterQueued?: () => void;
  /** Called with the manager's output once it stopped. */
  afterStop?: (output: string) => void;
}

/**
 * Starts the manager, enrolls a host (which must get the nonce key), signs and publishes a release,
 * queues an update whose nonce must verify under the nonce key (drover and openssl), stops the
 * manager, and verifies its audit log against signers.json (drover) and its last record (openssl).
 */
export async function runExternalKeyManager(m: ExternalKeyManager): Promise<void> {
  const { dir, mgr, env, cli } = m;
  const noncePub = Ed25519PublicKey.from(await readFile(join(dir, m.noncePubPath), 'utf8'));
  const auditPub = Ed25519PublicKey.from(await readFile(join(dir, m.auditPubPath), 'utf8'));
  const manager = await ManagerProcess.start(mgr, env);
  let stopped = false;
  try {
    const machineId = createHash('sha256').update(randomBytes(8)).digest('hex');
    const enrolled = await http(manager.url, 'POST', '/v1/agents/enroll', { 'x-machine-id': machineId }, enrollBody(m.enrollmentToken, machineId, { inventory: {} }));
    expect(enrolled.status).toBe(200);
    const agent = enrolled.json as EnrollResponse;
    expect(agent.managerKeys).toEqual([{ keyid: noncePub.keyid, publicKey: noncePub.toBase64() }]);

    // A release signed with the external key, published, and an update command whose nonce the manager key signs.
    await writeFile(join(dir, 'agent-1.1.0.tgz'), randomBytes(5000));
    expectOk(await cli(['release', 'sign', '--key', m.releaseKey, '--artifact', 'agent', '--version', '1.1.0', '--platform', 'linux-x64', 'agent-1.1.0.tgz']), 'sign 1.1.0');
    const deployToken = (await readFile(join(mgr, 'secrets/deploy.token'), 'utf8')).trim();
    const adminToken = (await readFile(join(mgr, 'secrets/admin.token'), 'utf8')).trim();
    expectOk(await cli(['release', 'publish', '--manager', manager.url, 'agent-1.1.0.tgz'], { ...env, DROVER_DEPLOY_TOKEN: deployToken }), 'publish');
    const queued = await http(manager.url, 'POST', `/v1/agents/${agent.agentId}/commands`, { authorization: `Bearer ${adminToken}` }, { artifact: 'agent', version: '1.1.0', deploymentId: 'dep-external-key' });
    expect(queued.status).toBe(201);
    m.afterQueued?.();
    const [payload = '', sig = ''] = (queued.json as UpdateCommand).nonce.split('.');
    const message = pae(NONCE_PAYLOAD_TYPE, Buffer.from(payload, 'base64url'));
    expect(noncePub.verify(message, Buffer.from(sig, 'base64url'))).toBe(true);
    const openssl = await opensslVerify(dir, m.noncePubPath, 'nonce', message, Buffer.from(sig, 'base64url'));
    expect(openssl.status, openssl.stderr).toBe(0);
    expect(await manager.stop()).toBe(0);
    stopped = true;
    m.afterStop?.(manager.output());
  } finally {
    if (!stopped) await manager.stop(1_000);
  }

  // The audit log, signed with the external audit key from init to the stop, verifies against signers.json.
  const signers = JSON.parse(await readFile(join(mgr, 'audit/signers.json'), 'utf8')) as { signers: { kid: string; publicKey: string }[] };
  expect(signers.signers).toEqual([expect.objectContaining({ kid: auditPub.keyid, publicKey: auditPub.toBase64() })]);
  const verified = expectOk(await cli(['audit', 'verify', '--signers', join(mgr, 'audit/signers.json'), join(mgr, 'audit/audit.jsonl')]), 'audit verify');
  expect(verified.stdout).toMatch(/^VERIFIED \d+ records/);
  const lines = (await readFile(join(mgr, 'audit/audit.jsonl'), 'utf8')).trim().split('\n');
  const last = JSON.parse(lines.at(-1) ?? '{}') as { event: string; hash: string; sig: string; kid: string };
  expect([last.event, last.kid]).toEqual(['manager.stopped', auditPub.keyid]);
  const openssl = await opensslVerify(dir, m.auditPubPath, 'audit', Buffer.from(last.hash, 'hex'), Buffer.from(last.sig, 'base64'));
  expect(openssl.status, openssl.stderr).toBe(0);
}
