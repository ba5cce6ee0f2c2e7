import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpClient } from '@drover/http';
import { createDaemonLogger } from '../logger.js';
import { parseSettings } from '../settings.js';
import { noFailpoints } from '../update/failpoints.js';
import { CredentialRotation } from './credential-rotation.js';
import type { Credentials } from './credentials.js';

// The host side of credential rotation that the real-process suite (test/daemon/credential-rotation.test.ts)
// cannot reach: a revert while credentials.json cannot be written, and the settings' bounds.

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-rotation-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function credentials(): Credentials {
  return {
    schema: 'drover.credentials/v1',
    managerUrl: 'http://127.0.0.1:9',
    agentId: 'agent-1',
    credential: 'new-credential-0123456789',
    previousCredential: 'old-credential-0123456789',
    credentialIssuedAt: new Date().toISOString(),
    serviceToken: 'service-token',
    managerKeys: [{ keyid: '0123456789abcdef', publicKey: Buffer.alloc(32, 7).toString('base64') }],
    trust: 'pinned',
    machineId: 'a'.repeat(64),
    checkinIntervalSeconds: 60,
    enrolledAt: new Date().toISOString(),
  };
}

describe('CredentialRotation', () => {
  it('goes back to the previous credential on 401 CREDENTIAL_INVALID even when credentials.json cannot be written', async () => {
    const c = credentials();
    const logged: string[] = [];
    const logger = createDaemonLogger({ level: 'error', destination: { write: (line: string) => logged.push(line) } });
    // The file's directory does not exist: every write fails, as on a full or read-only disk.
    const rotation = new CredentialRotation({ http: new HttpClient({ userAgent: 'test' }), credentials: c, path: join(dir, 'gone', 'credentials.json'), machineId: c.machineId, rotationMs: 3_600_000, failpoints: noFailpoints, logger });
    expect(await rotation.afterRefused(403, 'AGENT_REVOKED')).toBe(false);
    expect(c.credential).toBe('new-credential-0123456789');
    expect(await rotation.afterRefused(401, 'CREDENTIAL_INVALID')).toBe(true);
    expect(c.credential).toBe('old-credential-0123456789');
    expect(c.previousCredential).toBeUndefined();
    expect(logged.join('')).toContain('credential.revert_unsaved');
    expect(logged.join('')).not.toContain('old-credential');
    // Nothing left to go back to: a second refusal is the host's to report.
    expect(await rotation.afterRefused(401, 'CREDENTIAL_INVALID')).toBe(false);
  });

  it('writes the revert when it can', async () => {
    const c = credentials();
    const path = join(dir, 'credentials.json');
    await writeFile(path, JSON.stringify(c), { mode: 0o600 });
    const logger = createDaemonLogger({ level: 'error', destination: { write: () => undefined } });
    const rotation = new CredentialRotation({ http: new HttpClient({ userAgent: 'test' }), credentials: c, path, machineId: c.machineId, rotationMs: 3_600_000, failpoints: noFailpoints, logger });
    expect(await rotation.afterRefused(401, 'CREDENTIAL_INVALID')).toBe(true);
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ credential: 'old-credential-0123456789' });
    expect(JSON.parse(await readFile(path, 'utf8'))).not.toHaveProperty('previousCredential');
  });

  it('takes a rotation period of 0 (off) or 1 to 8760 hours, and nothing in between', () => {
    const base = { manager: { url: 'http://127.0.0.1:9' } };
    expect(parseSettings({ ...base }).checkin.credentialRotationMs).toBe(24 * 3_600_000);
    expect(parseSettings({ ...base, checkin: { credentialRotationHours: 0 } }).checkin.credentialRotationMs).toBe(0);
    expect(parseSettings({ ...base, checkin: { credentialRotationHours: 1.5 } }).checkin.credentialRotationMs).toBe(5_400_000);
    for (const hours of [0.5, -1, 9000, '24']) expect(() => parseSettings({ ...base, checkin: { credentialRotationHours: hours } })).toThrow(/credentialRotationHours/);
  });
});
