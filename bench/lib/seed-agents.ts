// Seeding a bench manager's store directly: enrolled agents through the store API (what a bench
// measures is what comes after enrollment, not enrollment itself).
import { createHash, randomBytes } from 'node:crypto';
import { hashSecret, newSecret } from '../../packages/manager/src/secrets.js';
import type { Store } from '../../packages/manager/src/store/store.js';

/** A manager core, from the sources or the built package (bench/checkin.ts): its store and its service-token cipher. */
export interface SeedableCore {
  context: { store: Store; fernet: { encrypt(plaintext: string): string } };
}

export interface SeededAgent {
  id: string;
  credential: string;
  machineId: string;
}

/** Enrolls `count` agents (ids `agent-<16 hex>`) at `agentVersion`/`daemonVersion` through one enrollment token. */
export async function seedAgents(core: SeedableCore, count: number, versions: { agentVersion: string; daemonVersion: string }): Promise<SeededAgent[]> {
  const { store, fernet } = core.context;
  const enrollmentToken = newSecret();
  const now = new Date();
  await store.createEnrollmentToken({ tokenHash: hashSecret(enrollmentToken), seats: count, createdAt: now, expiresAt: new Date(now.getTime() + 3_600_000), createdBy: 'bench' });
  const agents: SeededAgent[] = [];
  for (let i = 0; i < count; i += 1) {
    const credential = newSecret();
    const machineId = createHash('sha256').update(randomBytes(16)).digest('hex');
    const result = await store.enrollAgent({
      tokenHash: hashSecret(enrollmentToken),
      now,
      newAgentId: `agent-${i.toString(16).padStart(16, '0')}`,
      machineId,
      hostname: `host-${i}`,
      platform: 'linux-x64',
      arch: 'x64',
      agentVersion: versions.agentVersion,
      daemonVersion: versions.daemonVersion,
      inventory: { os: { platform: 'linux' } },
      credentialHash: hashSecret(credential),
      serviceTokenCiphertext: fernet.encrypt(newSecret()),
      allowReenrollment: false,
    });
    if (!result.ok) throw new Error(`enrollment ${i} refused: ${result.reason}`);
    agents.push({ id: result.agent.id, credential, machineId });
  }
  return agents;
}
