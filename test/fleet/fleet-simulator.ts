// A fleet of simulated daemons that speak the real protocol over HTTP to a real manager: enroll,
// check in, ack commands, verify each update nonce (signature by the manager key from the
// enrollment answer, agent, machine, downgrade unless rollback, single use), report results with
// the nonce, and report health; a busy host defers, within the command's deferralWindowSeconds.
// Each host can be healthy, unhealthy on some versions, busy for a while, offline or slow. It never
// runs real agents: "installing" a version is setting it.
//
// With `channelWaitSeconds` a host also holds the command channel as droverd does (decision 0041):
// a check-in with nothing to report asks the manager to hold it (X-Drover-Wait); while the manager
// says it holds check-ins, the next one goes after up to half a second at random; a failed one
// backs off as droverd's does (from 1 s, doubled, full jitter, at least 0.5 s; Retry-After wins
// when longer); after 503 CHANNEL_FULL it stops asking to be held until the Retry-After passed.
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { retryDelay } from '@drover/http';
import { Ed25519PublicKey, readNonceUnverified, verifyNonce } from '@drover/protocol';
import type { EnrollResponse, NoncePayload } from '@drover/protocol';

export interface HostBehaviour {
  /** Versions this host runs unhealthily (health `degraded`) once installed. */
  unhealthyOn?: readonly string[];
  /** Busy (defers every update) until this many ms after its first update command reaches it. */
  busyForMs?: number;
  /** Never checks in after enrolling. */
  offline?: boolean;
  /** Check-in interval of this host (default the fleet's). */
  checkinEveryMs?: number;
  /** Ms an install takes once started. */
  installMs?: number;
}

/** droverd's timings for the channel and for a failed check-in (daemon/src/config.ts). */
const CHANNEL_JITTER_MS = 500;
const CHECKIN_BACKOFF = { maxAttempts: 1, backoffBaseMs: 1_000, backoffMaxMs: 300_000, retryAfterMaxMs: 3_600_000 };
const HELD_CUT_MS = 1_000;

export interface ReceivedCommand {
  id: string;
  deploymentId: string;
  toVersion: string;
  rollback: boolean;
  nonceId: string;
  /** True when the nonce verified against the pinned manager key and every other rule. */
  verified: boolean;
  /** When the host first saw it, and when it finished installing it (ms since the epoch). */
  receivedAt: number;
  installedAt?: number;
  /** The code the host gave the command up with (failed), if it did. */
  gaveUpWith?: string;
  /** The URL of the manager whose answer carried it first (when the fleet says which one it asks). */
  via?: string;
}

interface QueueEntry {
  id: string;
  token: string;
  payload: NoncePayload;
  deadline: number;
  /** The command's deferral window (ms), if it has one. */
  windowMs: number | undefined;
  firstDeferredAt: number | undefined;
  deferredReported: boolean;
  installAt: number | undefined;
}

export class SimulatedHost {
  readonly machineId = createHash('sha256').update(randomBytes(16)).digest('hex');
  agentId = '';
  credential = '';
  serviceToken = '';
  version: string;
  readonly received: ReceivedCommand[] = [];
  /** Update commands with force: true this host received (must stay 0: nobody forces a busy agent). */
  forced = 0;
  /** Check-ins the manager answered. */
  checkins = 0;
  /** The HTTP status of the last check-in answered. */
  lastStatus = 0;
  /** Check-ins answered 503 (shed by an overloaded manager, or CHANNEL_FULL). */
  unavailable = 0;
  /** Check-ins sent (answered or not: a held one is answered only when a command comes or its wait ends). */
  sent = 0;
  /** When each check-in was sent (ms since the epoch), kept only while `recordSends` is true. */
  readonly sends: number[] = [];
  recordSends = false;
  /** Seconds a check-in with nothing to report asks to be held (the command channel); 0: never. */
  channelWaitSeconds = 0;
  #channelSeen = false;
  #channelPausedUntil = 0;
  #failures = 0;
  /** Ends a held check-in when the host stops. */
  #stopping = new AbortController();
  /** Ms until the next check-in, as droverd would wait after the last one (channel mode). */
  #nextDelayMs: number | undefined;
  #managerKeys: Ed25519PublicKey[] = [];
  #seen = new Set<string>();
  #usedNonces = new Set<string>();
  #acks: string[] = [];
  #results: { commandId: string; outcome: string; detail: Record<string, string>; nonce?: string }[] = [];
  #queue: QueueEntry[] = [];
  /** When its first update command reached its queue: a busy host's busy time counts from there. */
  #firstCommandAt: number | undefined;
  #stopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly name: string,
    readonly behaviour: HostBehaviour,
    initialVersion: string,
  ) {
    this.version = initialVersion;
  }

  busy(now = Date.now()): boolean {
    const { busyForMs } = this.behaviour;
    if (busyForMs === undefined) return false;
    return this.#firstCommandAt === undefined || now - this.#firstCommandAt < busyForMs;
  }

  health(): { status: string; version: string; busy: boolean } {
    const unhealthy = this.behaviour.unhealthyOn?.includes(this.version) ?? false;
    return { status: unhealthy ? 'degraded' : 'healthy', version: this.version, busy: this.busy() };
  }

  async enroll(pool: Pool, enrollmentToken: string): Promise<void> {
    // An overloaded manager (503 with Retry-After) is asked again after the time it gives, as droverd does.
    for (let attempt = 1; ; attempt++) {
      const res = await pool.request({
        method: 'POST',
        path: '/v1/agents/enroll',
        headers: { 'content-type': 'application/json', 'x-machine-id': this.machineId },
        body: JSON.stringify({
          enrollmentToken,
          machineId: this.machineId,
          hostname: this.name,
          platform: 'linux-x64',
          arch: 'x64',
          agentVersion: this.version,
          daemonVersion: '0.5.0',
          inventory: { os: { platform: 'linux' } },
        }),
      });
      const text = await res.body.text();
      if (res.statusCode === 503 && attempt < 10) {
        await sleep(retryDelay(CHECKIN_BACKOFF, attempt, res.headers['retry-after']));
        continue;
      }
      if (res.statusCode !== 200) throw new Error(`enroll ${this.name}: ${res.statusCode} ${text}`);
      this.#enrolled(JSON.parse(text) as EnrollResponse);
      return;
    }
  }

  #enrolled(enrolled: EnrollResponse): void {
    this.agentId = enrolled.agentId;
    this.credential = enrolled.credential;
    this.serviceToken = enrolled.serviceToken;
    this.#managerKeys = enrolled.managerKeys.map((k) => Ed25519PublicKey.from(k.publicKey));
  }

  /** One check-in (to `via`, the manager `pool` reaches, when known), then the work it brought. Returns false when the manager was unreachable. */
  async checkIn(pool: Pool, via?: string): Promise<boolean> {
    const acks = [...this.#acks];
    const results = [...this.#results];
    // An update in progress counts as something to report: droverd's wake() would cut the hold short
    // when it ends; the simulator checks in again instead of being held.
    const idle = acks.length === 0 && results.length === 0 && this.#queue.length === 0;
    const wait = this.channelWaitSeconds > 0 && Date.now() >= this.#channelPausedUntil && idle ? this.channelWaitSeconds : 0;
    this.#nextDelayMs = undefined;
    const reportNonce = results.find((r) => r.nonce !== undefined)?.nonce;
    let status: number;
    let text: string;
    let waitHeader: string | string[] | undefined;
    let retryAfter: string | string[] | undefined;
    this.sent++;
    const sentAt = Date.now();
    if (this.recordSends) this.sends.push(sentAt);
    try {
      const res = await pool.request({
        method: 'POST',
        path: `/v1/agents/${this.agentId}/checkin`,
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${this.credential}`,
          'x-machine-id': this.machineId,
          'x-agent-version': this.version,
          'x-daemon-version': '0.5.0',
          ...(wait > 0 ? { 'x-drover-wait': String(wait) } : {}),
          // As droverd: a report of an update names its nonce (the manager admits reports first under load).
          ...(reportNonce === undefined ? {} : { 'x-update-nonce': reportNonce }),
        },
        body: JSON.stringify({ state: { agentVersion: this.version, daemonVersion: '0.5.0' }, health: this.health(), acks, results }),
        ...(wait > 0 ? { signal: this.#stopping.signal } : {}),
      });
      status = res.statusCode;
      waitHeader = res.headers['x-drover-wait'];
      retryAfter = res.headers['retry-after'];
      text = await res.body.text();
    } catch {
      // A held check-in lost after a while (a replica killed under it) is one reconnection, as droverd counts it.
      this.#failed(undefined, wait > 0 && Date.now() - sentAt >= HELD_CUT_MS);
      return false;
    }
    this.checkins++;
    this.lastStatus = status;
    if (status === 503) this.unavailable++;
    if (status === 200 || status === 426) {
      this.#acks = this.#acks.filter((id) => !acks.includes(id));
      this.#results = this.#results.filter((r) => !results.includes(r));
      this.#failures = 0;
      if (wait > 0) this.#channelSeen = status === 200 && waitHeader !== undefined;
      const channelOpen = this.channelWaitSeconds > 0 && Date.now() >= this.#channelPausedUntil && this.#channelSeen;
      if (status === 200 && channelOpen && (wait > 0 || !idle)) this.#nextDelayMs = Math.random() * CHANNEL_JITTER_MS;
    } else if (status === 409) {
      // NONCE_REPLAYED: the manager has this outcome already.
      this.#results = this.#results.filter((r) => !results.includes(r));
      return true;
    } else if (status === 503 && wait > 0 && text.includes('"CHANNEL_FULL"')) {
      // Nothing was recorded: check in again now without asking to be held, until Retry-After.
      this.#channelPausedUntil = Date.now() + retryDelay(CHECKIN_BACKOFF, 1, retryAfter);
      this.#nextDelayMs = 0;
      return true;
    } else {
      if (status >= 500 || status === 429) this.#failed(retryAfter);
      return status < 500 ? true : false;
    }
    const body = JSON.parse(text) as { commands: { id: string; type: string; nonce: string; deadline: string; force: boolean; deferralWindowSeconds?: number }[] };
    for (const command of body.commands) {
      if (this.#seen.has(command.id)) continue;
      this.#seen.add(command.id);
      this.#acks.push(command.id);
      if (command.force) this.forced++;
      let payload: NoncePayload;
      let verified = true;
      try {
        payload = verifyNonce(command.nonce, {
          managerKeys: this.#managerKeys,
          agentId: this.agentId,
          machineId: this.machineId,
          runningVersion: this.version,
          isUsed: (id) => this.#usedNonces.has(id),
        });
      } catch {
        verified = false;
        payload = readNonceUnverified(command.nonce);
      }
      this.received.push({ id: command.id, deploymentId: payload.deploymentId, toVersion: payload.toVersion, rollback: payload.rollback, nonceId: payload.nonceId, verified, receivedAt: Date.now(), ...(via === undefined ? {} : { via }) });
      if (!verified) {
        this.#results.push({ commandId: command.id, outcome: 'rejected', detail: { code: 'NONCE_SIGNATURE_INVALID' }, nonce: command.nonce });
        continue;
      }
      this.#usedNonces.add(payload.nonceId);
      this.#queue.push({
        id: command.id,
        token: command.nonce,
        payload,
        deadline: Date.parse(command.deadline),
        windowMs: command.deferralWindowSeconds === undefined ? undefined : command.deferralWindowSeconds * 1000,
        firstDeferredAt: undefined,
        deferredReported: false,
        installAt: undefined,
      });
    }
    this.#work();
    return true;
  }

  #work(): void {
    const now = Date.now();
    const entry = this.#queue[0];
    if (entry === undefined) return;
    this.#firstCommandAt ??= now;
    if (now > entry.deadline) {
      this.#giveUp(entry, 'DEADLINE_EXCEEDED');
      return;
    }
    // A busy agent is never stopped: the daemon reports `deferred` and tries again later, until the
    // command's deferral window (from the first deferral) ends.
    if (this.busy(now)) {
      entry.firstDeferredAt ??= now;
      if (entry.windowMs !== undefined && now >= entry.firstDeferredAt + entry.windowMs) {
        this.#giveUp(entry, 'DEFERRAL_WINDOW_EXPIRED');
        return;
      }
      if (!entry.deferredReported) {
        entry.deferredReported = true;
        this.#results.push({ commandId: entry.id, outcome: 'deferred', detail: { code: 'AGENT_BUSY' } });
      }
      return;
    }
    entry.installAt ??= now + (this.behaviour.installMs ?? 0);
    if (now < entry.installAt) return;
    this.#queue.shift();
    this.version = entry.payload.toVersion;
    const received = this.received.find((c) => c.id === entry.id);
    if (received !== undefined) received.installedAt = now;
    this.#results.push({ commandId: entry.id, outcome: 'succeeded', detail: {}, nonce: entry.token });
  }

  /** A failed check-in: droverd's backoff (channel mode), or the Retry-After of a busy manager when longer. */
  #failed(retryAfter: string | string[] | undefined, heldCut = false): void {
    if (heldCut) this.#failures = 0;
    this.#failures += 1;
    this.#nextDelayMs = Math.max(CHECKIN_BACKOFF.backoffBaseMs / 2, retryDelay(CHECKIN_BACKOFF, this.#failures - 1, retryAfter));
  }

  #giveUp(entry: QueueEntry, code: string): void {
    this.#queue.shift();
    const received = this.received.find((c) => c.id === entry.id);
    if (received !== undefined) received.gaveUpWith = code;
    this.#results.push({ commandId: entry.id, outcome: 'failed', detail: { code }, nonce: entry.token });
  }

  /** Checks in through `pool()` until stopped; `via()`, if given, names the manager that pool reaches. */
  start(pool: () => Pool, everyMs: number, via?: () => string): void {
    if (this.behaviour.offline === true) return;
    const interval = this.behaviour.checkinEveryMs ?? everyMs;
    // A stopped host may start again (a fleet paused while its manager moved).
    this.#stopped = false;
    this.#stopping = new AbortController();
    this.#loop = (async () => {
      while (!this.#stopped) {
        await this.checkIn(pool(), via?.());
        // On the channel, droverd's own pacing; otherwise (and when the channel is not there) the interval.
        await sleep(this.channelWaitSeconds > 0 ? (this.#nextDelayMs ?? interval) : interval);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopping.abort();
    await this.#loop;
  }
}

/** N simulated hosts against one manager URL. */
export class FleetSimulator {
  readonly hosts: SimulatedHost[] = [];
  #pool: Pool;
  #url: string;
  /** Pools left by `retarget(url, { drain: true })`, closing as their requests end. */
  readonly #draining: Promise<void>[] = [];

  constructor(
    url: string,
    /** `channelWaitSeconds`: every host holds the command channel (a connection each while held). */
    readonly options: { checkinEveryMs?: number; channelWaitSeconds?: number } = {},
  ) {
    this.#pool = this.#newPool(url);
    this.#url = url;
  }

  #newPool(url: string): Pool {
    const wait = this.options.channelWaitSeconds ?? 0;
    // A held check-in keeps its connection: on the channel, one connection per host.
    return wait > 0
      ? new Pool(url, { headersTimeout: (wait + 10) * 1000, bodyTimeout: 10_000 })
      : new Pool(url, { connections: 16, headersTimeout: 10_000, bodyTimeout: 10_000 });
  }

  /**
   * Points the fleet at another URL (a restarted manager); the hosts keep their identity. The
   * requests under way on the old URL are cut, or with `drain` left to end (a load balancer that
   * sends new connections elsewhere and cuts none: a held check-in stays held where it is).
   */
  async retarget(url: string, { drain = false }: { drain?: boolean } = {}): Promise<void> {
    const old = this.#pool;
    this.#pool = this.#newPool(url);
    this.#url = url;
    if (drain) this.#draining.push(old.close());
    else await old.destroy();
  }

  get pool(): Pool {
    return this.#pool;
  }

  /** The manager URL the fleet checks in with now. */
  get url(): string {
    return this.#url;
  }

  async enroll(enrollmentToken: string, behaviours: readonly HostBehaviour[], initialVersion = '1.0.0'): Promise<SimulatedHost[]> {
    const added = behaviours.map((b, i) => new SimulatedHost(`host-${this.hosts.length + i}`, b, initialVersion));
    for (const host of added) host.channelWaitSeconds = this.options.channelWaitSeconds ?? 0;
    for (const host of added) await host.enroll(this.#pool, enrollmentToken);
    this.hosts.push(...added);
    return added;
  }

  start(): void {
    for (const host of this.hosts) host.start(() => this.#pool, this.options.checkinEveryMs ?? 50, () => this.#url);
  }

  async stop(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.stop()));
  }

  /**
   * Resolves once every host that checks in has had `rounds` more check-ins answered: whatever the
   * manager would send them by then, they have received. Counted in check-ins, not wall time, so a
   * slow machine slows the wait down with the fleet.
   */
  async checkInRounds(rounds: number): Promise<void> {
    const live = this.hosts.filter((h) => h.behaviour.offline !== true);
    const target = new Map(live.map((h) => [h, h.checkins + rounds]));
    await waitFor(`${rounds} check-in rounds`, () => (live.every((h) => h.checkins >= (target.get(h) ?? 0)) ? true : undefined), 20_000, 5);
  }

  async close(): Promise<void> {
    await this.stop();
    await Promise.all([this.#pool.close(), ...this.#draining]);
  }
}

/** Polls `check` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
