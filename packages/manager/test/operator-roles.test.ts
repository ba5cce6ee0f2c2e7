import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusal, startTestManager } from './harness.js';
import type { TestManager } from './harness.js';
import { startFakeIssuer } from './fake-issuer.js';
import type { FakeIssuer } from './fake-issuer.js';

// Roles on the operator API (decision 0042): people's ID tokens from a (local) issuer, mapped by group.
let m: TestManager;
let idp: FakeIssuer;
beforeAll(async () => {
  idp = await startFakeIssuer();
  m = await startTestManager({ oidc: { issuer: idp.issuer, audience: 'drover', groupRoles: { 'drover-viewers': 'viewer', 'drover-ops': 'operator', 'drover-admins': 'admin' } } });
});
afterAll(async () => {
  await m.close();
  await idp.close();
});

const as = (token: string): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${token}` } });

describe('operator roles', () => {
  it('lets a viewer read, refuses a viewer an operator action (403 TOKEN_SCOPE_INSUFFICIENT, audited as user:<sub>), lets an operator pause, and keeps admin routes for admins', async () => {
    const viewer = await idp.sign({ sub: 'vera', groups: ['drover-viewers'] });
    const operator = await idp.sign({ sub: 'otto', groups: ['drover-ops'] });
    expect((await m.request('GET', '/v1/agents', as(viewer))).status).toBe(200);
    expect((await m.request('GET', '/v1/deployments', as(viewer))).status).toBe(200);
    expect(refusal(await m.request('POST', '/manager/v1/updates/nope/pause', { ...as(viewer), json: {} }))).toEqual([403, 'TOKEN_SCOPE_INSUFFICIENT']);
    // The operator passes the role check: the deployment itself is unknown.
    expect(refusal(await m.request('POST', '/manager/v1/updates/nope/pause', { ...as(operator), json: {} }))).toEqual([404, 'DEPLOYMENT_NOT_FOUND']);
    expect(refusal(await m.request('POST', '/v1/enrollment-tokens', { ...as(operator), json: { seats: 1 } }))).toEqual([403, 'TOKEN_SCOPE_INSUFFICIENT']);
    expect(refusal(await m.request('GET', '/v1/agents', as(m.deployToken)))).toEqual([403, 'TOKEN_SCOPE_INSUFFICIENT']);
    const records = await m.auditRecords();
    expect(records.filter((r) => r.event === 'token.rejected' && r.actor === 'user:vera')).toHaveLength(1);
    expect(records.filter((r) => r.event === 'token.used' && r.actor === 'user:otto').length).toBeGreaterThan(0);
    expect(await m.leakedSecrets()).toEqual([]);
  });

  it('refuses unmapped groups, wrong audience and expired tokens with their codes, audited; and tells the CLI the issuer', async () => {
    expect(refusal(await m.request('GET', '/v1/agents', as(await idp.sign({ groups: ['nobody'] }))))).toEqual([403, 'ROLE_NONE']);
    expect(refusal(await m.request('GET', '/v1/agents', as(await idp.sign({ aud: 'other', groups: ['drover-admins'] }))))).toEqual([401, 'OIDC_AUDIENCE_MISMATCH']);
    expect(refusal(await m.request('GET', '/v1/agents', as(await idp.sign({ groups: ['drover-admins'] }, { exp: Math.floor(Date.now() / 1000) - 3600 }))))).toEqual([401, 'OIDC_TOKEN_EXPIRED']);
    const reasons = (await m.auditRecords()).filter((r) => r.event === 'token.rejected').map((r) => (r.details as { reason?: string }).reason);
    expect(reasons).toEqual(expect.arrayContaining(['ROLE_NONE', 'OIDC_AUDIENCE_MISMATCH', 'OIDC_TOKEN_EXPIRED']));
    const config = await m.request('GET', '/manager/v1/auth/config');
    expect(config.json).toEqual({ oidc: { issuer: idp.issuer, clientId: 'drover', groupsClaim: 'groups' } });
  });
});
