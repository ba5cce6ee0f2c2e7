import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { joinDashValues } from './cli-args.js';

const options = { token: { type: 'string' }, 'manager-key': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;
const parse = (args: string[]) => parseArgs({ args: joinDashValues(args, options), options, allowPositionals: true, strict: true });

describe('joinDashValues', () => {
  it('gives a string option the dash-leading value that follows it: a token, a PEM block', () => {
    const pem = '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----';
    expect(parse(['--token', '-Xy_3', '--manager-key', pem, '--json', 'file']).values).toEqual({ token: '-Xy_3', 'manager-key': pem, json: true });
    expect(parse(['--token', '-', 'x']).values).toEqual({ token: '-' });
  });

  it('leaves a forgotten value a usage error instead of swallowing the next option', () => {
    expect(() => parse(['--token', '--json'])).toThrow(/ambiguous/);
    expect(() => parse(['--token', '-h'])).toThrow(/ambiguous/);
    expect(() => parse(['--token', '--json=true'])).toThrow();
    expect(() => parse(['--token', '--', 'x'])).toThrow(/ambiguous/);
    // A misspelt option is not taken for a value: `--nmae` stays an unknown option.
    expect(() => parse(['--token', '--nmae', 'x'])).toThrow(/ambiguous/);
  });

  it('touches nothing after --', () => {
    expect(joinDashValues(['--json', '--', '--token', '-x'], options)).toEqual(['--json', '--', '--token', '-x']);
    expect(parse(['--', '--token', '-x']).positionals).toEqual(['--token', '-x']);
  });

  it('leaves everything else as it is', () => {
    expect(joinDashValues(['--token=-a', '--json', '-h', 'pos', '--token', 'plain'], options)).toEqual(['--token=-a', '--json', '-h', 'pos', '--token', 'plain']);
    expect(joinDashValues(['--unknown', '-v'], options)).toEqual(['--unknown', '-v']);
  });
});
