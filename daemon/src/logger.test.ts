import { describe, expect, it } from 'vitest';
import { createJsonLogger } from './logger.js';

describe('JSON-lines logger', () => {
  it('writes one JSON object per line with the bindings, and never a secret-named field', () => {
    const lines: string[] = [];
    const logger = createJsonLogger((line) => lines.push(line), { bindings: { component: 'drover:daemon' }, now: () => new Date(0) }).child({ agentId: 'a1' });
    logger.info({ step: 'swapped', credential: 'SECRET-1', nested: { serviceToken: 'SECRET-2', ok: 1 }, err: Object.assign(new Error('boom'), { code: 'X' }) }, 'Update step');
    logger.debug({}, 'hidden below info');
    expect(lines).toHaveLength(1);
    const text = lines[0] ?? '';
    expect(text.endsWith('\n')).toBe(true);
    expect(text).not.toContain('SECRET');
    expect(JSON.parse(text)).toEqual({
      time: '1970-01-01T00:00:00.000Z',
      level: 'info',
      component: 'drover:daemon',
      agentId: 'a1',
      step: 'swapped',
      credential: '[redacted]',
      nested: { serviceToken: '[redacted]', ok: 1 },
      err: { name: 'Error', message: 'boom', code: 'X' },
      msg: 'Update step',
    });
  });

  it('survives a sink that throws', () => {
    const logger = createJsonLogger(() => {
      throw new Error('EPIPE');
    });
    expect(() => {
      logger.error({}, 'x');
    }).not.toThrow();
  });
});
