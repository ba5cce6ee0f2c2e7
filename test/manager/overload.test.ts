// A fleet reconnecting after an outage (issue 18): 10,000 hosts, each on its own connection, check
// in with a real manager process at the same moment and keep at it the way droverd does. Before
// admission control, a manager with Node's listen backlog (511) timed out thousands of such
// requests while the kernel dropped connections from its full queue. Now every attempt gets an
// answer in time: a 200, or a 503 OVERLOADED with a Retry-After, and every host checks in.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnrollResponse } from '@drover/protocol';
import { enrollBody } from '../../packages/manager/test/harness.js';
import { drover } from '../helpers/cli.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import { skipUnlessRequired } from '../helpers/skip.js';
import { reconnectStorm } from '../helpers/storm.js';
import type { StormAgent } from '../helpers/storm.js';

const CONNECTIONS = 10_000;
const AGENTS = 100;

/** This process's open-file limit (Node raises the soft limit to the hard one at start). */
function openFileLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
}

const limit = openFileLimit();
const skip = skipUnlessRequired(
  'the 10,000-connection load test',
  limit < CONNECTIONS + 1_000 ? `this process may open ${limit} files, and the test needs ${CONNECTIONS + 1_000} (raise the hard limit: ulimit -Hn 65536, as root)` : undefined,
  'DROVER_REQUIRE_ROOT',
);

let dir: string | undefined;
let manager: ManagerProcess | undefined;
const agents: StormAgent[] = [];
const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };

beforeAll(async () => {
  if (skip) return;
  const base = await mkdtemp(join(tmpdir(), 'drover-overload-'));
  dir = base;
  const init = await drover(['manager', 'init', '--dir', join(base, 'm'), '--seats', String(AGENTS), '--expires-in', '1h', '--json'], { env });
  expect(init.code, init.stderr).toBe(0);
  const { enrollmentToken } = JSON.parse(init.stdout) as { enrollmentToken: string };
  manager = await ManagerProcess.start(join(base, 'm'), env);
  const pool = new Pool(manager.url, { connections: 8 });
  try {
    await Promise.all(
      Array.from({ length: AGENTS }, async () => {
        const machineId = createHash('sha256').update(randomBytes(16)).digest('hex');
        const res = await pool.request({ method: 'POST', path: '/v1/agents/enroll', headers: { 'content-type': 'application/json', 'x-machine-id': machineId }, body: JSON.stringify(enrollBody(enrollmentToken, machineId, { inventory: {} })) });
        const answer = (await res.body.json()) as EnrollResponse;
        expect(res.statusCode).toBe(200);
        agents.push({ agentId: answer.agentId, credential: answer.credential, machineId });
      }),
    );
  } finally {
    await pool.close();
  }
}, 60_000);

afterAll(async () => {
  await manager?.stop(5_000);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(skip)('a fleet reconnecting at once', () => {
  it('10,000 hosts check in at the same moment: no attempt times out, the excess is answered 503 OVERLOADED with a Retry-After, and every host checks in', async () => {
    if (manager === undefined) throw new Error('no manager');
    const result = await reconnectStorm({ url: manager.url, agents, connections: CONNECTIONS, attemptTimeoutMs: 10_000, deadlineMs: 120_000 });
    console.log(`reconnect storm: ${JSON.stringify(result)}`);
    expect(result.timeouts).toBe(0);
    expect(result.other).toEqual({});
    expect(result.checkedIn).toBe(CONNECTIONS);
    // The manager shed what it could not serve at once, and told each host when to come back.
    expect(result.overloaded).toBeGreaterThan(0);
    expect(result.overloadedWithoutRetryAfter).toBe(0);
    // The manager said what it shed, in one line per 10 s rather than one per request; and it is
    // ready again once the storm is over.
    const until = Date.now() + 12_000;
    while (!manager.output().includes('"event":"manager.overloaded"') && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 200));
    const reports = manager.output().split('\n').filter((line) => line.includes('"event":"manager.overloaded"'));
    expect(reports.length).toBeGreaterThan(0);
    expect(reports.length).toBeLessThan(20);
    expect((await manager.call('GET', '/readyz', {})).status).toBe(200);
  }, 180_000);
});
