import type { Command } from '../cli.js';
import { optionalString } from '../cli.js';
import { CliError } from '../errors.js';
import { operatorClient, operatorOptions } from '../operator.js';
import { formatTable } from '../table.js';

// Listings of what the manager holds: `drover release list` and `drover rollout list`. Tables for
// people, the manager's own answer with --json.

interface ReleaseItem {
  artifact: string;
  version: string;
  platform: string;
  channel: string;
  state: string;
  file: { name: string; size: number; sha256: string };
  signers: string[];
  expiresAt: string;
  publishedAt: string | null;
}

interface DeploymentItem {
  deploymentId: string;
  artifact: string;
  version: string;
  strategy: string;
  status: string;
  phase: number;
  phases: number;
  phaseState: string;
  createdBy: string;
  createdAt: string;
  completedAt: string | null;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** An ISO time to the minute, in UTC: what a table needs. */
function minute(iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')}Z`;
}

export const releaseListCommand: Command = {
  usage: '[--artifact agent|daemon] [--platform P] [--channel C] [--pending] --manager URL',
  description: 'Lists the releases the manager holds for one artifact, newest version first: platform, channel, state (published, or pending until its bytes are uploaded), size, the first 12 hex of the SHA-256, the signing key ids and the expiry.',
  options: {
    ...operatorOptions('deploy-or-admin'),
    artifact: { type: 'string', arg: 'NAME', help: 'The artifact (default: agent).' },
    platform: { type: 'string', arg: 'P', help: 'Only this platform, e.g. linux-x64.' },
    channel: { type: 'string', arg: 'C', help: 'Only this channel, e.g. stable.' },
    pending: { type: 'boolean', help: 'Only releases whose bytes were never uploaded.' },
  },
  async run({ values, io }) {
    const client = await operatorClient(values, io, 'deploy-or-admin');
    const query = new URLSearchParams({ artifact: optionalString(values, 'artifact') ?? 'agent' });
    for (const name of ['platform', 'channel'] as const) {
      const value = optionalString(values, name);
      if (value !== undefined) query.set(name, value);
    }
    if (values['pending'] === true) query.set('state', 'pending');
    const { releases } = (await client.json({ method: 'GET', path: `/v1/releases?${query.toString()}` })) as { releases: ReleaseItem[] };
    const rows = releases.map((r) => [r.version, r.platform, r.channel, r.state, size(r.file.size), r.file.sha256.slice(0, 12), r.signers.join(','), minute(r.expiresAt)]);
    const header = ['VERSION', 'PLATFORM', 'CHANNEL', 'STATE', 'SIZE', 'SHA-256', 'SIGNERS', 'EXPIRES'];
    return {
      data: { releases },
      text: releases.length === 0 ? `No release of ${query.get('artifact') ?? 'agent'} matches. Publish one with: drover release publish FILE` : [...formatTable(header, rows), `${releases.length} release(s)`].join('\n'),
    };
  },
};

export const rolloutListCommand: Command = {
  usage: '[--active] [--limit N] --manager URL',
  description: 'Lists deployments, newest first: artifact and version, strategy, status, phase, who started it and when. Show one with: drover rollout status DEPLOYMENT_ID.',
  options: {
    ...operatorOptions('admin-or-deploy'),
    active: { type: 'boolean', help: 'Only deployments not ended yet (pending, in progress, paused, rolling back).' },
    limit: { type: 'string', arg: 'N', help: 'At most N deployments (default: 20, at most 1000).' },
  },
  async run({ values, io }) {
    const limitText = optionalString(values, 'limit') ?? '20';
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CliError('USAGE_ERROR', `--limit takes a whole number from 1 to 1000; got "${limitText}".`);
    const client = await operatorClient(values, io, 'admin-or-deploy');
    const query = new URLSearchParams({ limit: String(limit), ...(values['active'] === true ? { active: 'true' } : {}) });
    const { deployments } = (await client.json({ method: 'GET', path: `/v1/deployments?${query.toString()}` })) as { deployments: DeploymentItem[] };
    const rows = deployments.map((d) => [d.deploymentId, `${d.artifact} ${d.version}`, d.strategy, d.status, d.phases === 0 ? '-' : `${d.phase}/${d.phases} ${d.phaseState}`, d.createdBy, minute(d.createdAt)]);
    const header = ['DEPLOYMENT', 'RELEASE', 'STRATEGY', 'STATUS', 'PHASE', 'BY', 'CREATED'];
    return {
      data: { deployments },
      text: deployments.length === 0 ? (values['active'] === true ? 'No deployment is active.' : 'No deployment yet. Start one with: drover rollout start --version VERSION') : [...formatTable(header, rows), `${deployments.length} deployment(s)`].join('\n'),
    };
  },
};
