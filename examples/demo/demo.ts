// `npm run demo`: drover end to end on this machine, with nothing faked. On loopback, in one
// temporary directory, it starts a real manager (`drover manager init` + `drover manager start`,
// the embedded SQLite store) and six hosts, each a real `droverd` supervising a real
// examples/agent, then:
//   1. signs and publishes v1.1.0 and starts a canary rollout through the deploy API; one agent is
//      busy for a while, so its daemon defers; the rollout completes with every host on v1.1.0;
//   2. publishes v1.2.0, which starts degraded: the first canary phase fails its gate, its hosts
//      roll back, the fleet stays on v1.1.0;
//   3. tampers with a signed v1.3.0: the manager refuses to publish it and a host refuses to install it;
//   4. prints the fleet, `drover audit verify`'s verdict and the timings.
// With `--replicas N` (N >= 2) the same scenario runs on a fleet as it grows past one machine
// (docs/operations.md "Several replicas"): N manager processes on one PostgreSQL database with
// the artifacts in an S3 bucket (both started by scripts/services.sh unless DROVER_TEST_DATABASE_URL
// and DROVER_TEST_S3_* name running ones), the hosts spread across the replicas.
// Processes are started and packaged by the helpers the cross-package suites use (test/helpers:
// the built CLI and daemon, examples/agent bundled as a release), so the demo and CI exercise the
// same paths. Every expectation is checked; the exit code is 0 only if all held. Children are killed and the
// temporary directories removed on every exit path (success, failure, timeout, Ctrl-C).
// With `--hsm` the manager's audit key is made inside a throwaway SoftHSM2 token (PKCS#11) and never
// touches the disk; `drover audit verify` checks the log with the signers.json the token's key made.
// With `--keep` the manager(s) and the hosts stay up after the report, for a look at the web console
// (its URL and how to log in are printed) or the CLI, until Ctrl-C, which cleans up as always.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { managerAuditChain } from '@drover/manager';
import type { DeploymentStatus, TrustPolicyDocument } from '@drover/protocol';
import { agentArtifact } from '../../test/helpers/agent-artifact.js';
import { drover as droverCli } from '../../test/helpers/cli.js';
import type { RunResult } from '../../test/helpers/cli.js';
import { DaemonProcess, agentGet, agentRuntime, createHostFor, destroyHost, droverd, releaseTree, waitForAgent } from '../../test/helpers/droverd.js';
import type { Host } from '../../test/helpers/droverd.js';
import { ManagerProcess } from '../../test/helpers/manager-process.js';
import { startServices } from '../../test/helpers/services.js';
import { createSoftHsm, softhsmMissing } from '../../test/helpers/softhsm.js';
import type { Services } from '../../test/helpers/services.js';

const USAGE = 'usage: npm run demo [-- [--replicas N] [--hsm] [--keep]]\n  --replicas N  N from 1 to 4; 2 or more: PostgreSQL and S3\n  --hsm         the audit key in a throwaway SoftHSM2 token (apt-get install softhsm2)\n  --keep        leave the manager and the hosts running after the report (the console URL is printed) until Ctrl-C\n';
let parsed: ReturnType<typeof parseDemoArgs>;
function parseDemoArgs(): { replicas: string; keep: boolean; hsm: boolean; help: boolean } {
  const { values } = parseArgs({ options: { replicas: { type: 'string', default: '1' }, keep: { type: 'boolean', default: false }, hsm: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } });
  return values;
}
try {
  parsed = parseDemoArgs();
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
  process.exit(2);
}
if (parsed.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const REPLICAS = Number(parsed.replicas);
const KEEP = parsed.keep;
const HSM = parsed.hsm;
if (!Number.isSafeInteger(REPLICAS) || REPLICAS < 1 || REPLICAS > 4) {
  process.stderr.write(USAGE);
  process.exit(2);
}
if (HSM && softhsmMissing() !== undefined) {
  process.stderr.write(`--hsm: ${softhsmMissing() ?? ''}\n`);
  process.exit(2);
}

const HOSTS = 6;
const PLATFORM = `${process.platform}-${process.arch}`;
const OVERALL_TIMEOUT_MS = 150_000; // the whole demo, set-up and clean-up included (plus SERVICES_MS with replicas)
const SERVICES_MS = 90_000; // starting PostgreSQL and the S3 server, with replicas
const ROLLOUT_TIMEOUT_MS = 60_000; // one rollout, notify to its end
const BUSY_FOR_MS = 2_500; // each simulated job on the busy agent
// Short soak and grace so the demo takes seconds, not the production defaults' minutes (docs/manager.md "Options").
const ROLLOUT_OPTIONS = {
  soakSeconds: 1,
  healthGraceSeconds: 0.5,
  deferralWindowSeconds: 40,
  targetDeadlineSeconds: 40,
  deferralBackoffSeconds: 0.5,
  deferralBackoffMaxSeconds: 1,
  autoRollback: true,
};
// Operator groups make the canary phases known in advance: explorers first, then early adopters, then the rest.
const GROUPS = ['explorer', 'explorer', 'early_adopter', 'early_adopter', 'general', 'general'] as const;
const BUSY_HOST = 4; // host-5, in the last phase

const started = Date.now();
const tty = process.stdout.isTTY;
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// -- output

let liveLine = '';
function clearLive(): void {
  if (tty && liveLine !== '') process.stdout.write('\r\x1b[2K');
}
function say(text: string): void {
  clearLive();
  process.stdout.write(`${text}\n`);
  if (tty && liveLine !== '') process.stdout.write(liveLine);
}
function live(line: string): void {
  // A wrapped line cannot be redrawn in place: on a terminal, cut it to the terminal's width.
  const text = tty ? line.slice(0, Math.max(20, (process.stdout.columns || 120) - 1)) : line;
  if (text === liveLine) return;
  liveLine = text;
  if (tty) process.stdout.write(`\r\x1b[2K${text}`);
  else process.stdout.write(`${text}\n`);
}
function endLive(): void {
  if (tty && liveLine !== '') process.stdout.write('\n');
  liveLine = '';
}
const heading = (text: string): void => {
  say(`\n[${elapsed()}] == ${text}`);
};
const step = (text: string): void => {
  say(`[${elapsed()}]    ${text}`);
};

// -- expectations: each one named, checked explicitly, and listed at the end

interface Expectation {
  name: string;
  ok: boolean;
  detail: string;
}
const expectations: Expectation[] = [];

// What the demo saw, as data: written to $DROVER_DEMO_REPORT (when set) for test/e2e to assert on.
const findings: Record<string, unknown> = {};
function check(name: string, ok: boolean, detail = ''): boolean {
  expectations.push({ name, ok, detail });
  say(`${ok ? '  ok  ' : '  FAIL'}  ${name}${ok || detail === '' ? '' : ` (${detail})`}`);
  return ok;
}

/** The stable error code (docs/errors.md) in a command's output, e.g. ARTIFACT_DIGEST_MISMATCH. */
function errorCode(output: string): string {
  return /"code"\s*:\s*"([A-Z0-9_]+)"/.exec(output)?.[1] ?? /\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b/.exec(output)?.[1] ?? 'none';
}

/** Polls `probe` until it answers, bounded: a timeout names what was awaited. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

// -- the processes this demo owns, torn down on every exit path

let root: string | undefined;
let manager: ManagerProcess | undefined;
// Every replica (the first is `manager`); with one, just `manager`.
const managers: ManagerProcess[] = [];
let services: Services | undefined;
const hosts: Host[] = [];
const daemons = new Map<Host, DaemonProcess[]>();
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    endLive();
    // Graceful first (droverd stops its agent), then destroyHost SIGKILLs whatever is left and removes the host.
    await Promise.allSettled([...daemons.values()].flat().map((d) => d.stop(5_000)));
    await Promise.allSettled(hosts.map((h) => destroyHost(h, daemons.get(h) ?? [])));
    await Promise.allSettled(managers.map((m) => m.stop(5_000)));
    await services?.stop().catch(() => undefined);
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  })();
  return cleaning;
}

// Ctrl-C reaches this process twice (the terminal signals the whole process group, and tsx relays
// it): the first signal starts the clean-up, later ones must not kill the process halfway through it.
let interrupted = false;
// With --keep, the exit code the finished demo earned; a signal then ends a kept fleet, not the demo.
let keptExitCode: number | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    say(`\n${signal}: stopping every process the demo started and removing its directory…`);
    void cleanup().finally(() => {
      say(keptExitCode === undefined ? 'Interrupted: nothing left running, temporary directory removed.' : 'Stopped: nothing left running, temporary directory removed.');
      process.exit(keptExitCode ?? 130);
    });
  });
}

// A crash outside main's try (a background loop's rejection, a throw in a timer) still cleans up.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (error: unknown) => {
    endLive();
    say(`\nFAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\nstopping everything.`);
    void cleanup().finally(() => process.exit(1));
  });
}

// -- the CLI, the manager's API, the hosts

const cliEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
// What the managers (and the CLI reading their state) run with: with replicas, the database and the
// bucket's credentials (only in the environment, as an operator would give them).
let managerEnv: Record<string, string> = { ...cliEnv };
function at(...parts: string[]): string {
  if (root === undefined) throw new Error('no working directory yet');
  return join(root, ...parts);
}
async function cli(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return droverCli(args, { env: { ...cliEnv, ...env } });
}
function ok(result: RunResult, what: string): RunResult {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${String(result.code)}): ${result.stdout}${result.stderr}`);
  return result;
}
function theManager(): ManagerProcess {
  if (manager === undefined) throw new Error('the manager is not running');
  return manager;
}

let adminToken = '';
let deployToken = '';
const admin = (): Record<string, string> => ({ authorization: `Bearer ${adminToken}` });

function startDaemon(host: Host): DaemonProcess {
  const daemon = new DaemonProcess(host);
  daemons.set(host, [...(daemons.get(host) ?? []), daemon]);
  return daemon;
}
function currentDaemon(host: Host): DaemonProcess | undefined {
  return daemons.get(host)?.at(-1);
}

async function credentials(host: Host): Promise<{ agentId: string; serviceToken: string } | undefined> {
  try {
    return JSON.parse(await readFile(join(host.stateDir, 'credentials.json'), 'utf8')) as { agentId: string; serviceToken: string };
  } catch {
    return undefined;
  }
}

interface AgentView {
  agentId: string;
  agentVersion: string;
  health: { status?: string; version?: string } | null;
}

async function fleet(): Promise<AgentView[]> {
  const answer = await theManager().call('GET', '/v1/agents?limit=100', admin());
  if (answer.status !== 200) throw new Error(`GET /v1/agents answered ${answer.status}: ${JSON.stringify(answer.json)}`);
  return (answer.json as { agents: AgentView[] }).agents;
}

async function health(host: Host): Promise<{ status?: string; version?: string } | undefined> {
  return (await agentGet(host, '/v1/system/health')) as { status?: string; version?: string } | undefined;
}

/** Writes rel/<version>/agent.cjs and signs it (drover release sign). */
async function signedRelease(version: string, bytes: Buffer, changelog: string): Promise<string> {
  await mkdir(at('rel', version), { recursive: true });
  const file = at('rel', version, 'agent.cjs');
  await writeFile(file, bytes);
  await writeFile(at('rel', version, 'CHANGELOG'), `${changelog}\n`);
  ok(
    await cli(['release', 'sign', '--key', at('keys', 'release.key'), '--artifact', 'agent', '--version', version, '--platform', PLATFORM, '--expires-in', '1d', '--changelog-file', at('rel', version, 'CHANGELOG'), file]),
    `drover release sign ${version}`,
  );
  return file;
}

function publish(file: string): Promise<RunResult> {
  return cli(['release', 'publish', '--manager', theManager().url, file], { DROVER_DEPLOY_TOKEN: deployToken });
}

async function deploymentStatus(id: string): Promise<DeploymentStatus> {
  const answer = await theManager().call('GET', `/manager/v1/updates/status?deployment_id=${encodeURIComponent(id)}`, admin());
  if (answer.status !== 200) throw new Error(`GET /manager/v1/updates/status answered ${answer.status}: ${JSON.stringify(answer.json)}`);
  return answer.json as DeploymentStatus;
}

interface AuditRecord {
  event: string;
  agentId?: string;
  deploymentId?: string;
  outcome: string;
  details: Record<string, unknown>;
}

/** The audit chain's records, wherever the manager keeps it (its log file, or the database replicas share). */
async function auditRecords(): Promise<AuditRecord[]> {
  const chain = await managerAuditChain(at('manager'), managerEnv);
  if (chain.kind === 'file') {
    const text = await readFile(chain.path, 'utf8');
    return text.trim().split('\n').map((line) => JSON.parse(line) as AuditRecord);
  }
  const records: AuditRecord[] = [];
  for await (const line of chain.lines()) records.push(JSON.parse(Buffer.from(line).toString('utf8')) as AuditRecord);
  return records;
}

// -- the live progress view

const ENDED = new Set(['succeeded', 'failed', 'skipped', 'rolled_back']);
const STATE_ORDER = ['pending', 'notified', 'deferred', 'updating', 'health_check', 'succeeded', 'failed', 'skipped', 'rolled_back'];

function bar(done: number, total: number, width = 24): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

function progressLine(label: string, s: DeploymentStatus): string {
  const counts = new Map<string, number>();
  for (const target of s.agents) counts.set(target.state, (counts.get(target.state) ?? 0) + 1);
  const done = s.agents.filter((t) => ENDED.has(t.state)).length;
  const states = STATE_ORDER.filter((state) => (counts.get(state) ?? 0) > 0).map((state) => `${state} ${String(counts.get(state))}`);
  return `  ${label}  ${s.status.padEnd(11)} phase ${(s.canary_phase ?? '-').padEnd(14)} ${bar(done, s.agents.length)} ${done}/${s.agents.length}  ${states.join(' · ')}`;
}

// Agent id -> "host-N", so the manager's events (which name agents) read in the demo's terms.
const hostNames = new Map<string, string>();
function withHostNames(text: string): string {
  let named = text;
  for (const [id, host] of hostNames) named = named.replaceAll(id, `${host} (${id})`);
  return named;
}

interface Watched {
  status: DeploymentStatus;
  seconds: number;
  seen: Map<string, Set<string>>; // agent id -> every state it was seen in
}

/** Follows a deployment to its end, drawing the progress line and printing each new event. */
async function watch(label: string, id: string, onStatus?: (s: DeploymentStatus) => Promise<void>): Promise<Watched> {
  const t0 = Date.now();
  const seen = new Map<string, Set<string>>();
  let events = 0;
  const final = await until(`deployment ${id} (${label}) to end`, ROLLOUT_TIMEOUT_MS, async () => {
    const s = await deploymentStatus(id);
    for (const target of s.agents) seen.set(target.agent_id, (seen.get(target.agent_id) ?? new Set()).add(target.state));
    for (const event of s.events.slice(events)) say(`[${elapsed()}]      · ${event.event_type}: ${withHostNames(event.message)}`);
    events = s.events.length;
    live(progressLine(label, s));
    if (onStatus !== undefined) await onStatus(s);
    return s.completed_at === null ? undefined : s;
  }, 250);
  endLive();
  const from = final.started_at === null ? t0 : Date.parse(final.started_at);
  const to = final.completed_at === null ? Date.now() : Date.parse(final.completed_at);
  return { status: final, seconds: (to - from) / 1000, seen };
}

async function notify(body: Record<string, unknown>): Promise<string> {
  const answer = await theManager().call('POST', '/manager/v1/updates/notify', { authorization: `Bearer ${deployToken}` }, body);
  if (answer.status !== 200) throw new Error(`POST /manager/v1/updates/notify answered ${answer.status}: ${JSON.stringify(answer.json)}`);
  const { deployment_id: id, agents_affected: affected } = answer.json as { deployment_id: string; agents_affected: number };
  step(`POST /manager/v1/updates/notify -> deployment ${id}, ${affected} agents affected`);
  return id;
}

/** Keeps an agent inside a critical section (overlapping jobs through its POST /work) until `stop()`. */
function keepBusy(host: Host, serviceToken: string): { stop: () => Promise<void>; jobs: () => number } {
  const state = { running: true, jobs: 0 };
  const loop = (async () => {
    while (state.running) {
      const runtime = await agentRuntime(host);
      if (runtime !== undefined) {
        try {
          const answer = await request(`http://127.0.0.1:${runtime.port}/work?ms=${BUSY_FOR_MS}`, {
            method: 'POST',
            headers: { authorization: `Bearer service:${serviceToken}` },
            headersTimeout: 2_000,
            bodyTimeout: 2_000,
          });
          await answer.body.dump();
          if (answer.statusCode === 202) state.jobs += 1;
        } catch {
          // the agent is restarting: try again on the next round
        }
      }
      await sleep(1_000);
    }
  })();
  return {
    stop: async () => {
      state.running = false;
      await loop;
    },
    jobs: () => state.jobs,
  };
}

// -- the scenario

/**
 * With replicas: a database and a bucket of the demo's own (on the services scripts/services.sh
 * runs, or on those the environment names), and the `drover manager init` options naming them.
 */
async function sharedState(): Promise<string[]> {
  const [{ CreateBucketCommand, S3Client }, { default: pg }] = await Promise.all([import('@aws-sdk/client-s3'), import('pg')]);
  services = await startServices('postgres', 's3');
  const { postgres, s3 } = services;
  if (postgres === undefined || s3 === undefined) throw new Error('PostgreSQL and S3 did not start');
  const name = `drover_demo_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: postgres.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const database = new URL(postgres.url);
  database.pathname = `/${name}`;
  const bucket = name.replaceAll('_', '-');
  const client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  managerEnv = { ...cliEnv, DROVER_DATABASE_URL: database.toString(), AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
  step(`PostgreSQL database ${name} and S3 bucket ${bucket} (scripts/services.sh)`);
  return ['--blob-store', `s3://${bucket}/artifacts`, '--s3-endpoint', s3.endpoint, '--s3-region', s3.region, '--s3-path-style'];
}

/** --hsm: a throwaway SoftHSM2 token (under the working directory, removed with it) holding a new Ed25519 audit key; its pkcs11: URI. */
async function auditKeyInToken(): Promise<string> {
  const hsm = await createSoftHsm();
  managerEnv = { ...managerEnv, SOFTHSM2_CONF: hsm.env['SOFTHSM2_CONF'] ?? '' };
  const token = await hsm.initToken('drover-demo');
  const uri = hsm.uri(token, 'audit');
  ok(await cli(['keygen', '--pkcs11', uri, '--out', at('hsm-keys'), '--name', 'audit'], managerEnv), 'drover keygen --pkcs11');
  step('drover keygen --pkcs11: the audit key made inside a SoftHSM2 token (pkcs11:token=drover-demo;object=audit), PIN from a 0600 file');
  return uri;
}

async function setUp(): Promise<{ agentIds: string[] }> {
  heading(REPLICAS === 1 ? 'Set-up: a manager and six hosts on loopback' : `Set-up: ${REPLICAS} manager replicas and six hosts on loopback`);
  root = await mkdtemp(join(tmpdir(), 'drover-demo-'));
  // The services first, where the postgres user can reach their directory (not under root, 0700).
  const shared = REPLICAS > 1 ? await sharedState() : [];
  // The host helper makes each host with mkdtemp under os.tmpdir(): pointing TMPDIR here keeps the
  // manager and the whole fleet in this one directory, removed at the end.
  process.env['TMPDIR'] = root;
  step(`working directory ${root}`);
  ok(await cli(['keygen', '--out', at('keys'), '--name', 'release']), 'drover keygen');
  ok(await cli(['trust', 'create', '--pub', at('keys', 'release.pub'), '--out', at('trust.json')]), 'drover trust create');
  const managerDir = at('manager');
  const initArgs = ['manager', 'init', '--dir', managerDir, '--trust', at('trust.json'), '--seats', String(HOSTS), '--expires-in', '1h', '--json'];
  initArgs.push(...shared);
  if (HSM) initArgs.push('--audit-key', await auditKeyInToken());
  const init = ok(await cli(initArgs, managerEnv), 'drover manager init');
  if (HSM) check("the audit key stays in the token: no audit.key in the manager's directory", !existsSync(join(managerDir, 'keys', 'audit.key')));
  const { enrollmentToken } = JSON.parse(init.stdout) as { enrollmentToken: string };
  adminToken = (await readFile(join(managerDir, 'secrets', 'admin.token'), 'utf8')).trim();
  deployToken = (await readFile(join(managerDir, 'secrets', 'deploy.token'), 'utf8')).trim();
  // The shortest check-in interval the manager allows, and a brisk engine tick: the demo is about seconds.
  const configPath = join(managerDir, 'manager.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as { settings: Record<string, unknown> };
  config.settings['checkinIntervalSeconds'] = 5;
  config.settings['rolloutTickMs'] = 200;
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  if (REPLICAS === 1) {
    manager = await ManagerProcess.start(managerDir, managerEnv);
    managers.push(manager);
    step(`drover manager start: listening on ${manager.url} (SQLite ${join('manager', 'manager.db')}, audit log ${join('manager', 'audit', 'audit.jsonl')})`);
  } else {
    // Each replica a copy of the directory init made: the same keys, tokens, database and bucket.
    for (let i = 0; i < REPLICAS; i += 1) {
      const dir = i === 0 ? managerDir : at(`manager-${i + 1}`);
      if (i > 0) await cp(managerDir, dir, { recursive: true });
      managers.push(await ManagerProcess.start(dir, managerEnv));
    }
    manager = managers[0];
    step(`${REPLICAS} manager replicas on one PostgreSQL database, artifacts in an S3 bucket: ${managers.map((m) => m.url).join(', ')}`);
  }

  const v1 = await signedRelease('1.0.0', await agentArtifact('1.0.0'), 'feat: first release');
  const trustPolicy = JSON.parse(await readFile(at('trust.json'), 'utf8')) as TrustPolicyDocument;
  const managerKey = await readFile(join(managerDir, 'keys', 'manager.key.pub'), 'utf8');
  for (let i = 0; i < HOSTS; i += 1) {
    hosts.push(
      await createHostFor(
        // Hosts spread across the replicas, as a load balancer would spread them.
        { url: (managers[i % managers.length] ?? theManager()).url, managerKey, enrollmentToken, trustPolicy },
        {
          settings: {
            // Six hosts on one machine: each gets its own machine id, as six machines would have.
            machineId: createHash('sha256').update(randomBytes(16)).digest('hex'),
            checkin: { backoffMaxSeconds: 2 },
            update: { healthGraceSeconds: 0.5, healthTimeoutSeconds: 3, deferBackoffMaxSeconds: 1 },
          },
        },
      ),
    );
  }
  // Provisioning: v1.0.0 installed from local files (droverd install verifies it like an update), then droverd run.
  await Promise.all(hosts.map(async (h) => ok(await droverd(h, ['install', '--release', `${v1}.release.json`, v1, '--json']), 'droverd install 1.0.0')));
  for (const h of hosts) startDaemon(h);
  await Promise.all(hosts.map((h) => waitForAgent(h, '1.0.0', 30_000)));
  const agentIds = await until('every host to enroll', 20_000, async () => {
    const all = await Promise.all(hosts.map(credentials));
    return all.every((c) => c !== undefined) ? all.map((c) => c.agentId) : undefined;
  });
  await until('every host to check in healthy at 1.0.0', 30_000, async () => {
    const agents = await fleet();
    return agents.length === HOSTS && agents.every((a) => a.agentVersion === '1.0.0' && a.health?.status === 'healthy') ? true : undefined;
  });
  for (const [i, agentId] of agentIds.entries()) {
    const answer = await theManager().call('PUT', `/v1/agents/${agentId}/rollout`, admin(), { group: GROUPS[i] });
    if (answer.status !== 200) throw new Error(`PUT /v1/agents/${agentId}/rollout answered ${answer.status}: ${JSON.stringify(answer.json)}`);
  }
  step(`${HOSTS} droverd hosts enrolled (pinned manager key, one enrollment token), each supervising examples/agent 1.0.0`);
  // The manager's events name agents by id: one legend line ties each host to its agent and group
  // (canary group "explorer" fills phase "explorers", CIRIS's names for both).
  step(`hosts, their agent ids (as the manager's events name them) and canary groups:`);
  for (const [i, id] of agentIds.entries()) {
    hostNames.set(id, `host-${i + 1}`);
    say(`             host-${i + 1}  ${id}  ${String(GROUPS[i])}`);
  }
  return { agentIds };
}

async function fleetOn(version: string): Promise<{ ok: boolean; detail: string }> {
  const seen = await Promise.all(hosts.map(async (h, i) => ({ host: `host-${i + 1}`, health: await health(h) })));
  const off = seen.filter((s) => s.health?.version !== version || s.health.status !== 'healthy');
  return { ok: off.length === 0, detail: off.map((s) => `${s.host}: ${s.health?.version ?? 'no answer'} ${s.health?.status ?? ''}`).join(', ') };
}

async function rolloutOne(agentIds: string[]): Promise<Watched> {
  heading('1. v1.1.0: signed, published, canary rollout through the deploy API; one agent busy');
  const file = await signedRelease('1.1.0', await agentArtifact('1.1.0'), 'feat: faster telemetry\nfix: memory leak in the work queue');
  const published = await publish(file);
  check('v1.1.0 is published (signature checked by the manager)', published.code === 0, `${published.stdout}${published.stderr}`.trim());
  const busyHost = hosts[BUSY_HOST];
  const busyId = agentIds[BUSY_HOST];
  const creds = busyHost === undefined ? undefined : await credentials(busyHost);
  if (busyHost === undefined || busyId === undefined || creds === undefined) throw new Error('the busy host is missing');
  // host-5 is in a critical section (overlapping jobs) from now until its daemon has been told "busy".
  const busy = keepBusy(busyHost, creds.serviceToken);
  step(`host-${BUSY_HOST + 1}'s agent is busy: jobs through its POST /work (service token), until its update is deferred`);
  const id = await notify({ artifact: 'agent', version: '1.1.0', strategy: 'canary', changelog: 'feat: faster telemetry', source: 'drover-demo', metadata: { rollout: ROLLOUT_OPTIONS } });
  let released = false;
  const watched = await watch('v1.1.0', id, async (s) => {
    const target = s.agents.find((t) => t.agent_id === busyId);
    if (!released && target !== undefined && (target.state === 'deferred' || ENDED.has(target.state))) {
      released = true;
      await busy.stop();
      const why = target.state === 'deferred' ? 'deferred: its agent answered 503 (busy) to the shutdown request' : `already ${target.state}`;
      say(`[${elapsed()}]      host-${BUSY_HOST + 1} ${why}; its jobs end within ${BUSY_FOR_MS / 1000} s, then its daemon retries`);
    }
  }).finally(() => busy.stop());
  const s = watched.status;
  check('rollout 1 completed', s.status === 'completed', `status ${s.status}: ${s.message}`);
  check('rollout 1 ran three canary phases (explorers -> early_adopters -> general)', JSON.stringify(Object.keys(s.canary_assignments ?? {})) === '["explorers","early_adopters","general"]', JSON.stringify(s.canary_assignments));
  check('rollout 1 updated all 6 agents, none failed', s.agents_updated === HOSTS && s.agents_failed === 0, `updated ${s.agents_updated}, failed ${s.agents_failed}`);
  check(`the busy agent (host-${BUSY_HOST + 1}) was deferred, not forced, then updated`, (watched.seen.get(busyId)?.has('deferred') ?? false) && s.agents_deferred >= 1 && s.agents.find((t) => t.agent_id === busyId)?.state === 'succeeded', `states seen ${[...(watched.seen.get(busyId) ?? [])].join(',')}, agents_deferred ${s.agents_deferred}`);
  const busyLines = (currentDaemon(busyHost)?.lines ?? []).filter((line) => line['deploymentId'] === id);
  check(`host-${BUSY_HOST + 1}'s droverd got 503 from its agent and retried (update.deferred in its log)`, busyLines.some((line) => line.event === 'update.deferred'), `${busyLines.length} log lines for ${id}`);
  const on = await fleetOn('1.1.0');
  check('every host runs v1.1.0, healthy', on.ok, on.detail);
  return watched;
}

async function rolloutTwo(agentIds: string[]): Promise<Watched> {
  heading('2. v1.2.0: starts degraded; the first canary phase must fail its gate and roll back');
  const file = await signedRelease('1.2.0', await agentArtifact('1.2.0', { unhealthy: true }), 'feat: new scheduler (reports degraded: the demo\'s bad release)');
  const published = await publish(file);
  check('v1.2.0 is published', published.code === 0, `${published.stdout}${published.stderr}`.trim());
  const id = await notify({ artifact: 'agent', version: '1.2.0', strategy: 'canary', changelog: 'feat: new scheduler', source: 'drover-demo', metadata: { rollout: ROLLOUT_OPTIONS } });
  const watched = await watch('v1.2.0', id);
  const s = watched.status;
  const first = s.agents.filter((t) => t.phase === 'explorers');
  const later = s.agents.filter((t) => t.phase !== 'explorers');
  check('rollout 2 failed', s.status === 'failed', `status ${s.status}`);
  check('the first phase failed its gate', s.events.some((e) => e.event_type === 'gate_failed'), s.events.map((e) => e.event_type).join(','));
  check('later phases never started (their targets skipped)', !s.events.some((e) => e.event_type === 'phase_started') && later.every((t) => t.state === 'skipped'), later.map((t) => t.state).join(','));
  check('the first phase holds the two explorers', first.length === 2 && first.every((t) => agentIds.indexOf(t.agent_id) !== -1 && GROUPS[agentIds.indexOf(t.agent_id)] === 'explorer'), first.map((t) => t.agent_id).join(','));
  // Each explorer's daemon installed v1.2.0, saw it degraded and rolled back by itself; the manager holds that outcome.
  const audit = await auditRecords();
  for (const t of [...first].sort((a, b) => agentIds.indexOf(a.agent_id) - agentIds.indexOf(b.agent_id))) {
    const i = agentIds.indexOf(t.agent_id);
    const h = hosts[i];
    const steps = h === undefined ? [] : (currentDaemon(h)?.lines ?? []).filter((line) => line['deploymentId'] === id && line.event === 'update.step').map((line) => String(line.step));
    const completed = audit.find((r) => r.event === 'update.completed' && r.agentId === t.agent_id && r.deploymentId === id);
    check(
      `host-${i + 1} ran v1.2.0, found it degraded and rolled back to v1.1.0 (manager: rolled_back HEALTH_CHECK_FAILED)`,
      steps.includes('swapped') && steps.includes('health_check') && steps.includes('rolled_back') && completed?.outcome === 'rolled_back' && completed.details['code'] === 'HEALTH_CHECK_FAILED',
      `droverd steps ${steps.join('>')}; manager outcome ${completed?.outcome ?? 'none'} ${typeof completed?.details['code'] === 'string' ? completed.details['code'] : ''}`,
    );
  }
  const on = await fleetOn('1.1.0');
  check('the fleet stays on v1.1.0, every host healthy', on.ok, on.detail);
  return watched;
}

async function tampered(): Promise<void> {
  heading('3. A tampered v1.3.0: refused by the manager and by a host');
  const file = await signedRelease('1.3.0', await agentArtifact('1.3.0'), 'fix: nothing to see here');
  // One byte flipped after signing: the bytes no longer match the signed SHA-256.
  const bytes = await readFile(file);
  const middle = Math.floor(bytes.length / 2);
  bytes[middle] = (bytes[middle] ?? 0) ^ 0x01;
  await writeFile(file, bytes);
  const refused = await publish(file);
  const publishCode = errorCode(`${refused.stderr}${refused.stdout}`);
  step(`drover release publish v1.3.0 -> exit ${String(refused.code)}: ${(refused.stderr || refused.stdout).trim().split('\n')[0] ?? ''}`);
  check('the manager refuses to publish v1.3.0 (ARTIFACT_DIGEST_MISMATCH)', refused.code !== 0 && `${refused.stdout}${refused.stderr}`.includes('ARTIFACT_DIGEST_MISMATCH'), `exit ${String(refused.code)}, code ${publishCode}`);
  const lookup = await theManager().call('GET', `/v1/releases/agent/1.3.0?platform=${PLATFORM}`, admin());
  check('the manager has no v1.3.0 to hand out', lookup.status === 404, `GET /v1/releases/agent/1.3.0 -> ${lookup.status}`);

  // A host handed the files directly: droverd install verifies them exactly as an update (it needs droverd stopped).
  const host = hosts[HOSTS - 1];
  if (host === undefined) throw new Error('no host');
  const treeBefore = await releaseTree(host);
  await currentDaemon(host)?.stop();
  const install = await droverd(host, ['install', '--release', `${file}.release.json`, file, '--json']);
  const installText = `${install.stdout}${install.stderr}`;
  const installCode = errorCode(installText);
  step(`host-${HOSTS}: droverd install v1.3.0 -> exit ${String(install.code)}, ${installCode}`);
  findings['refusals'] = { publish: { exit: refused.code, code: publishCode }, install: { exit: install.code, code: installCode } };
  check(`host-${HOSTS} refuses to install v1.3.0 (ARTIFACT_DIGEST_MISMATCH), nothing installed`, install.code !== 0 && installCode === 'ARTIFACT_DIGEST_MISMATCH' && JSON.stringify(await releaseTree(host)) === JSON.stringify(treeBefore), `exit ${String(install.code)}, ${installCode}`);
  startDaemon(host);
  await waitForAgent(host, '1.1.0', 20_000);
  step(`host-${HOSTS}: droverd restarted, agent back on 1.1.0`);
}

/** A target's end as the table shows it: its state, and why when it did not succeed. */
function targetCell(s: DeploymentStatus, agentId: string): string {
  const target = s.agents.find((t) => t.agent_id === agentId);
  if (target === undefined) return '-';
  if (target.state === 'failed' && target.error?.code === 'HOST_ROLLED_BACK') return 'failed, rolled back by droverd';
  return target.state;
}

async function report(rollouts: { label: string; watched: Watched }[], agentIds: string[]): Promise<void> {
  heading('4. The fleet, the audit log, the figures');
  const agents = await fleet();
  const rows = await Promise.all(
    hosts.map(async (h, i) => {
      const agentId = agentIds[i] ?? '';
      const view = agents.find((a) => a.agentId === agentId);
      const live = await health(h);
      return [
        `host-${i + 1}`,
        agentId.slice(0, 12),
        String(GROUPS[i]),
        live?.version ?? '?',
        live?.status ?? 'no answer',
        view?.agentVersion ?? '?',
        ...rollouts.map((r) => targetCell(r.watched.status, agentId)),
      ];
    }),
  );
  findings['fleet'] = agents;
  findings['replicas'] = managers.map((m) => m.url);
  findings['hosts'] = await Promise.all(
    hosts.map(async (h, i) => ({ host: `host-${i + 1}`, agentId: agentIds[i], group: GROUPS[i], manager: managers[i % managers.length]?.url, health: await health(h), releases: await releaseTree(h) })),
  );
  findings['rollouts'] = rollouts.map((r) => ({ label: r.label, seconds: r.watched.seconds, status: r.watched.status, seen: Object.fromEntries([...r.watched.seen].map(([id, states]) => [id, [...states]])) }));
  findings['audit'] = await auditRecords();
  const header = ['host', 'agent', 'group', 'version', 'state', 'manager sees', ...rollouts.map((r) => r.label)];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const format = (cells: string[]): string => `  ${cells.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  ')}`.trimEnd();
  say(format(header));
  say(format(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) say(format(row));
  check('the manager records every host on v1.1.0', agents.length === HOSTS && agents.every((a) => a.agentVersion === '1.1.0'), agents.map((a) => a.agentVersion).join(','));

  const audit = await cli(['audit', 'verify', '--dir', at('manager')], managerEnv);
  say('');
  findings['auditVerify'] = { exit: audit.code, stdout: audit.stdout };
  for (const line of (audit.stdout || audit.stderr).trim().split('\n')) say(`  drover audit verify: ${line}`);
  check('drover audit verify: the audit log verifies', audit.code === 0 && /^VERIFIED \d+ records/.test(audit.stdout), `exit ${String(audit.code)}`);
  const events = (await auditRecords()).map((r) => r.event);
  check('the audit log holds the deferral, the gate failure and the refused publication', ['deployment.agent_deferred', 'deployment.gate_failed', 'release.refused'].every((e) => events.includes(e)), ['deployment.agent_deferred', 'deployment.gate_failed', 'release.refused'].filter((e) => !events.includes(e)).join(','));

  say('');
  for (const r of rollouts) say(`  ${r.label.padEnd(8)} ${r.watched.status.status.padEnd(10)} ${r.watched.seconds.toFixed(1).padStart(5)} s  (notify -> end; agents_updated ${r.watched.status.agents_updated}, deferred ${r.watched.status.agents_deferred}, failed ${r.watched.status.agents_failed})`);
}

async function main(): Promise<number> {
  const timeoutMs = OVERALL_TIMEOUT_MS + (REPLICAS > 1 ? SERVICES_MS : 0);
  const watchdog = setTimeout(() => {
    say(`\nFAILED: the demo did not finish within ${timeoutMs / 1000} s; stopping everything.`);
    void cleanup().finally(() => process.exit(1));
  }, timeoutMs);
  try {
    say(REPLICAS === 1 ? 'drover demo: a real manager and six real droverd hosts on loopback' : `drover demo: ${REPLICAS} real manager replicas (PostgreSQL, S3) and six real droverd hosts on loopback`);
    const { agentIds } = await setUp();
    const one = await rolloutOne(agentIds);
    const two = await rolloutTwo(agentIds);
    await tampered();
    await report([{ label: 'v1.1.0', watched: one }, { label: 'v1.2.0', watched: two }], agentIds);
  } catch (error) {
    endLive();
    // After Ctrl-C the processes are gone on purpose: that is not a failed expectation.
    if (interrupted) return 130;
    check('the scenario ran to its end', false, error instanceof Error ? error.message : String(error));
  } finally {
    clearTimeout(watchdog);
  }
  const total = (Date.now() - started) / 1000;
  const reportPath = process.env['DROVER_DEMO_REPORT'];
  if (reportPath !== undefined && reportPath !== '') {
    await writeFile(reportPath, `${JSON.stringify({ ...findings, totalSeconds: total, expectations }, null, 2)}\n`);
  }
  const failed = expectations.filter((e) => !e.ok);
  const verdict = (): void => {
    if (failed.length > 0) {
      say(`\nDEMO FAILED: ${failed.length} of ${expectations.length} expectations did not hold:`);
      for (const f of failed) say(`  - ${f.name}${f.detail === '' ? '' : `: ${f.detail}`}`);
    } else {
      say(`\nDEMO OK: all ${expectations.length} expectations held.`);
    }
  };
  if (KEEP && !interrupted && managers.length > 0) {
    keptExitCode = failed.length > 0 ? 1 : 0;
    say(`  total    ${total.toFixed(1)} s (set-up, both rollouts, the refusals, the report)`);
    verdict();
    keepRunning();
    // Until Ctrl-C (or SIGTERM): the signal handler cleans up and exits with keptExitCode.
    setInterval(() => undefined, 60_000);
    await new Promise<never>(() => undefined);
  }
  await cleanup();
  say(`  total    ${total.toFixed(1)} s (set-up, both rollouts, the refusals, the report); clean-up done, temporary directories removed`);
  verdict();
  return failed.length > 0 ? 1 : 0;
}

/** --keep: where the fleet the demo leaves running is, and how to look at it. */
function keepRunning(): void {
  const tokenFile = at('manager', 'secrets', 'admin.token');
  const url = theManager().url;
  heading('The fleet stays up (--keep)');
  say(`  web console  ${url}/ui/`);
  say(`               log in with the admin token, the one line of ${tokenFile}`);
  for (const [i, m] of managers.entries()) if (i > 0) say(`               (replica ${i + 1}: ${m.url}/ui/, the same token; a console session lives on the replica that opened it)`);
  say(`  the CLI      npx drover rollout list --manager ${url} --token-file ${tokenFile}`);
  say(`               npx drover agents list --manager ${url} --token-file ${tokenFile}`);
  say(`  Ctrl-C stops the manager${managers.length > 1 ? 's' : ''} and the ${HOSTS} hosts and removes ${root ?? 'the working directory'}.`);
}

process.exitCode = await main();
