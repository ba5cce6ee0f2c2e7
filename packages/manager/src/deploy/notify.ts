import { compareVersions, deploymentStrategies, parseVersion, UpdateNotificationSchema } from '@drover/protocol';
import { VersionSchema } from '@drover/protocol/internal';
import type { DeploymentStrategy, JsonObject, LatestChangelogResponse, UpdateNotification, UpdateNotifyResponse } from '@drover/protocol';
import type { Actor, ManagerContext } from '../context.js';
import { ManagerError } from '../errors.js';
import { echo } from '../presented.js';
import { registerRelease, versionKey } from '../releases/catalog.js';
import { resolveRolloutOptions } from '../rollouts/options.js';
import { planPhases } from '../rollouts/phases.js';
import type { DeploymentRecord, NewDeploymentEvent, RolloutOptions, RolloutWrite, TargetRecord } from '../rollouts/records.js';
import { sameVersion, stopTargets } from '../rollouts/target-step.js';
import { newId } from '../secrets.js';
import type { LeaseFence } from '../store/records.js';

// POST /manager/v1/updates/notify: a CI pipeline announces a release; the manager creates a
// deployment of it over every enrolled agent, planned into phases, persisted with its targets in
// one transaction (which also enforces one active deployment per artifact).

const notificationFields = new Set(Object.keys(UpdateNotificationSchema.properties));

/**
 * The notification as CIRISManager's model reads it (docs/ciris-compat.md N1-N4): fields it does not
 * name dropped, CIRIS's defaults filled in, every other value as given (an unknown strategy or risk
 * level included).
 */
function recordedNotification(notification: UpdateNotification): UpdateNotification {
  const known = Object.fromEntries(Object.entries(notification).filter(([key]) => notificationFields.has(key))) as UpdateNotification;
  return { message: 'Update available', strategy: 'canary', metadata: {}, source: 'github-actions', risk_level: 'unknown', ...known };
}

/** How a notification's strategy rolls out: CIRISManager acts on `immediate` and `manual`; anything else is canary. */
function rolloutStrategy(strategy: string | undefined): DeploymentStrategy {
  return (deploymentStrategies as readonly string[]).includes(strategy ?? '') ? (strategy as DeploymentStrategy) : 'canary';
}

/**
 * Creates a deployment from a notification. Throws DEPLOYMENT_ACTIVE (409) when a deployment of the
 * same artifact is active and the notification does not `supersede` it.
 */
export async function createDeployment(ctx: ManagerContext, received: UpdateNotification, actor: Actor, defaults: RolloutOptions, fence?: LeaseFence): Promise<UpdateNotifyResponse> {
  const notification = recordedNotification(received);
  const artifact: 'agent' | 'daemon' = notification.artifact === 'daemon' ? 'daemon' : 'agent';
  let version = notification.version ?? undefined;
  let changelog = notification.changelog ?? undefined;
  // Any string is accepted (CIRIS's model takes one); only a commit SHA is used as one.
  const givenSha = notification.commit_sha?.trim();
  let commitSha = givenSha !== undefined && /^[0-9a-fA-F]{6,40}$/.test(givenSha) ? givenSha.toLowerCase() : undefined;
  if (notification.release !== undefined) {
    // The release is verified against the trust policy like any publication (a retried one is fine).
    const { release } = await registerRelease(ctx, notification.release, actor);
    if (release.artifact !== artifact) throw new ManagerError('BAD_REQUEST', `The release is for ${release.artifact}, not ${artifact}. Send artifact: "${release.artifact}".`);
    version = release.version;
    changelog ??= typeof release.manifest['changelog'] === 'string' ? release.manifest['changelog'] : undefined;
    commitSha ??= typeof release.manifest['commitSha'] === 'string' ? release.manifest['commitSha'] : undefined;
  }
  if (version === undefined || version === '') {
    throw new ManagerError('DEPLOYMENT_VERSION_REQUIRED', 'The notification names no version: send `version` (or a signed `release`), so the manager knows what agents must run when they are done.');
  }
  try {
    parseVersion(version);
  } catch (error) {
    throw new ManagerError('DEPLOYMENT_VERSION_REQUIRED', `The version ${echo(version, VersionSchema, 'given')} is neither a semantic version nor a commit SHA. Send a valid \`version\`.`, { cause: error });
  }
  const metadata = notification.metadata;
  const options = resolveRolloutOptions(metadata?.['rollout'], defaults);
  const strategy = rolloutStrategy(notification.strategy);
  const now = ctx.now();
  const id = newId('dep');

  const candidates = await ctx.store.listRolloutCandidates();
  const published = new Map<string, boolean>();
  const eligible: typeof candidates = [];
  const targets: TargetRecord[] = [];
  for (const agent of candidates) {
    const mode = agent.pushUrl === undefined ? 'daemon' : 'push';
    const current = artifact === 'daemon' ? agent.daemonVersion : agent.agentVersion;
    const base: TargetRecord = {
      deploymentId: id,
      agentId: agent.id,
      phase: 0,
      state: 'pending',
      mode,
      fromVersion: current,
      toVersion: version,
      attempts: 0,
      commandId: undefined,
      rollbackCommandId: undefined,
      rollbackState: undefined,
      notifiedAt: undefined,
      deadlineAt: undefined,
      deferredCount: 0,
      firstDeferredAt: undefined,
      deferredUntil: undefined,
      healthySince: undefined,
      lastProbeAt: undefined,
      errorCode: undefined,
      message: undefined,
      updatedAt: now,
    };
    if (sameVersion(current, version)) {
      targets.push({ ...base, state: 'skipped', errorCode: 'ALREADY_ON_VERSION', message: `already runs ${version}` });
      continue;
    }
    if (mode === 'daemon') {
      if (!published.has(agent.platform)) {
        const release = await ctx.store.getRelease(artifact, versionKey(version), agent.platform);
        published.set(agent.platform, release?.state === 'published');
      }
      if (published.get(agent.platform) !== true) {
        targets.push({ ...base, state: 'skipped', errorCode: 'RELEASE_MISSING_FOR_PLATFORM', message: `no published ${artifact} ${version} for ${agent.platform}` });
        continue;
      }
    }
    eligible.push(agent);
    targets.push(base);
  }
  const plan = planPhases(strategy, id, eligible, options.percentages);
  for (const target of targets) target.phase = plan.phaseOf.get(target.agentId) ?? 0;
  const affected = eligible.length;
  const manual = strategy === 'manual';
  const deployment: DeploymentRecord = {
    id,
    artifact,
    version,
    commitSha,
    changelog,
    strategy,
    status: manual ? 'pending' : 'in_progress',
    message: manual ? `Deployment of ${version} created; phase ${plan.phases[0]?.name ?? 'all'} waits for promote.` : `Rolling out ${version} to ${affected} agent(s).`,
    options,
    phases: plan.phases,
    notification: notification as unknown as JsonObject,
    phaseIndex: 0,
    phaseState: manual ? 'awaiting_promote' : 'rolling',
    phaseStartedAt: manual ? undefined : now,
    soakUntil: undefined,
    createdBy: actor.name,
    createdAt: now,
    startedAt: manual ? undefined : now,
    completedAt: undefined,
    updatedAt: now,
  };
  const events: NewDeploymentEvent[] = [
    {
      deploymentId: id,
      at: now,
      type: 'created',
      message: deployment.message,
      details: {
        strategy,
        ...(notification.strategy === strategy ? {} : { requested_strategy: notification.strategy ?? null }),
        risk_level: notification.risk_level ?? null,
        version,
        agents_affected: affected,
        phases: plan.phases.map((p) => p.name),
        source: notification.source ?? null,
      },
    },
  ];
  const supersede: RolloutWrite[] = [];
  if (notification.supersede === true) {
    for (const active of await ctx.store.listDeployments({ active: true, limit: 64 })) {
      if (active.artifact !== artifact) continue;
      const stopped = stopTargets(await ctx.store.listTargets(active.id), now, `superseded by ${id}`);
      supersede.push({
        deployment: { ...active, status: 'cancelled', phaseState: 'stopped', message: `Superseded by deployment ${id}.`, updatedAt: now },
        targets: stopped.skip,
        withdraw: stopped.withdraw,
        events: [{ deploymentId: active.id, at: now, type: 'superseded', message: `Superseded by deployment ${id}.`, details: { by: id } }],
        audit: [ctx.audit.entry({ event: 'deployment.superseded', actor: actor.name, tokenId: actor.tokenId, deploymentId: active.id, outcome: 'success', details: { by: id } })],
      });
    }
  }
  const audit = ctx.audit.entry({
    event: 'deployment.created',
    actor: actor.name,
    tokenId: actor.tokenId,
    deploymentId: id,
    outcome: 'success',
    details: { artifact, version, strategy, agentsAffected: affected, agentsTotal: targets.length, phases: plan.phases.map((p) => p.name), options: options as unknown as JsonObject },
  });
  const created = await ctx.store.createDeployment(deployment, targets, events, supersede, [audit], fence);
  if (!created.ok) {
    await ctx.audit.append({ event: 'deployment.rejected', actor: actor.name, tokenId: actor.tokenId, outcome: 'denied', details: { artifact, version, activeDeploymentId: created.active, reason: 'another deployment of this artifact is active' } });
    throw new ManagerError(
      'DEPLOYMENT_ACTIVE',
      `Deployment ${created.active} of ${artifact} is still active. Wait for it, abort it (\`drover rollout abort ${created.active}\`), or send supersede: true.`,
      { details: { deployment_id: created.active } },
    );
  }
  await ctx.audit.flush();
  ctx.logger.info({ event: 'deployment.created', deploymentId: id, artifact, version, strategy, agents: affected }, 'deployment created');
  return { deployment_id: id, status: deployment.status, message: deployment.message, agents_affected: affected, deployment_type: strategy };
}

/** The latest published release's changelog (GET /manager/v1/updates/latest/changelog). */
export async function latestChangelog(ctx: ManagerContext, artifact: 'agent' | 'daemon' = 'agent'): Promise<LatestChangelogResponse> {
  const releases = await ctx.store.listReleases({ artifact, state: 'published' });
  // The highest version; versions with no order between them (commit SHAs) go by publication time.
  let latest: (typeof releases)[number] | undefined;
  for (const release of releases) {
    if (latest === undefined) {
      latest = release;
      continue;
    }
    let order: number | undefined;
    try {
      order = compareVersions(release.versionKey, latest.versionKey);
    } catch {
      order = undefined;
    }
    if (order === 1 || (order === undefined && (release.publishedAt?.getTime() ?? 0) >= (latest.publishedAt?.getTime() ?? 0))) latest = release;
  }
  // Nothing published yet is an answer, not an error (docs/ciris-compat.md D3): an empty changelog.
  if (latest === undefined) {
    return { artifact, version: null, commit_sha: null, released_at: null, changelog: '', latest: { version: null, date: null, changes: [] }, summary: `No ${artifact} release is published yet.` };
  }
  const changelog = typeof latest.manifest['changelog'] === 'string' ? latest.manifest['changelog'] : '';
  const commit = typeof latest.manifest['commitSha'] === 'string' ? latest.manifest['commitSha'].toLowerCase() : null;
  const lines = changelog.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const changes = lines.map((line) => {
    const match = /^([a-z]+)(\([^)]*\))?!?:\s*(.*)$/.exec(line);
    return match === null ? { type: 'change', description: line.slice(0, 4096) } : { type: (match[1] ?? 'change').slice(0, 32), description: (match[3] ?? line).slice(0, 4096) };
  });
  const released = latest.publishedAt ?? latest.registeredAt;
  return {
    artifact,
    version: latest.version,
    commit_sha: commit !== null && /^[0-9a-f]{6,40}$/.test(commit) ? commit : null,
    released_at: released.toISOString(),
    changelog: changelog.slice(0, 4096),
    latest: { version: latest.version, date: released.toISOString().slice(0, 10), changes },
    summary: `${artifact} ${latest.version}: ${lines.length} change(s)`.slice(0, 4096),
  };
}
