// A test peer that speaks the manager's side of drover's wire protocol to a real droverd, over
// real HTTP on 127.0.0.1: enrollment, check-ins with update commands (releases signed with a
// release key, nonces issued with protocol's issueNonce under the manager key), and the artifact
// download with Range and ETag. It records what the daemon sends (acks, results with their
// nonces, download requests) and can misbehave on demand: send more than the signed size, stall,
// cut the connection half-way, serve a flipped byte. The real @drover/manager is what
// test/daemon/real-manager.test.ts runs droverd against; this peer stays for the faults and
// forgeries a correct manager never produces (oversize, stall, cut, foreign or replayed nonces).
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Ed25519PrivateKey, createReleasePayload, issueNonce, signRelease, trustPolicyDocument } from '@drover/protocol';
import type { CommandResult, DsseEnvelope, IssueNonceInput, TrustPolicyDocument, UpdateCommand } from '@drover/protocol';

export type ArtifactBehaviour = 'normal' | 'oversize' | 'stall' | 'cut-once' | 'flip';

export interface DownloadRecord {
  path: string;
  range: string | undefined;
  authorized: boolean;
  status: number;
  bytesSent: number;
}

export interface CheckinRecord {
  headers: Record<string, string | undefined>;
  body: {
    state: { agentVersion: string; daemonVersion: string; update?: { commandId: string; step: string; nonce?: string } };
    health: { status: string; version?: string; busy: boolean };
    acks: string[];
    results: CommandResult[];
  };
}

export interface QueueUpdateInput {
  version: string;
  bytes: Buffer;
  fileName?: string;
  artifact?: 'agent' | 'daemon';
  /** The version the nonce moves from (default: the version the daemon last reported). */
  fromVersion?: string;
  platform?: string;
  createdAt?: Date;
  expiresInSeconds?: number;
  /** Keys signing the release (default: the manager's release key). */
  signWith?: Ed25519PrivateKey[];
  /** Overrides of the nonce (another agent, machine, an expired one, rollback, a fixed nonce id). */
  nonce?: Partial<IssueNonceInput>;
  /** A nonce token to send as is (a replay). */
  nonceToken?: string;
  force?: boolean;
  drainTimeoutSeconds?: number;
  deadline?: Date;
  /** The command's deferralWindowSeconds (absent by default, as from a manager that predates it). */
  deferralWindowSeconds?: number;
  behaviour?: ArtifactBehaviour;
  /** Send the URL as given instead of the artifact's. */
  url?: string;
}

export interface QueuedUpdate {
  commandId: string;
  nonce: string;
  nonceId: string;
  envelope: DsseEnvelope;
  path: string;
}

interface Served {
  bytes: Buffer;
  behaviour: ArtifactBehaviour;
  etag: string;
  cutDone: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `res` can take more data, or is closed. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > 4 * 1024 * 1024) throw new Error('request body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

export class FakeManager {
  readonly managerKey = Ed25519PrivateKey.generate();
  readonly releaseKey = Ed25519PrivateKey.generate();
  readonly enrollmentToken = randomBytes(24).toString('base64url');
  readonly credential = randomBytes(32).toString('base64url');
  readonly serviceToken = randomBytes(32).toString('base64url');
  readonly agentId = `agent-${randomBytes(4).toString('hex')}`;
  url = '';
  machineId: string | undefined;
  nextCheckinSeconds = 1;
  /** The check-in interval the enrollment answer names. */
  enrollCheckinIntervalSeconds = 5;
  readonly enrollments: unknown[] = [];
  readonly checkins: CheckinRecord[] = [];
  readonly results: CommandResult[] = [];
  readonly acked = new Set<string>();
  readonly downloads: DownloadRecord[] = [];
  /** Answer check-ins with this status instead (e.g. 503 to play an unreachable manager). */
  checkinStatus: number | undefined;
  /** Every check-in request, answered or not. */
  checkinAttempts = 0;
  /** Command ids whose results are refused (409 NONCE_REPLAYED, with the commandId), as the manager refuses a result it already holds. */
  readonly refuseResultsOf = new Set<string>();
  /** Results refused so far. */
  readonly refusedResults: CommandResult[] = [];
  /** When each command was first sent to the daemon (ms since the epoch). */
  readonly deliveredAt = new Map<string, number>();
  /** When each result first arrived, by command id and outcome (ms since the epoch). */
  readonly resultAt = new Map<string, number>();
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #artifacts = new Map<string, Served>();
  readonly #pending: UpdateCommand[] = [];
  #lastAgentVersion = '0.0.0';
  #lastDaemonVersion = '0.0.0';
  #seq = 0;
  #waiters = new Set<() => void>();
  /** Held check-ins, each ended by a command queued. */
  readonly #holds = new Set<() => void>();
  /** Holds check-ins that ask for it (X-Drover-Wait) as the real manager does; off by default. */
  holdCheckins = false;

  private constructor() {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) json(res, 500, { error: { code: 'INTERNAL_ERROR', message: String(error) } });
        else res.destroy();
      });
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  static async start(): Promise<FakeManager> {
    const manager = new FakeManager();
    await new Promise<void>((resolve) => manager.#server.listen(0, '127.0.0.1', resolve));
    const address = manager.#server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    manager.url = `http://127.0.0.1:${address.port}`;
    return manager;
  }

  /** The trust policy a host needs to accept this manager's releases. */
  trustPolicy(): TrustPolicyDocument {
    return trustPolicyDocument([this.releaseKey.publicKey]);
  }

  get lastAgentVersion(): string {
    return this.#lastAgentVersion;
  }

  /** Serves `bytes` at /download/<name>; returns the path. */
  serveArtifact(name: string, bytes: Buffer, behaviour: ArtifactBehaviour = 'normal'): string {
    this.#artifacts.set(name, { bytes, behaviour, etag: `"${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}"`, cutDone: false });
    return `/download/${name}`;
  }

  /** Signs a release for `input` (without queueing a command). */
  signRelease(input: QueueUpdateInput): DsseEnvelope {
    const payload = createReleasePayload({
      artifact: input.artifact ?? 'agent',
      version: input.version,
      platform: input.platform ?? `${process.platform}-${process.arch}`,
      file: { name: input.fileName ?? 'agent.cjs', size: input.bytes.length, sha256: createHash('sha256').update(input.bytes).digest('hex') },
      changelog: 'fix: a test release\nfeat: another line',
      ...(input.createdAt === undefined ? {} : { createdAt: input.createdAt }),
      ...(input.expiresInSeconds === undefined ? {} : { expiresInSeconds: input.expiresInSeconds }),
    });
    return signRelease(payload, input.signWith ?? [this.releaseKey]);
  }

  /** Queues an update command, re-sent on every check-in until acked. */
  queueUpdate(input: QueueUpdateInput): QueuedUpdate {
    if (this.machineId === undefined) throw new Error('queueUpdate before the daemon enrolled');
    this.#seq += 1;
    const commandId = `cmd-${this.#seq}-${randomBytes(3).toString('hex')}`;
    const artifact = input.artifact ?? 'agent';
    const name = `${commandId}-${input.fileName ?? 'agent.cjs'}`;
    const path = this.serveArtifact(name, input.bytes, input.behaviour ?? 'normal');
    const envelope = this.signRelease(input);
    const issued = issueNonce(
      {
        agentId: this.agentId,
        machineId: this.machineId,
        deploymentId: `dep-${this.#seq}`,
        artifact,
        fromVersion: input.fromVersion ?? (artifact === 'daemon' ? this.#lastDaemonVersion : this.#lastAgentVersion),
        toVersion: input.version,
        ...input.nonce,
      },
      this.managerKey,
    );
    const nonce = input.nonceToken ?? issued.token;
    this.#pending.push({
      id: commandId,
      type: 'update',
      artifact,
      release: envelope,
      url: input.url ?? path,
      nonce,
      force: input.force ?? false,
      drainTimeoutSeconds: input.drainTimeoutSeconds ?? 10,
      deadline: (input.deadline ?? new Date(Date.now() + 10 * 60_000)).toISOString(),
      ...(input.deferralWindowSeconds === undefined ? {} : { deferralWindowSeconds: input.deferralWindowSeconds }),
    });
    for (const release of [...this.#holds]) release();
    return { commandId, nonce, nonceId: issued.payload.nonceId, envelope, path };
  }

  /** A nonce right in every field but signed by a key no host pinned. */
  foreignNonce(toVersion: string): string {
    if (this.machineId === undefined) throw new Error('foreignNonce before the daemon enrolled');
    return issueNonce(
      { agentId: this.agentId, machineId: this.machineId, deploymentId: 'dep-foreign', artifact: 'agent', fromVersion: this.#lastAgentVersion, toVersion },
      Ed25519PrivateKey.generate(),
    ).token;
  }

  /** Every result reported for a command, in arrival order. */
  resultsFor(commandId: string): CommandResult[] {
    return this.results.filter((result) => result.commandId === commandId);
  }

  /** Resolves with the first result of `commandId` whose outcome is one of `outcomes`. */
  async waitForResult(commandId: string, outcomes: readonly string[] = ['succeeded', 'failed', 'rolled_back', 'rejected'], timeoutMs = 30_000): Promise<CommandResult> {
    return this.waitFor(() => this.resultsFor(commandId).find((result) => outcomes.includes(result.outcome)), timeoutMs, `a result ${outcomes.join('|')} for ${commandId}`);
  }

  /** Polls `probe` on every request the manager serves (and every 100 ms) until it returns a value. */
  async waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, 100);
        this.#waiters.add(done);
      });
    }
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    try {
      if (req.method === 'POST' && url.pathname === '/v1/agents/enroll') await this.#enroll(req, res);
      else if (req.method === 'POST' && /^\/v1\/agents\/[^/]+\/checkin$/.test(url.pathname)) await this.#checkin(req, res, url.pathname.split('/')[3] ?? '');
      else if (req.method === 'GET' && url.pathname.startsWith('/download/')) await this.#download(req, res, url.pathname);
      else json(res, 404, { error: { code: 'NOT_FOUND', message: url.pathname } });
    } finally {
      this.#notify();
    }
  }

  async #enroll(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readBody(req)) as { enrollmentToken?: string; machineId?: string; agentVersion?: string } | undefined;
    this.enrollments.push(body);
    if (body?.enrollmentToken !== this.enrollmentToken) {
      json(res, 403, { error: { code: 'ENROLLMENT_TOKEN_INVALID', message: 'Unknown or spent enrollment token.' } });
      return;
    }
    this.machineId = body.machineId;
    this.#lastAgentVersion = body.agentVersion ?? '0.0.0';
    json(res, 200, {
      agentId: this.agentId,
      credential: this.credential,
      serviceToken: this.serviceToken,
      managerKeys: [{ keyid: this.managerKey.keyid, publicKey: this.managerKey.publicKey.toBase64() }],
      checkinIntervalSeconds: this.enrollCheckinIntervalSeconds,
    });
  }

  async #checkin(req: IncomingMessage, res: ServerResponse, agentId: string): Promise<void> {
    this.checkinAttempts += 1;
    const body = (await readBody(req)) as CheckinRecord['body'];
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v[0] : v]));
    if (headers['authorization'] !== `Bearer ${this.credential}` || agentId !== this.agentId) {
      json(res, 401, { error: { code: 'CREDENTIAL_INVALID', message: 'Unknown credential.' } });
      return;
    }
    if (headers['x-machine-id'] !== this.machineId) {
      json(res, 403, { error: { code: 'MACHINE_ID_MISMATCH', message: 'Another machine.' } });
      return;
    }
    if (this.checkinStatus !== undefined) {
      json(res, this.checkinStatus, { error: { code: 'UNAVAILABLE', message: 'Playing an outage.' } });
      return;
    }
    const refused = body.results.find((result) => this.refuseResultsOf.has(result.commandId));
    if (refused !== undefined) {
      // The real manager refuses the whole check-in and stores nothing of it (docs/decisions/0008).
      this.refusedResults.push(refused);
      json(res, 409, { error: { code: 'NONCE_REPLAYED', message: 'Already recorded; drop this result.', commandId: refused.commandId } });
      return;
    }
    this.checkins.push({ headers, body });
    this.#lastAgentVersion = body.state.agentVersion;
    this.#lastDaemonVersion = body.state.daemonVersion;
    for (const id of body.acks) this.acked.add(id);
    this.results.push(...body.results);
    for (const result of body.results) if (!this.resultAt.has(`${result.commandId}:${result.outcome}`)) this.resultAt.set(`${result.commandId}:${result.outcome}`, Date.now());
    let commands = this.#pending.filter((command) => !this.acked.has(command.id));
    const wait = Number(headers['x-drover-wait'] ?? 0);
    if (this.holdCheckins && wait > 0) {
      // The command channel (decision 0041), as the real manager holds it: a check-in with nothing
      // to report and no command waits for one (queueUpdate), its wait's end, or the host leaving.
      if (commands.length === 0 && body.acks.length === 0 && body.results.length === 0) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            this.#holds.delete(done);
            res.off('close', done);
            resolve();
          };
          const timer = setTimeout(done, wait * 1000);
          this.#holds.add(done);
          res.once('close', done);
        });
        commands = this.#pending.filter((command) => !this.acked.has(command.id));
      }
      res.setHeader('x-drover-wait', '0');
    }
    for (const command of commands) if (!this.deliveredAt.has(command.id)) this.deliveredAt.set(command.id, Date.now());
    json(res, 200, { commands, nextCheckinSeconds: this.nextCheckinSeconds });
  }

  async #download(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const served = this.#artifacts.get(decodeURIComponent(path.slice('/download/'.length)));
    const range = req.headers.range;
    const record: DownloadRecord = { path, range, authorized: req.headers.authorization === `Bearer ${this.credential}`, status: 0, bytesSent: 0 };
    this.downloads.push(record);
    if (served === undefined) {
      record.status = 404;
      json(res, 404, { error: { code: 'NOT_FOUND', message: path } });
      return;
    }
    const write = (chunk: Buffer): boolean => {
      record.bytesSent += chunk.length;
      return res.write(chunk);
    };
    let bytes = served.bytes;
    if (served.behaviour === 'flip') {
      bytes = Buffer.from(bytes);
      const at = Math.floor(bytes.length / 2);
      bytes[at] = (bytes[at] ?? 0) ^ 0x01;
    }
    if (served.behaviour === 'oversize') {
      // endless data: no Content-Length, and bytes keep coming until the client hangs up.
      record.status = 200;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const filler = Buffer.alloc(64 * 1024, 0x61);
      while (!res.destroyed && record.bytesSent < 256 * 1024 * 1024) {
        if (!write(filler)) await drained(res);
      }
      res.end();
      return;
    }
    let start = 0;
    const match = range === undefined ? null : /^bytes=(\d+)-$/.exec(range);
    if (match?.[1] !== undefined) {
      start = Number(match[1]);
      if (start >= bytes.length) {
        record.status = 416;
        res.writeHead(416, { 'content-range': `bytes */${bytes.length}` }).end();
        return;
      }
      record.status = 206;
      res.writeHead(206, {
        'content-type': 'application/octet-stream',
        'content-length': String(bytes.length - start),
        'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}`,
        'accept-ranges': 'bytes',
        etag: served.etag,
      });
    } else {
      record.status = 200;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length), 'accept-ranges': 'bytes', etag: served.etag });
    }
    const body = bytes.subarray(start);
    if (served.behaviour === 'stall') {
      // slow retrieval: half the bytes, then nothing, with the connection held open.
      write(body.subarray(0, Math.floor(body.length / 2)));
      await new Promise<void>((resolve) => res.once('close', resolve));
      return;
    }
    if (served.behaviour === 'cut-once' && !served.cutDone) {
      served.cutDone = true;
      write(body.subarray(0, Math.floor(body.length / 2)));
      await sleep(50);
      res.socket?.destroy();
      return;
    }
    for (let offset = 0; offset < body.length; offset += 1024 * 1024) {
      if (!write(body.subarray(offset, offset + 1024 * 1024))) await drained(res);
      if (res.destroyed) return;
    }
    res.end();
  }
}
