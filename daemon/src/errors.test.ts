import { readFileSync } from 'node:fs';
import { DroverError } from '@drover/protocol';
import { describe, expect, it } from 'vitest';
import { DaemonError, daemonErrorCodes, errorCode } from './errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const section = doc.slice(doc.indexOf('## droverd'));

describe('DaemonError', () => {
  it('is a branded DroverError with a stable code and its native cause', () => {
    const cause = new Error('disk full');
    const error = new DaemonError('IO_ERROR', 'Cannot write.', { cause });
    expect(error).toBeInstanceOf(DaemonError);
    expect(error).toBeInstanceOf(DroverError);
    expect(error.code).toBe('IO_ERROR');
    expect(error.cause).toBe(cause);
    expect(error.name).toBe('DaemonError');
    // Branded: a copy of the class from another bundle is recognised by the symbol, not the identity.
    const foreign = Object.assign(Object.create(null) as object, { [Symbol.for('drover.error.DaemonError')]: true });
    expect(foreign instanceof DaemonError).toBe(true);
    expect(errorCode(error)).toBe('IO_ERROR');
    expect(errorCode(new Error('x'))).toBe('INTERNAL_ERROR');
  });

  it('every code is listed in the droverd section of docs/errors.md', () => {
    expect(section.length).toBeGreaterThan(0);
    expect(daemonErrorCodes.filter((code) => !section.includes(`\`${code}\``))).toEqual([]);
  });
});
