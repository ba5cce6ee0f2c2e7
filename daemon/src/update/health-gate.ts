import { compareVersions } from '@drover/protocol';
import type { AgentClient } from '../agent/client.js';
import type { RunningAgent } from '../agent/supervisor.js';
import { DaemonError } from '../errors.js';
import { sleep } from '../timing.js';

// The health gate of an update: the agent counts as healthy only when its health route says
// "healthy" AT THE TARGET VERSION, continuously for a grace period. An agent that exits, stays
// degraded or starting, or reports another version fails the gate, and the update rolls back. A
// real CIRIS agent is healthy only once in the WORK cognitive state (readAgentHealth, decision 0035).

/** The options of {@link passHealthGate}: the agent, the version it must report healthy, and for how long. */
export interface HealthGateOptions {
  agent: AgentClient;
  running: RunningAgent;
  version: string;
  graceMs: number;
  timeoutMs: number;
  /** ms: the longest wait between two probes. */
  pollMs: number;
  /** ms: the wait between probes while the agent does not answer yet, and after its first unhealthy answer (then doubled per probe up to `pollMs`). */
  firstPollMs: number;
  signal: AbortSignal;
}

/** How the gate was passed: when the agent was first seen healthy (for good), and the probes it took. */
export interface HealthGatePassed {
  healthyAfterMs: number; // ms from the agent's start to the first probe of the healthy streak that passed
  probes: number;
}

/** True when two versions name the same release (`v1.2.3` and `1.2.3` do). */
export function sameVersion(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return compareVersions(a, b) === 0;
  } catch {
    return false;
  }
}

/** Resolves once the agent passed the gate; throws AGENT_EXITED or HEALTH_CHECK_FAILED. */
export async function passHealthGate(options: HealthGateOptions): Promise<HealthGatePassed> {
  const { running } = options;
  const deadline = Date.now() + options.timeoutMs;
  let healthySince: number | undefined;
  const state = { exited: false };
  let last = 'no answer yet';
  let probes = 0;
  // A new agent is probed soon and then less often (50 ms, 100 ms, ... up to pollMs), so one that
  // comes up fast is seen within tens of ms instead of up to a whole interval later. While nothing
  // listens yet the probes stay at firstPollMs: a refused connection costs the agent nothing, and
  // the moment it starts listening is when it is most likely to turn healthy.
  let backoffMs = options.firstPollMs;
  void running.exited.then(() => {
    state.exited = true;
  });
  for (;;) {
    if (state.exited) {
      const exit = await running.exited;
      throw new DaemonError(
        'AGENT_EXITED',
        `The agent ${options.version} exited during its health check (${exit.signal === null ? `code ${String(exit.code)}` : `signal ${exit.signal}`}). It was rolled back.`,
      );
    }
    const answer = await options.agent.health(running.baseUrl, options.signal);
    probes += 1;
    const now = Date.now();
    let waitMs: number;
    if (answer.kind === 'ok' && answer.health.status === 'healthy' && sameVersion(answer.health.version, options.version)) {
      healthySince ??= now;
      if (now - healthySince >= options.graceMs) return { healthyAfterMs: healthySince - running.startedAt, probes };
      // bad release: healthy must last the whole grace, so it is still probed every pollMs; the last
      // probe falls when the grace ends, so the commit is not a poll interval late.
      waitMs = Math.min(options.pollMs, healthySince + options.graceMs - now);
      backoffMs = options.firstPollMs;
    } else {
      healthySince = undefined;
      last = answer.kind === 'ok' ? `${answer.health.reported} at version ${answer.health.version}` : answer.kind === 'invalid' ? `HTTP ${answer.status}` : 'unreachable';
      waitMs = backoffMs;
      if (answer.kind !== 'unreachable') backoffMs = Math.min(options.pollMs, backoffMs * 2);
    }
    if (now >= deadline) {
      throw new DaemonError(
        'HEALTH_CHECK_FAILED',
        `The agent ${options.version} was not healthy at its version for ${Math.round(options.graceMs / 1000)} s within ${Math.round(options.timeoutMs / 1000)} s (last: ${last}). It was rolled back.`,
      );
    }
    await Promise.race([sleep(waitMs, options.signal), running.exited]);
  }
}
