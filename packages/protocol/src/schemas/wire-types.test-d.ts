// Type-level checks of the wire types, run by vitest's typecheck mode (tsc), not at runtime.
import type { Static } from '@sinclair/typebox';
import { describe, expectTypeOf, it } from 'vitest';
import type { AuditRecord } from '../audit/record.js';
import type { ShutdownRequest } from './agent-endpoints.js';
import type { AuditRecordSchema } from './audit.js';
import type { AgentHealthReportStatus, CheckinRequest, UpdateStep } from './check-in.js';
import type { Command, CommandOutcome, UpdateCommand } from './commands.js';
import type { DeploymentStatusResponse, RolloutTargetState, UpdateNotification } from './deploy.js';

describe('wire schemas', () => {
  it('gives the TypeScript types the wire shapes', () => {
    expectTypeOf<Command>().toEqualTypeOf<UpdateCommand>();
    expectTypeOf<ShutdownRequest>().toEqualTypeOf<{ reason: string; force?: boolean; confirm: boolean }>();
    expectTypeOf<CommandOutcome>().toEqualTypeOf<'succeeded' | 'failed' | 'rolled_back' | 'deferred' | 'rejected'>();
    expectTypeOf<AgentHealthReportStatus>().toEqualTypeOf<'healthy' | 'degraded' | 'starting' | 'unreachable' | 'stopped'>();
    expectTypeOf<RolloutTargetState>().toEqualTypeOf<
      'pending' | 'notified' | 'deferred' | 'updating' | 'health_check' | 'succeeded' | 'failed' | 'skipped' | 'rolled_back'
    >();
    // The Static types of the schemas carry the literal unions, not plain strings.
    expectTypeOf<UpdateCommand['artifact']>().toEqualTypeOf<'agent' | 'daemon'>();
    expectTypeOf<CheckinRequest['results'][number]['outcome']>().toEqualTypeOf<CommandOutcome>();
    expectTypeOf<NonNullable<CheckinRequest['state']['update']>['step']>().toEqualTypeOf<UpdateStep>();
    expectTypeOf<CheckinRequest['health']['status']>().toEqualTypeOf<AgentHealthReportStatus>();
    // CIRISManager's notify model takes any string for these (docs/ciris-compat.md N2, N3).
    expectTypeOf<UpdateNotification['risk_level']>().toEqualTypeOf<string | null | undefined>();
    expectTypeOf<UpdateNotification['strategy']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<DeploymentStatusResponse>().toExtend<object | null>();
  });

  it('has one type per audit record: AuditRecord fits its schema, with details narrowed to JSON', () => {
    expectTypeOf<AuditRecord>().toExtend<Static<typeof AuditRecordSchema>>();
    expectTypeOf<Omit<AuditRecord, 'details'>>().toEqualTypeOf<Omit<Static<typeof AuditRecordSchema>, 'details'>>();
  });
});
