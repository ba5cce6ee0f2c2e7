import { Ed25519PrivateKey } from '@drover/protocol';
import { describe, expect, it } from 'vitest';
import { exitCodes } from '../config.js';
import { runCommand } from './framework.js';
import type { CliCommand, CommandInput } from './framework.js';

function recorder(): { command: CliCommand; seen: CommandInput[]; io: { stdout: (t: string) => void; stderr: (t: string) => void; env: NodeJS.ProcessEnv }; out: string[] } {
  const seen: CommandInput[] = [];
  const out: string[] = [];
  const command: CliCommand = {
    name: 'probe',
    summary: 'records its input',
    usage: 'droverd probe [--manager-key KEY]',
    options: { 'manager-key': { type: 'string', help: 'a key' }, token: { type: 'string', help: 'a token' } },
    positionals: { min: 0, max: 1 },
    run(input) {
      seen.push(input);
      return Promise.resolve({ data: {}, text: '' });
    },
  };
  const io = { stdout: (t: string): void => void out.push(t), stderr: (t: string): void => void out.push(t), env: {} };
  return { command, seen, io, out };
}

describe('runCommand', () => {
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
});
