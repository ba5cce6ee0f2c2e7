import { createHash } from 'node:crypto';
import { CheckinRequestSchema, UpdateNotificationSchema, schemaProblems } from '@drover/protocol';
import { AgentIdSchema } from '@drover/protocol/internal';
import { describe, expect, it } from 'vitest';
import { describeSchemaProblems, echo, presentedSha256 } from './presented.js';

describe('what a client presented', () => {
  it('is recorded as the hex SHA-256 of its UTF-8 text', () => {
    expect(presentedSha256('abc')).toBe(createHash('sha256').update('abc').digest('hex'));
  });

  it('is echoed only when it matches its schema', () => {
    expect(echo('agent-1f2e', AgentIdSchema, '(the given id)')).toBe('agent-1f2e');
    expect(echo('ghp/secret==', AgentIdSchema, '(the given id)')).toBe('(the given id)');
  });

  it("is never quoted in a schema problem: unknown keys and a free-form map's keys show as *", () => {
    const valid = { state: { agentVersion: '1', daemonVersion: '1' }, health: { status: 'healthy', busy: false }, acks: [], results: [] };
    const described = describeSchemaProblems(CheckinRequestSchema, schemaProblems(CheckinRequestSchema, { ...valid, sk_live_secret: 1 }, 3));
    expect(described).toContain('/*: Unexpected property');
    expect(described).not.toContain('sk_live_secret');
    const nested = describeSchemaProblems(CheckinRequestSchema, schemaProblems(CheckinRequestSchema, { ...valid, results: [{ commandId: 'c', outcome: 'x', detail: { ghp_token: 1 } }] }, 3));
    expect(nested).toContain('/results/0/');
    expect(nested).not.toContain('ghp_token');
    const metadata = describeSchemaProblems(UpdateNotificationSchema, schemaProblems(UpdateNotificationSchema, { metadata: { 'secret\u0001key': 1 } }, 3));
    expect(metadata).not.toContain('secret');
  });
});
