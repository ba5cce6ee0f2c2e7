// An agent process for push-mode tests (examples/agent, or the CIRIS-shaped fixture): spawned with
// the environment given, its JSON log lines collected, ready once it prints its `listening` line
// (with the port it bound: AGENT_PORT=0 picks one).
import { spawn } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { repoRoot } from '../helpers/cli.js';
import { waitFor } from './fleet-simulator.js';

export interface AgentProcess {
  child: ChildProcessByStdio<null, Readable, Readable>;
  port: number;
  startedAt: number;
  lines: () => Record<string, unknown>[];
  exited: Promise<number | null>;
}

/** Starts `node <args>` (or `command <args>`) in the repository, and resolves once it listens; `children` tracks it until it exits. */
export function startAgentProcess(args: readonly string[], env: Record<string, string>, children: Set<AgentProcess>, command: string = process.execPath): Promise<AgentProcess> {
  const startedAt = Date.now();
  const child = spawn(command, [...args], {
    cwd: repoRoot,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', AGENT_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      resolve(code);
    });
  });
  const lines = (): Record<string, unknown>[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return waitFor('the agent to listen', () => {
    const listening = lines().find((l) => l['event'] === 'listening');
    if (listening === undefined) return undefined;
    const agent: AgentProcess = { child, port: Number(listening['port']), startedAt, lines, exited };
    children.add(agent);
    void exited.then(() => children.delete(agent));
    return agent;
  }, 15_000);
}

/** Kills (SIGKILL) every agent process still running, and waits for them to exit. */
export async function killAgentProcesses(children: Set<AgentProcess>): Promise<void> {
  for (const agent of children) agent.child.kill('SIGKILL');
  await Promise.all([...children].map((a) => a.exited));
  children.clear();
}
