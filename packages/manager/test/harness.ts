// A real manager on 127.0.0.1:0 over a real SQLite file in a temp dir, with every log line
// captured and every secret it hands out remembered, so tests can search for leaks.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type Database from 'better-sqlite3';
import { Pool } from 'undici';
import {
  Ed25519PrivateKey,
  createReleasePayload,
  ed25519AuditSigner,
  generateServiceToken,
  parseAuditSigners,
  signRelease,
  verifyAuditLog,
  trustPolicyDocument,
} from '@drover/protocol';
import { generateFernetKey } from '@drover/protocol/internal';
import type { AuditRecord, AuditVerification, DsseEnvelope, EnrollResponse, Inventory } from '@drover/protocol';
import { createManagerLogger } from '../src/logger.js';
import { createManager } from '../src/server/create.js';
import type { CreateManagerOptions, ManagerServer } from '../src/server/create.js';

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: unknown;
}

/** The members of an error body's `error` (empty when the body has none). */
export function errorOf(res: HttpResult): Record<string, unknown> {
  const error = (res.json as { error?: unknown } | undefined)?.error;
  return typeof error === 'object' && error !== null ? (error as Record<string, unknown>) : {};
}

/** [status, error code]: what a refusal is asserted by. */
export function refusal(res: HttpResult): [number, unknown] {
  return [res.status, errorOf(res)['code']];
}

/** The commands of a check-in answer. */
export function commandsOf(res: HttpResult): unknown[] {
  return (res.json as { commands?: unknown[] } | undefined)?.commands ?? [];
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  json?: unknown;
}

export interface EnrolledAgent extends EnrollResponse {
  machineId: string;
}

export interface TestManager {
  app: ManagerServer;
  url: string;
  dir: string;
  adminToken: string;
  deployToken: string;
  releaseKey: Ed25519PrivateKey;
  auditKey: Ed25519PrivateKey;
  managerKey: Ed25519PrivateKey;
  encryptionKey: string;
  /** Every log line the manager wrote. */
  logs: string[];
  /** Every secret handed out or used in the run (tokens, credentials, keys). */
  secrets: Set<string>;
  request(method: string, path: string, options?: RequestOptions): Promise<HttpResult>;
  createEnrollmentToken(seats?: number, expiresInSeconds?: number): Promise<string>;
  enroll(options?: { token?: string; machineId?: string; agentVersion?: string; daemonVersion?: string }): Promise<EnrolledAgent>;
  checkin(agent: EnrolledAgent, options?: { body?: Record<string, unknown>; headers?: Record<string, string>; agentVersion?: string; daemonVersion?: string; machineId?: string }): Promise<HttpResult>;
  publish(options: { artifact?: string; version: string; platform?: string; bytes?: Uint8Array; keys?: Ed25519PrivateKey[]; channel?: string }): Promise<{ envelope: DsseEnvelope; bytes: Uint8Array }>;
  /** The audit log's records, parsed. */
  auditRecords(): Promise<AuditRecord[]>;
  /** Verifies the audit log against signers.json. */
  verifyAudit(): Promise<AuditVerification>;
  /** The secrets found in the audit log, the database-free state files and the log lines (should be none). */
  leakedSecrets(): Promise<string[]>;
  /** Stops this manager (keeping its directory) and starts it again on a new port. */
  restart(): Promise<TestManager>;
  close(): Promise<void>;
}

export const inventory: Inventory = { os: { platform: 'linux', distro: 'Debian', release: '12' }, cpu: { cores: 2 } };

export function machineId(): string {
  return createHash('sha256').update(randomBytes(16)).digest('hex');
}

/** A valid enrollment request body; `overrides` replaces any field. */
export function enrollBody(enrollmentToken: string, id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { enrollmentToken, machineId: id, hostname: 'web-1', platform: 'linux-x64', arch: 'x64', agentVersion: '1.0.0', daemonVersion: '0.5.0', inventory, ...overrides };
}

export function checkinBody(agentVersion = '1.0.0', daemonVersion = '0.5.0', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    state: { agentVersion, daemonVersion },
    health: { status: 'healthy', version: agentVersion, busy: false },
    acks: [],
    results: [],
    ...extra,
  };
}

/** Collects pino's output line by line. */
export function captureStream(lines: string[]): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      pending += chunk.toString('utf8');
      let index = pending.indexOf('\n');
      while (index !== -1) {
        lines.push(pending.slice(0, index));
        pending = pending.slice(index + 1);
        index = pending.indexOf('\n');
      }
      done();
    },
  });
}

interface ManagerState {
  dir: string;
  logs: string[];
  adminToken: string;
  deployToken: string;
  releaseKey: Ed25519PrivateKey;
  auditKey: Ed25519PrivateKey;
  managerKey: Ed25519PrivateKey;
  encryptionKey: string;
  secrets: Set<string>;
}

async function newState(): Promise<ManagerState> {
  const adminToken = generateServiceToken();
  const deployToken = generateServiceToken();
  const auditKey = Ed25519PrivateKey.generate();
  const managerKey = Ed25519PrivateKey.generate();
  const encryptionKey = generateFernetKey();
  return {
    dir: await mkdtemp(join(tmpdir(), 'drover-manager-')),
    logs: [],
    adminToken,
    deployToken,
    releaseKey: Ed25519PrivateKey.generate(),
    auditKey,
    managerKey,
    encryptionKey,
    secrets: new Set<string>([adminToken, deployToken, encryptionKey, Buffer.from(managerKey.exportSeed()).toString('base64'), Buffer.from(auditKey.exportSeed()).toString('base64')]),
  };
}

/** Starts a manager; with `state`, the same one again (same directory, keys and tokens): a restart. */
export async function startTestManager(overrides: Partial<CreateManagerOptions> = {}, state?: ManagerState): Promise<TestManager> {
  const current = state ?? (await newState());
  const { dir, logs, adminToken, deployToken, releaseKey, auditKey, managerKey, encryptionKey, secrets } = current;
  const app = await createManager({
    dataDir: dir,
    adminTokens: [adminToken],
    deployTokens: [deployToken],
    encryptionKey,
    managerKey,
    auditSigner: { signer: ed25519AuditSigner(auditKey), publicKey: auditKey.publicKey },
    trustPolicy: trustPolicyDocument([releaseKey.publicKey]),
    logger: createManagerLogger({ level: 'info', destination: captureStream(logs) }),
    env: {},
    ...overrides,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  const url = `http://127.0.0.1:${address.port}`;
  const pool = new Pool(url, { connections: 8, headersTimeout: 10_000, bodyTimeout: 10_000 });

  // The audit chain as a log's text: the file, or the store's chain for a store that keeps it (decision 0038).
  const auditText = async (): Promise<string> => {
    const store = app.manager.context.store;
    if (store.readAuditChain === undefined) return readFile(join(dir, 'audit', 'audit.jsonl'), 'utf8');
    let text = '';
    for (let after = 0; ; ) {
      const lines = await store.readAuditChain(after, 1000);
      if (lines.length === 0) return text;
      for (const { line } of lines) text += `${line}\n`;
      after = lines[lines.length - 1]?.seq ?? after;
    }
  };
  const prefix = (overrides.settings?.routePrefix ?? '').replace(/\/+$/, '');
  const request = async (method: string, route: string, options: RequestOptions = {}): Promise<HttpResult> => {
    const path = route.startsWith(`${prefix}/`) ? route : prefix + route;
    const headers: Record<string, string> = { ...options.headers };
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] ??= 'application/json';
    }
    const response = await pool.request({ method: method, path, headers, ...(body === undefined ? {} : { body }) });
    const text = await response.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.statusCode, headers: response.headers, text, json };
  };

  const manager: TestManager = {
    app,
    url,
    dir,
    adminToken,
    deployToken,
    releaseKey,
    auditKey,
    managerKey,
    encryptionKey,
    logs,
    secrets,
    request,
    async createEnrollmentToken(seats = 10, expiresInSeconds = 3600) {
      const res = await request('POST', '/v1/enrollment-tokens', { headers: { authorization: `Bearer ${adminToken}` }, json: { seats, expiresInSeconds } });
      if (res.status !== 201) throw new Error(`enrollment token: ${res.status} ${res.text}`);
      const token = (res.json as { token: string }).token;
      secrets.add(token);
      return token;
    },
    async enroll(options = {}) {
      const token = options.token ?? (await manager.createEnrollmentToken(1));
      const id = options.machineId ?? machineId();
      const res = await request('POST', '/v1/agents/enroll', {
        headers: { 'x-machine-id': id },
        json: enrollBody(token, id, { hostname: 'host-1', agentVersion: options.agentVersion ?? '1.0.0', daemonVersion: options.daemonVersion ?? '0.5.0' }),
      });
      if (res.status !== 200) throw new Error(`enroll: ${res.status} ${res.text}`);
      const enrolled = res.json as EnrollResponse;
      secrets.add(enrolled.credential);
      secrets.add(enrolled.serviceToken);
      return { ...enrolled, machineId: id };
    },
    async checkin(agent, options = {}) {
      const agentVersion = options.agentVersion ?? '1.0.0';
      const daemonVersion = options.daemonVersion ?? '0.5.0';
      return request('POST', `/v1/agents/${agent.agentId}/checkin`, {
        headers: {
          authorization: `Bearer ${agent.credential}`,
          'x-machine-id': options.machineId ?? agent.machineId,
          'x-agent-version': agentVersion,
          'x-daemon-version': daemonVersion,
          ...options.headers,
        },
        json: options.body ?? checkinBody(agentVersion, daemonVersion),
      });
    },
    async publish(options) {
      const bytes = options.bytes ?? randomBytes(4096);
      const payload = createReleasePayload({
        artifact: options.artifact ?? 'agent',
        version: options.version,
        platform: options.platform ?? 'linux-x64',
        file: { name: 'agent.tar.gz', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') },
        ...(options.channel === undefined ? {} : { channel: options.channel }),
        changelog: 'fix: a bug',
      });
      const envelope = signRelease(payload, options.keys ?? [releaseKey]);
      const registered = await request('POST', '/v1/releases', { headers: { authorization: `Bearer ${deployToken}` }, json: { release: envelope } });
      if (registered.status !== 201 && registered.status !== 200) throw new Error(`publish: ${registered.status} ${registered.text}`);
      const { uploadUrl } = registered.json as { uploadUrl: string | null };
      if (uploadUrl !== null) {
        const uploaded = await request('PUT', uploadUrl, { headers: { authorization: `Bearer ${deployToken}`, 'content-type': 'application/octet-stream' }, body: bytes });
        if (uploaded.status !== 200) throw new Error(`upload: ${uploaded.status} ${uploaded.text}`);
      }
      return { envelope, bytes };
    },
    async auditRecords() {
      const text = await auditText();
      return text.trim().split('\n').map((line) => JSON.parse(line) as AuditRecord);
    },
    async verifyAudit() {
      const signers = parseAuditSigners(await readFile(join(dir, 'audit', 'signers.json'), 'utf8'));
      return verifyAuditLog(Buffer.from(await auditText(), 'utf8'), signers);
    },
    async leakedSecrets() {
      const haystacks = [await auditText(), await readFile(join(dir, 'audit', 'signers.json'), 'utf8'), logs.join('\n')];
      return [...secrets].filter((secret) => haystacks.some((text) => text.includes(secret)));
    },
    async restart() {
      await pool.close();
      await app.close();
      return startTestManager(overrides, current);
    },
    async close() {
      await pool.close();
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return manager;
}

/** Every row of every table of the manager's database, and its audit log's bytes: equal snapshots mean nothing changed. */
export interface StateSnapshot {
  tables: Record<string, string[]>;
  audit: string;
}

/** Takes a {@link StateSnapshot} of `m` through `db` (a connection to its manager.db). */
export async function snapshotState(m: TestManager, db: Database.Database): Promise<StateSnapshot> {
  await m.app.manager.context.store.ping(); // writes out buffered liveness first
  const tables: Record<string, string[]> = {};
  for (const { name } of db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all()) {
    tables[name] = db
      .prepare(`SELECT * FROM "${name}"`)
      .all()
      .map((row) => JSON.stringify(row))
      .sort();
  }
  return { tables, audit: await readFile(join(m.dir, 'audit', 'audit.jsonl'), 'utf8') };
}
