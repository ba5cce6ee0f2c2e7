// `drover agent-check` (issue 15) as a user runs it: the built CLI against real agent processes.
// It passes examples/agent (Node, @drover/agent) and a Python standard-library agent that follows
// the rules (test/fixtures/check-agent.py), and names the broken rule for each agent broken on
// purpose, one per rule. The timing rule is tested against an early-exit comparison with 1 ms per
// matching byte, a leak large enough that a few dozen samples find it.
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateServiceToken } from '@drover/protocol';
import { drover } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';
import { killAgentProcesses, startAgentProcess } from './agent-process.js';
import type { AgentProcess } from './agent-process.js';

const children = new Set<AgentProcess>();
let dir = '';
const python = spawnSync('python3', ['--version'], { timeout: 10_000 }).status === 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-agent-check-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await killAgentProcesses(children);
});

interface Rule {
  rule: string;
  verdict: 'PASS' | 'FAIL' | 'SKIP';
  why: string;
  details?: Record<string, unknown>;
}

// What a user would pass to make the agent busy: POST /work?ms=N with the token (node, not curl, so the test needs nothing more).
const busyCommand = `"${process.execPath}" -e 'fetch(process.env.DROVER_AGENT_URL.replace(/\\/$/, "") + "/work?ms=2500", { method: "POST", headers: { authorization: "Bearer service:" + process.env.DROVER_SERVICE_TOKEN } }).then((r) => process.exit(r.status === 202 ? 0 : 1), () => process.exit(1))'`;

async function check(agent: AgentProcess, token: string, extra: string[]): Promise<{ result: RunResult; rules: Map<string, Rule> }> {
  const tokenFile = join(dir, `token-${agent.port}`);
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const result = await drover(['agent-check', `http://127.0.0.1:${agent.port}`, '--token-file', tokenFile, '--json', ...extra], { env: { PATH: process.env['PATH'] ?? '' } });
  const rules = new Map(((JSON.parse(result.stdout) as { rules: Rule[] }).rules).map((r) => [r.rule, r]));
  return { result, rules };
}

function startPython(mode: string, token: string): Promise<AgentProcess> {
  return startAgentProcess(['test/fixtures/check-agent.py', mode], { DROVER_SERVICE_TOKEN: token, AGENT_PORT: '0', AGENT_DRAIN_SECONDS: '5' }, children, 'python3');
}

const allRules = ['health-version', 'auth-missing', 'auth-malformed', 'auth-wrong', 'auth-timing', 'busy-503', 'shutdown-200', 'shutdown-exits'];

describe('drover agent-check', () => {
  it('passes examples/agent on every rule, and the agent has ended', async () => {
    const token = generateServiceToken();
    const agent = await startAgentProcess(['--import', 'tsx', 'examples/agent/agent.ts'], { DROVER_SERVICE_TOKEN: token, AGENT_PORT: '0', AGENT_DRAIN_TIMEOUT_MS: '6000' }, children);
    const { result, rules } = await check(agent, token, ['--samples', '400', '--busy-command', busyCommand, '--drain-seconds', '10']);
    expect([...rules.values()].map((r) => `${r.rule} ${r.verdict}`), result.stdout).toEqual(allRules.map((r) => `${r} PASS`));
    expect(result.code).toBe(0);
    expect(await agent.exited).toBe(0);
    // The checks asked the agent to stop once, with the right token.
    expect(agent.lines().filter((l) => l['event'] === 'shutdown_accepted')).toHaveLength(1);
  }, 60_000);

  it.skipIf(!python)('passes a Python standard-library agent that follows the rules; the text output has one line per rule', async () => {
    const token = generateServiceToken();
    const agent = await startPython('good', token);
    const tokenFile = join(dir, 'python-good-token');
    await writeFile(tokenFile, token, { mode: 0o600 });
    const result = await drover(['agent-check', `http://127.0.0.1:${agent.port}`, '--token-file', tokenFile, '--samples', '300', '--busy-command', busyCommand, '--drain-seconds', '10'], { env: { PATH: process.env['PATH'] ?? '' } });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines.slice(0, allRules.length).map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual(allRules.map((r) => `PASS ${r}`));
    expect(result.stdout).not.toContain(token);
    expect(await agent.exited).toBe(0);
  }, 60_000);

  it('passes the fixture agent in the real CIRIS agent\'s shapes (health envelope, FastAPI refusals); busy-503 skipped without --busy-command', async () => {
    const token = generateServiceToken();
    const agent = await startAgentProcess(['test/fixtures/ciris-agent.cjs'], { CIRIS_SERVICE_TOKEN: token, AGENT_PORT: '0', CIRIS_FIXTURE_WAKEUP_MS: '0' }, children);
    const { result, rules } = await check(agent, token, ['--samples', '300', '--drain-seconds', '10']);
    expect([...rules.values()].map((r) => `${r.rule} ${r.verdict}`), result.stdout).toEqual(allRules.map((r) => `${r} ${r === 'busy-503' ? 'SKIP' : 'PASS'}`));
    expect(rules.get('health-version')?.why).toContain('2.9.33-stable');
    expect(result.code).toBe(0);
    expect(await agent.exited).toBe(0);
  }, 60_000);

  const broken: [mode: string, rule: string][] = [
    ['health-no-version', 'health-version'],
    ['accepts-missing', 'auth-missing'],
    ['malformed-400', 'auth-malformed'],
    ['accepts-wrong', 'auth-wrong'],
    ['early-exit', 'auth-timing'],
    ['busy-200', 'busy-503'],
    ['busy-no-retry-after', 'busy-503'],
    ['shutdown-refused', 'shutdown-200'],
    ['never-exits', 'shutdown-exits'],
  ];
  it.skipIf(!python).each(broken)('names the broken rule: an agent in mode %s fails %s', async (mode, rule) => {
    const token = generateServiceToken();
    const agent = await startPython(mode, token);
    const { result, rules } = await check(agent, token, ['--samples', '40', '--busy-command', busyCommand, '--drain-seconds', '3']);
    expect(rules.get(rule)?.verdict, result.stdout).toBe('FAIL');
    expect(result.code).toBe(1);
    // The rules before the broken one pass: the check tells which rule is broken, not just that one is.
    for (const before of allRules.slice(0, allRules.indexOf(rule))) expect(rules.get(before)?.verdict, `${before}: ${rules.get(before)?.why ?? ''}`).toBe('PASS');
  }, 30_000);

  it.skipIf(!python)('reads the health of an agent that requires its token there, and says push mode would not see it', async () => {
    const token = generateServiceToken();
    const agent = await startPython('health-needs-token', token);
    const { result, rules } = await check(agent, token, ['--samples', '40', '--keep-running']);
    expect(result.code, result.stdout).toBe(0);
    const health = rules.get('health-version');
    expect([health?.verdict, health?.details?.['requiresToken']]).toEqual(['PASS', true]);
    expect(health?.why).toContain('push mode');
  }, 30_000);

  it('skips busy-503 without --busy-command, keeps the agent running with --keep-running, and refuses a bad URL', async () => {
    const token = generateServiceToken();
    const agent = await startAgentProcess(['--import', 'tsx', 'examples/agent/agent.ts'], { DROVER_SERVICE_TOKEN: token, AGENT_PORT: '0' }, children);
    const { result, rules } = await check(agent, token, ['--samples', '100', '--keep-running']);
    expect(result.code, result.stdout).toBe(0);
    expect(['busy-503', 'shutdown-200', 'shutdown-exits'].map((r) => rules.get(r)?.verdict)).toEqual(['SKIP', 'SKIP', 'SKIP']);
    expect(agent.lines().some((l) => l['event'] === 'shutdown_accepted')).toBe(false);
    const usage = await drover(['agent-check', 'ftp://127.0.0.1:1', '--token-file', '/dev/null']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('USAGE_ERROR');
  }, 60_000);
});
