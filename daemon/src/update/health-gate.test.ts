import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { HttpClient } from '@drover/http';
import { afterEach, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { AgentClient } from '../agent/client.js';
import type { AgentExit, RunningAgent } from '../agent/supervisor.js';
import { DaemonError } from '../errors.js';
import { passHealthGate } from './health-gate.js';

// The health gate against a real HTTP agent on 127.0.0.1:0 whose answers are scripted per probe.
// Correctness only: which answers pass or fail the gate; no timing is asserted.

interface Answer {
  status: 'healthy' | 'degraded' | 'starting';
  version: string;
}

describe('passHealthGate', () => {
  let server: Server | undefined;
  const http = new HttpClient({ userAgent: 'droverd/test', proxy: false, retry: { maxAttempts: 1 } });

  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => {
      if (server === undefined) resolve();
      else server.close(() => {
        resolve();
      });
    });
    server = undefined;
  });

  /** An agent answering `script[i]` to its i-th probe (the last one from then on); records when each probe came. */
  async function agent(script: Answer[]): Promise<{ running: RunningAgent; probes: number[]; exit: (exit: AgentExit) => void }> {
    const probes: number[] = [];
    server = createServer((_req, res) => {
      probes.push(Date.now());
      const answer = script[Math.min(probes.length, script.length) - 1] ?? script.at(-1);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...answer, busy: false }));
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    let exit: (value: AgentExit) => void = () => undefined;
    const exited = new Promise<AgentExit>((resolve) => {
      exit = resolve;
    });
    const running: RunningAgent = { pid: 1, instance: 'test', version: '2.0.0', port: address.port, baseUrl: `http://127.0.0.1:${address.port}`, startedAt: Date.now(), exited };
    return { running, probes, exit };
  }

  const gate = (running: RunningAgent, extra: { graceMs?: number; timeoutMs?: number } = {}): ReturnType<typeof passHealthGate> =>
    passHealthGate({
      agent: new AgentClient(http, 'token'),
      running,
      version: '2.0.0',
      graceMs: extra.graceMs ?? 300,
      timeoutMs: extra.timeoutMs ?? 10_000,
      pollMs: 250,
      firstPollMs: 50,
      signal: new AbortController().signal,
    });

  const healthy: Answer = { status: 'healthy', version: '2.0.0' };

  it('passes once the agent has been healthy at the target version for the whole grace, probing again after a slow start', async () => {
    const { running, probes } = await agent([{ status: 'starting', version: '2.0.0' }, { status: 'starting', version: '2.0.0' }, { status: 'starting', version: '2.0.0' }, healthy]);
    const passed = await gate(running);
    // Three "starting" answers, the first healthy one, and at least one more at the grace's end.
    expect(passed.probes).toBeGreaterThanOrEqual(5);
    expect(passed.probes).toBe(probes.length);
    // The healthy streak began with the fourth probe, and the gate held it for the grace.
    expect(running.startedAt + passed.healthyAfterMs).toBeGreaterThanOrEqual(probes[3] ?? Number.NaN);
    // (less a few ms: the server's clock reads the probe's arrival, a timer may round down a ms)
    expect((probes.at(-1) ?? 0) - (probes[3] ?? 0)).toBeGreaterThanOrEqual(295);
  });

  it('starts the grace again when the agent turns degraded inside it', async () => {
    const { running, probes } = await agent([healthy, { status: 'degraded', version: '2.0.0' }, healthy]);
    const passed = await gate(running);
    // The streak that passed began after the degraded answer (the second probe), not with the first one.
    expect(running.startedAt + passed.healthyAfterMs).toBeGreaterThanOrEqual(probes[2] ?? Number.NaN);
    expect((probes.at(-1) ?? 0) - (probes[2] ?? 0)).toBeGreaterThanOrEqual(295);
  });

  it('fails an agent healthy at another version (HEALTH_CHECK_FAILED)', async () => {
    const { running } = await agent([{ status: 'healthy', version: '1.0.0' }]);
    await expectRejection(gate(running, { timeoutMs: 600 }), DaemonError, 'HEALTH_CHECK_FAILED');
  });

  it('fails at once when the agent exits during the gate (AGENT_EXITED)', async () => {
    const { running, exit } = await agent([{ status: 'starting', version: '2.0.0' }]);
    const pending = gate(running, { timeoutMs: 60_000 });
    exit({ code: 1, signal: null });
    await expectRejection(pending, DaemonError, 'AGENT_EXITED');
  });
});
