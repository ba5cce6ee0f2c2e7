import { describe, expect, it } from 'vitest';
import { expectError } from '../../../test/helpers/expect-error.js';
import { Ed25519PrivateKey } from './ed25519.js';
import { NonceError } from './errors.js';
import { sha256Hex } from './hash.js';
import { issueNonce, readNonceUnverified, verifyNonce } from './nonce.js';
import type { IssueNonceInput, NonceExpectations } from './nonce.js';

const manager = Ed25519PrivateKey.generate();
const other = Ed25519PrivateKey.generate();
const machineId = sha256Hex('machine-1');
const now = new Date('2026-11-24T12:00:00Z');
const input: IssueNonceInput = { agentId: 'agent-1', machineId, deploymentId: 'dep-1', artifact: 'agent', fromVersion: '1.1.0', toVersion: '1.2.0', now, ttlSeconds: 600 };
const expectations = (overrides: Partial<NonceExpectations> = {}): NonceExpectations => ({
  managerKeys: [manager.publicKey],
  agentId: 'agent-1',
  machineId,
  runningVersion: '1.1.0',
  artifact: 'agent',
  isUsed: () => false,
  now,
  ...overrides,
});

describe('update nonces', () => {
  it('verifies a nonce issued for this agent, machine and version', () => {
    const { token, payload } = issueNonce(input, manager);
    expect(verifyNonce(token, expectations())).toEqual(payload);
    expect(readNonceUnverified(token).deploymentId).toBe('dep-1');
    expect(payload).toMatchObject({ v: 1, rollback: false, exp: payload.iat + 600 });
  });

  it('refuses a nonce signed by another key: NONCE_SIGNATURE_INVALID', () => {
    expectError(() => verifyNonce(issueNonce(input, other).token, expectations()), NonceError, 'NONCE_SIGNATURE_INVALID');
  });

  it('refuses a tampered payload: NONCE_SIGNATURE_INVALID', () => {
    const { token } = issueNonce(input, manager);
    const [body = '', sig = ''] = token.split('.');
    const payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Record<string, unknown>;
    payload['agentId'] = 'agent-2';
    const forged = `${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${sig}`;
    expectError(() => verifyNonce(forged, expectations({ agentId: 'agent-2' })), NonceError, 'NONCE_SIGNATURE_INVALID');
  });

  it('refuses a nonce for another agent: NONCE_WRONG_AGENT', () => {
    expectError(() => verifyNonce(issueNonce({ ...input, agentId: 'agent-2' }, manager).token, expectations()), NonceError, 'NONCE_WRONG_AGENT');
  });

  it('refuses a nonce for another machine: NONCE_WRONG_MACHINE', () => {
    expectError(() => verifyNonce(issueNonce({ ...input, machineId: sha256Hex('machine-2') }, manager).token, expectations()), NonceError, 'NONCE_WRONG_MACHINE');
  });

  it('refuses an expired nonce: NONCE_EXPIRED', () => {
    const { token } = issueNonce(input, manager);
    expectError(() => verifyNonce(token, expectations({ now: new Date(now.getTime() + 601_000) })), NonceError, 'NONCE_EXPIRED');
  });

  it('refuses a nonce not yet valid beyond the clock skew: NONCE_NOT_YET_VALID', () => {
    const { token } = issueNonce({ ...input, now: new Date(now.getTime() + 120_000) }, manager);
    expectError(() => verifyNonce(token, expectations()), NonceError, 'NONCE_NOT_YET_VALID');
    // Within the default 60 s skew it is accepted.
    const { token: close } = issueNonce({ ...input, now: new Date(now.getTime() + 30_000) }, manager);
    expect(verifyNonce(close, expectations()).agentId).toBe('agent-1');
  });

  it('refuses a replayed nonce: NONCE_REPLAYED', () => {
    const used = new Set<string>();
    const { token } = issueNonce(input, manager);
    const first = verifyNonce(token, expectations({ isUsed: (id) => used.has(id) }));
    used.add(first.nonceId);
    expectError(() => verifyNonce(token, expectations({ isUsed: (id) => used.has(id) })), NonceError, 'NONCE_REPLAYED');
  });

  it('refuses a downgrade without rollback: NONCE_DOWNGRADE_REFUSED', () => {
    const down = { ...input, fromVersion: '1.1.0', toVersion: '1.0.0' };
    expectError(() => verifyNonce(issueNonce(down, manager).token, expectations()), NonceError, 'NONCE_DOWNGRADE_REFUSED');
    expect(verifyNonce(issueNonce({ ...down, rollback: true }, manager).token, expectations()).rollback).toBe(true);
  });

  it('refuses a stale rollback nonce, issued for a host running another version: NONCE_DOWNGRADE_REFUSED', () => {
    const rollback = { ...input, fromVersion: '1.2.0', toVersion: '1.1.0', rollback: true };
    expect(verifyNonce(issueNonce(rollback, manager).token, expectations({ runningVersion: '1.2.0' })).rollback).toBe(true);
    expectError(() => verifyNonce(issueNonce(rollback, manager).token, expectations({ runningVersion: '1.3.0' })), NonceError, 'NONCE_DOWNGRADE_REFUSED');
    expectError(() => verifyNonce(issueNonce(rollback, manager).token, expectations({ runningVersion: '1.1.0' })), NonceError, 'NONCE_DOWNGRADE_REFUSED');
  });

  it('refuses malformed tokens: NONCE_MALFORMED', () => {
    for (const token of ['', 'abc', 'a.b.c', '!!.??', 'x'.repeat(5000), `${Buffer.from('{}').toString('base64url')}.${Buffer.from(manager.sign(new Uint8Array())).toString('base64url')}`]) {
      expectError(() => verifyNonce(token, expectations()), NonceError, token.startsWith('e30') ? 'NONCE_SIGNATURE_INVALID' : 'NONCE_MALFORMED');
    }
    expectError(() => readNonceUnverified('e30.AAAA'), NonceError, 'NONCE_MALFORMED');
  });
});
