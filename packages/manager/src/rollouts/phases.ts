import { createHash } from 'node:crypto';
import type { DeploymentStrategy } from '@drover/protocol';
import { rolloutGroups } from './records.js';
import type { RolloutCandidate, RolloutGroup, RolloutPhase } from './records.js';

// Which phase each target of a new deployment falls in.
//
// - `immediate`: one phase, everyone.
// - `canary` and `manual`: by the operator's groups (explorer -> early_adopter -> general; an agent
//   without a group is general) when any agent has one; else by cumulative percentages (default
//   10 -> 30 -> 100). Agents are ranked by SHA-256(deploymentId, agentId): the rank is stable for
//   an agent within a deployment (a restart re-plans nothing, it is stored) and differs between
//   deployments, so the same hosts are not always the canaries. Ranks, not hash buckets, so a
//   small fleet still gets ceil(10%) canaries rather than possibly none.

const groupPhaseNames: Record<RolloutGroup, string> = { explorer: 'explorers', early_adopter: 'early_adopters', general: 'general' };

export interface PhasePlan {
  phases: RolloutPhase[];
  /** agentId -> phase index */
  phaseOf: Map<string, number>;
}

export function canaryRank(deploymentId: string, agentId: string): string {
  return createHash('sha256').update(deploymentId).update('\0').update(agentId).digest('hex');
}

export function planPhases(strategy: DeploymentStrategy, deploymentId: string, agents: readonly RolloutCandidate[], percentages: readonly number[]): PhasePlan {
  const phaseOf = new Map<string, number>();
  if (strategy === 'immediate') {
    for (const agent of agents) phaseOf.set(agent.id, 0);
    return { phases: [{ name: 'all' }], phaseOf };
  }
  if (agents.some((agent) => agent.group !== undefined)) {
    for (const agent of agents) phaseOf.set(agent.id, rolloutGroups.indexOf(agent.group ?? 'general'));
    return { phases: rolloutGroups.map((group) => ({ name: groupPhaseNames[group] })), phaseOf };
  }
  const ranked = [...agents].sort((a, b) => (canaryRank(deploymentId, a.id) < canaryRank(deploymentId, b.id) ? -1 : 1));
  const cut = percentages.map((pct) => Math.ceil((ranked.length * pct) / 100));
  ranked.forEach((agent, rank) => {
    const phase = cut.findIndex((limit) => rank < limit);
    phaseOf.set(agent.id, phase === -1 ? cut.length - 1 : phase);
  });
  return { phases: percentages.map((pct) => ({ name: `${pct}%` })), phaseOf };
}
