// The throwaway PostgreSQL, S3 server and Prometheus of scripts/services.sh, for the suites that need them.
// A suite asks for what it needs; it gets the running services from the environment
// (DROVER_TEST_DATABASE_URL, DROVER_TEST_S3_*: a developer's own, or ones started once with
// `eval "$(bash scripts/services.sh start)"`), or else starts them itself for the file and stops
// them after. Where they are not installed the suite skips and says why; in CI
// (DROVER_REQUIRE_POSTGRES=1, DROVER_REQUIRE_S3=1) it runs and fails instead (skip.ts).
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { skipUnlessRequired } from './skip.js';

const script = fileURLToPath(new URL('../../scripts/services.sh', import.meta.url));
const run = promisify(execFile);

export interface PostgresService {
  url: string;
}

export interface S3Service {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface Services {
  postgres?: PostgresService;
  s3?: S3Service;
  /** Stops what this call started (nothing when the services came from the environment). */
  stop(): Promise<void>;
}

type Kind = 'postgres' | 's3';

const requireVar: Record<Kind, string> = { postgres: 'DROVER_REQUIRE_POSTGRES', s3: 'DROVER_REQUIRE_S3' };

function onPath(command: string): boolean {
  return (process.env['PATH'] ?? '').split(':').some((dir) => dir !== '' && existsSync(`${dir}/${command}`));
}

function postgresInstalled(): boolean {
  try {
    return readdirSync('/usr/lib/postgresql').some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)) || onPath('pg_config');
  } catch {
    return onPath('pg_config');
  }
}

/** Why `kind` cannot run here, or undefined when it can. */
export function serviceMissing(kind: Kind): string | undefined {
  if (kind === 'postgres') {
    if (process.env['DROVER_TEST_DATABASE_URL'] !== undefined) return undefined;
    return postgresInstalled() ? undefined : 'PostgreSQL is not installed (apt-get install postgresql), and DROVER_TEST_DATABASE_URL is not set';
  }
  if (process.env['DROVER_TEST_S3_ENDPOINT'] !== undefined) return undefined;
  return ['swift-proxy-server', 'swift-account-server', 'swift-container-server', 'swift-object-server', 'swift-ring-builder'].every(onPath)
    ? undefined
    : 'the S3 server is not installed (apt-get install swift-proxy swift-account swift-container swift-object), and DROVER_TEST_S3_ENDPOINT is not set';
}

/**
 * True when a suite needing `kinds` should skip (after printing why); not where CI requires them
 * (DROVER_REQUIRE_POSTGRES=1, DROVER_REQUIRE_S3=1): there it runs and fails on what is missing.
 */
export function skipWithoutServices(what: string, ...kinds: Kind[]): boolean {
  return kinds.map((kind) => skipUnlessRequired(what, serviceMissing(kind), requireVar[kind])).some(Boolean);
}

function parseExports(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) vars[match[1]] = match[2];
  }
  return vars;
}

/** The services `kinds`, from the environment or started now by scripts/services.sh. */
export async function startServices(...kinds: Kind[]): Promise<Services> {
  const env = process.env;
  const fromEnv = kinds.filter((kind) => (kind === 'postgres' ? env['DROVER_TEST_DATABASE_URL'] : env['DROVER_TEST_S3_ENDPOINT']) !== undefined);
  const toStart = kinds.filter((kind) => !fromEnv.includes(kind));
  let vars: Record<string, string> = { ...(env as Record<string, string>) };
  let dir: string | undefined;
  if (toStart.length > 0) {
    const { stdout } = await run('bash', [script, 'start', ...toStart.map((k) => `--${k}`)], { timeout: 120_000 });
    const started = parseExports(stdout);
    dir = started['DROVER_SERVICES_DIR'];
    vars = { ...vars, ...started };
  }
  const services: Services = {
    stop: async () => {
      if (dir !== undefined) await run('bash', [script, 'stop', dir], { timeout: 60_000 });
    },
  };
  if (kinds.includes('postgres')) services.postgres = { url: required(vars, 'DROVER_TEST_DATABASE_URL') };
  if (kinds.includes('s3')) {
    services.s3 = {
      endpoint: required(vars, 'DROVER_TEST_S3_ENDPOINT'),
      region: vars['DROVER_TEST_S3_REGION'] ?? 'us-east-1',
      accessKeyId: required(vars, 'DROVER_TEST_S3_ACCESS_KEY_ID'),
      secretAccessKey: required(vars, 'DROVER_TEST_S3_SECRET_ACCESS_KEY'),
    };
  }
  return services;
}

function required(vars: Record<string, string>, name: string): string {
  const value = vars[name];
  if (value === undefined || value === '') throw new Error(`${name} is not set (scripts/services.sh start prints it)`);
  return value;
}

/**
 * A throwaway PostgreSQL of the suite's own, never the environment's: for a suite that stops the
 * server under a running manager. Skip with {@link skipWithoutServices} first (it needs the packages).
 */
export async function startOwnPostgres(): Promise<PostgresService & { stop(): Promise<void> }> {
  return startOwn(['--postgres'], 'DROVER_TEST_DATABASE_URL');
}

/** One service started by scripts/services.sh for the caller alone: its URL (from `urlVar`), and how to stop it. */
async function startOwn(flags: string[], urlVar: string, env?: NodeJS.ProcessEnv): Promise<{ url: string; stop(): Promise<void> }> {
  const { stdout } = await run('bash', [script, 'start', ...flags], { timeout: 120_000, ...(env === undefined ? {} : { env }) });
  const vars = parseExports(stdout);
  const dir = required(vars, 'DROVER_SERVICES_DIR');
  return {
    url: required(vars, urlVar),
    stop: async () => {
      await run('bash', [script, 'stop', dir], { timeout: 60_000 });
    },
  };
}

/** Why Prometheus cannot run here (Debian's `prometheus`, with promtool), or undefined when it can. */
export function prometheusMissing(): string | undefined {
  return onPath('prometheus') && onPath('promtool') ? undefined : 'Prometheus is not installed (apt-get install prometheus)';
}

/** True when a suite needing Prometheus should skip (after printing why); never where DROVER_REQUIRE_PROMETHEUS=1. */
export function skipWithoutPrometheus(what: string): boolean {
  return skipUnlessRequired(what, prometheusMissing(), 'DROVER_REQUIRE_PROMETHEUS');
}

export interface PrometheusService {
  /** Its HTTP API, e.g. `${url}/api/v1/query`. */
  url: string;
  stop(): Promise<void>;
}

/**
 * A real Prometheus (scripts/services.sh start --prometheus) scraping `target` (`127.0.0.1:PORT`)
 * at `path` every second, with the bearer token in `tokenFile`. Skip with
 * {@link skipWithoutPrometheus} first.
 */
export async function startPrometheus(options: { target: string; tokenFile: string; path?: string }): Promise<PrometheusService> {
  return startOwn(['--prometheus'], 'DROVER_TEST_PROMETHEUS_URL', {
    ...process.env,
    DROVER_PROMETHEUS_TARGET: options.target,
    DROVER_PROMETHEUS_TOKEN_FILE: options.tokenFile,
    DROVER_PROMETHEUS_PATH: options.path ?? '/metrics',
  });
}
