import { describe, expect, it } from 'vitest';
import type { Command, CommandInput } from './cli.js';
import { exitCodes } from './cli.js';
import { CliError } from './errors.js';
import type { CommandEntry, ProgramInfo } from './program.js';
import { runProgram } from './program.js';

const info: ProgramInfo = { name: 'drover', version: '9.9.9', description: 'test program', groups: { probe: 'probes' }, epilogue: 'the end' };

function harness(run: Command['run'] = () => Promise.resolve({ data: { ok: true }, text: 'ok' }), extra: Partial<Command> = {}) {
  const seen: CommandInput[] = [];
  const loaded: string[] = [];
  const command: Command = {
    usage: '[--token T] [FILE]',
    options: {
      token: { type: 'string', help: 'a token' },
      'manager-key': { type: 'string', help: 'a key' },
      'changelog-file': { type: 'string', aliases: ['changelog'], help: 'a file' },
      key: { type: 'string', multiple: true, aliases: ['k2'], help: 'keys' },
      force: { type: 'boolean', help: 'force' },
    },
    arguments: ['[FILE]'],
    ...extra,
    run(input) {
      seen.push(input);
      return run(input);
    },
  };
  const entries: CommandEntry[] = [
    { path: ['probe', 'one'], summary: 'the probe', load: () => (loaded.push('one'), Promise.resolve(command)) },
    { path: ['probe', 'two'], summary: 'another probe', load: () => (loaded.push('two'), Promise.resolve(command)) },
  ];
  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: (t: string): void => void out.push(t), stderr: (t: string): void => void err.push(t), env: {}, cwd: '/' };
  const cli = (...argv: string[]): Promise<number> => runProgram(info, entries, argv, io);
  return { cli, seen, loaded, out, err };
}

describe('drover option values', () => {
  it('gives an option the dash-leading value that follows it: a token, a PEM block, a lone dash', async () => {
    const pem = '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----';
    const { cli, seen } = harness();
    expect(await cli('probe', 'one', '--token', '-Xy_3', '--manager-key', pem, '--json', 'file')).toBe(exitCodes.ok);
    expect(seen[0]).toMatchObject({ values: { token: '-Xy_3', 'manager-key': pem, json: true }, positionals: ['file'], json: true });
    expect(await cli('probe', 'one', '--token', '-', 'x')).toBe(exitCodes.ok);
    expect(seen[1]?.values).toEqual({ token: '-' });
  });

  it('leaves a forgotten value a usage error (exit 2) instead of swallowing the next option', async () => {
    for (const argv of [
      ['--token', '--json'],
      ['--token', '-h'],
      ['--token', '--json=true'],
      ['--token', '--', 'x'],
      // A misspelt option is not taken for a value: `--nmae` stays an option.
      ['--token', '--nmae', 'x'],
    ]) {
      const { cli, seen, out, err } = harness();
      expect(await cli('probe', 'one', ...argv, '--force'), argv.join(' ')).toBe(exitCodes.usage);
      expect(seen).toEqual([]);
      expect([...out, ...err].join('')).toMatch(/USAGE_ERROR[^]*option '--token <VALUE>' argument missing/);
    }
  });

  it('touches nothing after --, and takes --name=value as it is', async () => {
    const { cli, seen } = harness();
    expect(await cli('probe', 'one', '--', '--token')).toBe(exitCodes.ok);
    expect(seen[0]).toMatchObject({ values: {}, positionals: ['--token'] });
    expect(await cli('probe', 'one', '--token=-a', '--force', 'pos')).toBe(exitCodes.ok);
    expect(seen[1]).toMatchObject({ values: { token: '-a', force: true }, positionals: ['pos'] });
  });

  it('does not fold a PEM-looking argument into a boolean option', async () => {
    const { cli, seen } = harness();
    expect(await cli('probe', 'one', '--force', '-----BEGIN X-----')).toBe(exitCodes.usage);
    expect(seen).toEqual([]);
  });

  it('accepts an old spelling as a hidden alias of the current one, repeatable ones included', async () => {
    const { cli, seen, out } = harness();
    expect(await cli('probe', 'one', '--changelog', 'notes', '--key', 'a', '--k2', 'b', '--key', 'c')).toBe(exitCodes.ok);
    expect(seen[0]?.values).toEqual({ 'changelog-file': 'notes', key: ['a', 'b', 'c'] });
    expect(await cli('probe', 'one', '--help')).toBe(exitCodes.ok);
    expect(out.join('')).toContain('--changelog-file <VALUE>');
    expect(out.join('')).not.toMatch(/--changelog |--k2/);
  });
});

describe('drover exit codes and help', () => {
  it('exits 2 for usage errors, 1 for failures, and prints errors as `drover: CODE:` or JSON', async () => {
    const failing = harness(() => Promise.reject(new CliError('FILE_NOT_FOUND', 'gone')));
    expect(await failing.cli('probe', 'one')).toBe(exitCodes.error);
    expect(failing.err.join('')).toBe('drover: FILE_NOT_FOUND: gone\n');
    // A command whose negative outcome is 1 (audit verify's BROKEN) gives its errors their own code.
    const noVerdict = harness(() => Promise.reject(new CliError('FILE_NOT_FOUND', 'gone')), { errorExitCode: 3 });
    expect(await noVerdict.cli('probe', 'one')).toBe(3);
    expect(await harness(() => Promise.reject(new CliError('USAGE_ERROR', 'wrong')), { errorExitCode: 3 }).cli('probe', 'one')).toBe(exitCodes.usage);
    const misused = harness(() => Promise.reject(new CliError('USAGE_ERROR', 'wrong')));
    expect(await misused.cli('probe', 'one', '--json')).toBe(exitCodes.usage);
    expect(JSON.parse(misused.out.join(''))).toEqual({ error: { code: 'USAGE_ERROR', message: 'wrong' } });
    for (const argv of [['bogus'], ['probe', 'three'], ['probe', 'one', '--bogus'], ['probe', 'one', 'a', 'b'], []]) {
      const { cli, err } = harness();
      expect(await cli(...argv), argv.join(' ')).toBe(exitCodes.usage);
      expect(err.join('')).toMatch(/^drover: USAGE_ERROR: /m);
    }
    const json = harness();
    expect(await json.cli('probe', 'one', '--bogus', '--json')).toBe(exitCodes.usage);
    expect(JSON.parse(json.out.join(''))).toMatchObject({ error: { code: 'USAGE_ERROR', message: expect.stringContaining("unknown option '--bogus'") as unknown } });
  });

  it('lists a group\'s commands with exit 0, and every command in --help; loads only the command named', async () => {
    const group = harness();
    expect(await group.cli('probe', '--help')).toBe(exitCodes.ok);
    expect(group.out.join('')).toMatch(/probe one +the probe\n +probe two +another probe/);
    expect(group.loaded).toEqual([]);
    const viaHelp = harness();
    expect(await viaHelp.cli('help', 'probe')).toBe(exitCodes.ok);
    expect(viaHelp.out.join('')).toContain('probe two');
    const all = harness();
    expect(await all.cli('--help')).toBe(exitCodes.ok);
    expect(all.out.join('')).toContain('probe two');
    expect(all.out.join('')).toContain('the end');
    const one = harness();
    expect(await one.cli('probe', 'two', '--help')).toBe(exitCodes.ok);
    expect(one.loaded).toEqual(['two']);
    expect(one.out.join('')).toContain('Usage: drover probe two [--token T] [FILE]');
    const version = harness();
    expect(await version.cli('--version')).toBe(exitCodes.ok);
    expect(version.out.join('')).toBe('9.9.9\n');
  });
});
