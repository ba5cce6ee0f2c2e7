import { Ed25519PrivateKey } from '@drover/protocol';
import { describe, expect, it } from 'vitest';
import { exitCodes } from '../config.js';
import { runCli } from './framework.js';
import type { CliCommand, CommandInput } from './framework.js';

function recorder(): { command: CliCommand; seen: CommandInput[]; io: { stdout: (t: string) => void; stderr: (t: string) => void; env: NodeJS.ProcessEnv }; out: string[] } {
  const seen: CommandInput[] = [];
  const out: string[] = [];
  const command: CliCommand = {
    name: 'probe',
    summary: 'records its input',
    usage: '[--manager-key KEY] [ARG]',
    options: { 'manager-key': { type: 'string', help: 'a key' }, token: { type: 'string', help: 'a token' } },
    arguments: ['[ARG]'],
    run(input) {
      seen.push(input);
      return Promise.resolve({ data: {}, text: '' });
    },
  };
  const io = { stdout: (t: string): void => void out.push(t), stderr: (t: string): void => void out.push(t), env: {} };
  return { command, seen, io, out };
}

const runCommand = (command: CliCommand, argv: string[], io: Parameters<typeof runCli>[2]): Promise<number> => runCli([command], [command.name, ...argv], io);

describe('runCli', () => {
  it('takes a PEM key as the separate value of a string option (`--manager-key "$(cat manager.key.pub)"`)', async () => {
    const pem = Ed25519PrivateKey.generate().publicKey.toPem();
    const { command, seen, io } = recorder();
    expect(await runCommand(command, ['--manager-key', pem, '--token', 't', '--json'], io)).toBe(exitCodes.ok);
    expect(seen[0]?.values).toMatchObject({ 'manager-key': pem, token: 't', json: true });
  });

  it('takes a dash-leading value that is not one of its options (a base64url token may start with "-")', async () => {
    const { command, seen, io } = recorder();
    expect(await runCommand(command, ['--token', '-x7Tq', '--manager-key', '-', '--json'], io)).toBe(exitCodes.ok);
    expect(seen[0]?.values).toMatchObject({ token: '-x7Tq', 'manager-key': '-', json: true });
  });

  it('still refuses a missing value followed by one of its options, naming the usage error', async () => {
    const { command, seen, io, out } = recorder();
    expect(await runCommand(command, ['--manager-key', '--json'], io)).toBe(exitCodes.usage);
    expect(seen).toEqual([]);
    expect(JSON.parse(out.join(''))).toMatchObject({ error: { code: 'USAGE_ERROR' } });
  });

  it('does not fold a PEM-looking positional into a boolean option', async () => {
    const { command, seen, io } = recorder();
    expect(await runCommand(command, ['--json', '-----BEGIN X-----'], io)).toBe(exitCodes.usage);
    expect(seen).toEqual([]);
  });

  it('refuses a typo or `--` where a value belongs, and touches nothing after --', async () => {
    for (const argv of [['--token', '--frce'], ['--token', '--', 'x'], ['--token', '-h']]) {
      const { command, seen, io, out } = recorder();
      expect(await runCommand(command, [...argv, '--json'], io), argv.join(' ')).toBe(exitCodes.usage);
      expect(seen).toEqual([]);
      expect(JSON.parse(out.join(''))).toMatchObject({ error: { code: 'USAGE_ERROR' } });
    }
    const { command, seen, io } = recorder();
    expect(await runCommand(command, ['--', '--token'], io)).toBe(exitCodes.ok);
    expect(seen[0]).toMatchObject({ values: {}, positionals: ['--token'] });
  });

  it('exits 2 for an unknown command or option and too many arguments, 0 for --help with the exit codes', async () => {
    const { command, io, out } = recorder();
    expect(await runCli([command], ['bogus'], io)).toBe(exitCodes.usage);
    expect(await runCli([command], ['probe', '--bogus'], io)).toBe(exitCodes.usage);
    expect(await runCli([command], ['probe', 'a', 'b'], io)).toBe(exitCodes.usage);
    expect(out.join('')).toMatch(/^droverd: USAGE_ERROR: unknown command 'bogus'/m);
    out.length = 0;
    expect(await runCli([command], ['probe', '--help'], io)).toBe(exitCodes.ok);
    expect(out.join('')).toContain('Usage: droverd probe [--manager-key KEY] [ARG]');
    expect(out.join('')).toContain('--state-dir <DIR>');
    expect(out.join('')).toMatch(/Exit codes:\n {2}0 +success/);
    out.length = 0;
    expect(await runCli([command], ['help', 'probe'], io)).toBe(exitCodes.ok);
    expect(out.join('')).toContain('Usage: droverd probe');
  });
});
