import { describe, expect, it } from 'vitest';
import { Ed25519PrivateKey } from '@drover/protocol';
import type { ManagerContext } from '../context.js';
import type { AgentRecord, ReleaseRecord } from '../store/records.js';
import { buildUpdate } from './update-commands.js';

// buildUpdate reads nothing from the store when the agent and the release are given: a context with
// the signing key, the clock and the download settings is enough.
const t0 = new Date('2026-01-01T00:00:00Z');
const ctx = {
  managerKey: Ed25519PrivateKey.generate(),
  settings: { routePrefix: '', presignDownloads: false },
  blobs: {},
  now: () => t0,
} as unknown as ManagerContext;

const agent = { id: 'agent-1', machineId: '0'.repeat(64), platform: 'linux-x64', agentVersion: '1.0.0', daemonVersion: '0.5.0' } as AgentRecord;
const release = { artifact: 'agent', version: '2.0.0', platform: 'linux-x64', state: 'published', file: { sha256: 'ab'.repeat(32), size: 10 }, envelope: { payloadType: 'x', payload: 'eA==', signatures: [] } } as unknown as ReleaseRecord;
const input = { agentId: 'agent-1', deploymentId: 'dep-1', artifact: 'agent', version: '2.0.0', deadlineSeconds: 7200 } as const;

describe('buildUpdate', () => {
  it("carries the deployment's deferral window in the command, next to its deadline", async () => {
    const { command, record } = await buildUpdate(ctx, { ...input, deferralWindowSeconds: 3600 }, { agent, release });
    expect(command).toMatchObject({ deferralWindowSeconds: 3600, deadline: '2026-01-01T02:00:00.000Z' });
    expect(record.body).toEqual(command);
  });

  it('leaves the field out when no window is given (a manual update: bounded by its deadline only)', async () => {
    const { command } = await buildUpdate(ctx, input, { agent, release });
    expect(command).not.toHaveProperty('deferralWindowSeconds');
  });

  it("sends the daemon to the manager's download route with the filesystem store", async () => {
    const { command } = await buildUpdate(ctx, input, { agent, release });
    expect(command.url).toBe('/v1/download/agent/2.0.0/linux-x64');
  });

  it("sends the daemon to the object store's presigned URL, valid until the command's deadline, when the store presigns", async () => {
    const asked: unknown[] = [];
    const s3 = {
      ...ctx,
      blobs: {
        downloadUrl: (sha256: string, options: { ttlSeconds: number; now: Date }) => {
          asked.push({ sha256, ...options });
          return Promise.resolve({ url: `https://bucket.example/p/${sha256}?X-Amz-Signature=1`, expiresAt: new Date(options.now.getTime() + options.ttlSeconds * 1000) });
        },
      },
    } as unknown as ManagerContext;
    const { command } = await buildUpdate(s3, input, { agent, release });
    expect(command.url).toBe(`https://bucket.example/p/${'ab'.repeat(32)}?X-Amz-Signature=1`);
    expect(asked).toEqual([{ sha256: 'ab'.repeat(32), ttlSeconds: 7200, now: t0 }]);
  });
});
