import { describe, expect, it } from 'vitest';
import { createDaemonLogger } from './logger.js';

function capture(level?: 'debug' | 'info'): { lines: string[]; logger: ReturnType<typeof createDaemonLogger> } {
  const lines: string[] = [];
  const logger = createDaemonLogger({ ...(level === undefined ? {} : { level }), destination: { write: (line) => lines.push(line) } });
  return { lines, logger };
}

describe('droverd logger (pino, JSON lines)', () => {
  it('writes one JSON object per line with the component and the bindings, and never a secret', () => {
    const { lines, logger } = capture();
    logger.child({ component: 'drover:daemon:update', agentId: 'a1' }).info(
      {
        event: 'update.step',
        step: 'swapped',
        credential: 'SECRET-1',
        serviceToken: 'SECRET-2',
        nonce: 'SECRET-3',
        nested: { enrollmentToken: 'SECRET-4', password: 'SECRET-5', ok: 1 },
        headers: { authorization: 'Bearer SECRET-6', 'x-update-nonce': 'SECRET-7', accept: 'application/json' },
        request: { headers: { authorization: 'Bearer SECRET-8' } },
      },
      'Update step',
    );
    logger.debug({}, 'hidden below info');
    expect(lines).toHaveLength(1);
    const text = lines[0] ?? '';
    expect(text.endsWith('\n')).toBe(true);
    expect(text).not.toContain('SECRET');
    const line = JSON.parse(text) as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 'info',
      component: 'drover:daemon:update',
      agentId: 'a1',
      event: 'update.step',
      step: 'swapped',
      credential: '[redacted]',
      serviceToken: '[redacted]',
      nonce: '[redacted]',
      nested: { enrollmentToken: '[redacted]', password: '[redacted]', ok: 1 },
      headers: { authorization: '[redacted]', 'x-update-nonce': '[redacted]', accept: 'application/json' },
      request: { headers: { authorization: '[redacted]' } },
      msg: 'Update step',
    });
    expect(line['time']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // one component key per line, never the process's and the module's both
    expect(text.match(/"component"/g)).toHaveLength(1);
  });

  it('names droverd as the component of the process logger\'s own lines', () => {
    const { lines, logger } = capture();
    logger.warn({ event: 'daemon.signal' }, 'x');
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ level: 'warn', component: 'drover:daemon', event: 'daemon.signal' });
  });

  it('keeps an error\'s code, stack and cause', () => {
    const { lines, logger } = capture('debug');
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    logger.error({ event: 'checkin.failed', err: Object.assign(new Error('The manager could not be reached', { cause }), { code: 'MANAGER_UNREACHABLE' }) }, 'Check-in failed');
    const { err } = JSON.parse(lines[0] ?? '') as { err: { type: string; code: string; message: string; stack: string; cause: { code: string; stack: string } } };
    expect(err).toMatchObject({ type: 'Error', code: 'MANAGER_UNREACHABLE', message: 'The manager could not be reached' });
    expect(err.stack).toContain('logger.test.ts');
    expect(err.cause).toMatchObject({ code: 'ECONNREFUSED' });
    expect(err.cause.stack).toContain('connect ECONNREFUSED');
  });

  it('survives a sink that throws', () => {
    const logger = createDaemonLogger({
      destination: {
        write: () => {
          throw new Error('EPIPE');
        },
      },
    });
    expect(() => {
      logger.error({}, 'x');
    }).not.toThrow();
  });
});
