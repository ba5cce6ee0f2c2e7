import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { censorNested, createManagerLogger } from './logger.js';

function capture(): { lines: Record<string, unknown>[]; destination: Writable } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, destination };
}

describe('the manager logger', () => {
  it('censors secrets at the top level, one level down under any key, and in request headers; the caller keeps its objects', () => {
    const { lines, destination } = capture();
    const logger = createManagerLogger({ destination });
    const agent = { id: 'agent-1', credential: 'cred-secret', nested: { token: 'deep-but-two-down' } };
    const call = { token: 'top-secret', agent, headers: { authorization: 'Bearer h-secret', accept: '*/*' }, count: 3, list: [{ token: 'in-an-array' }] };
    logger.info(call, 'line');
    logger.child({ token: 'bound-secret', user: 'ann' }).warn({ enrollmentToken: 'e-secret' }, 'child line');
    logger.info({ req: { method: 'GET', url: '/x?sig=q-secret', headers: { authorization: 'Bearer r-secret' } } }, 'request');
    logger.child({ reqId: 'req-1' }).info({ req: { method: 'POST', url: '/y', headers: { cookie: 'c-secret', 'x-update-nonce': 'n-secret' } } }, 'child request');
    expect(lines[0]).toMatchObject({ msg: 'line', token: '[redacted]', agent: { id: 'agent-1', credential: '[redacted]', nested: { token: 'deep-but-two-down' } }, headers: { authorization: '[redacted]', accept: '*/*' }, count: 3 });
    expect(lines[1]).toMatchObject({ msg: 'child line', enrollmentToken: '[redacted]', token: '[redacted]', user: 'ann' });
    // The request serializer keeps the method, the path without its query, and no header.
    expect(lines[2]).toMatchObject({ req: { method: 'GET', path: '/x', query: '[omitted]' } });
    expect(lines[3]).toMatchObject({ reqId: 'req-1', req: { method: 'POST', path: '/y' } });
    for (const line of lines.slice(2)) expect(line['req']).not.toHaveProperty('headers');
    expect(JSON.stringify(lines)).not.toMatch(/cred-secret|top-secret|h-secret|bound-secret|e-secret|q-secret|r-secret|c-secret|n-secret/);
    expect(call.agent.credential).toBe('cred-secret');
    expect(call.headers.authorization).toBe('Bearer h-secret');
  });

  it('censorNested copies nothing when there is nothing to censor', () => {
    const line = { a: { b: 1 }, c: 'x', d: null, e: new Date(0) };
    expect(censorNested(line)).toBe(line);
  });
});
