import { chmod, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDroverError } from '@drover/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseSettings } from '../settings.js';
import { checkAgentCanExecute, checkAgentCanReach, openStateDirForAgent, prepareAgentDataDir, resolveAgentAccount } from './account.js';
import type { AgentAccount } from './account.js';

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return isDroverError(error) ? error.code : String(error);
  }
}

const root = process.getuid?.() === 0;

describe('the agent account (decision 0030)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'drover-account-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('droverd.json: agent.user and agent.group take names or numeric ids; group alone, bad names and a relative dataDir are refused', () => {
    expect(parseSettings({ agent: { user: 'drover-agent', group: 'drover-agent', dataDir: '/var/lib/drover-agent' } }).agent).toMatchObject({ user: 'drover-agent', group: 'drover-agent', dataDir: '/var/lib/drover-agent' });
    expect(parseSettings({ agent: { user: '65534' } }).agent.user).toBe('65534');
    expect(parseSettings({}).agent).toMatchObject({ user: undefined, group: undefined, dataDir: undefined });
    for (const agent of [{ user: 'Bad Name' }, { user: '../etc' }, { group: 'nogroup' }, { user: 'nobody', dataDir: 'relative/dir' }]) {
      expect(() => parseSettings({ agent })).toThrow(/CONFIG_INVALID|must be/);
    }
  });

  // A non-root droverd may only run the agent as itself; chown needs root too.
  it.skipIf(!root)('resolves a user by name to its uid and primary group, and a bare numeric id as given', async () => {
    const nobody = await resolveAgentAccount('nobody', undefined, '/x');
    expect(nobody).toMatchObject({ uid: 65_534, name: 'nobody', dataDir: '/x' });
    expect(Number.isInteger(nobody.gid)).toBe(true);
    expect(await resolveAgentAccount('4242', '4243', '/x')).toMatchObject({ uid: 4242, gid: 4243 });
    expect(await codeOf(resolveAgentAccount('4242', undefined, '/x'))).toBe('AGENT_USER_UNKNOWN');
  });

  it('refuses root, an unknown user or group, and (when droverd is not root) any other user', async () => {
    expect(await codeOf(resolveAgentAccount('root', undefined, '/x'))).toBe('AGENT_USER_INVALID');
    expect(await codeOf(resolveAgentAccount('drover-no-such-user', undefined, '/x'))).toBe('AGENT_USER_UNKNOWN');
    expect(await codeOf(resolveAgentAccount('nobody', 'drover-no-such-group', '/x'))).toBe('AGENT_USER_UNKNOWN');
    if (!root) expect(await codeOf(resolveAgentAccount('nobody', undefined, '/x'))).toBe('AGENT_USER_INVALID');
  });

  it('checks search permission on every directory down to the release, naming the one that lacks it', async () => {
    const account: AgentAccount = { uid: 4242, gid: 4242, name: 'agent', dataDir: '/x' };
    const release = join(dir, 'state', 'releases', 'agent', '1.0.0');
    await mkdir(release, { recursive: true });
    await chmod(dir, 0o711);
    for (const d of [join(dir, 'state'), join(dir, 'state', 'releases'), join(dir, 'state', 'releases', 'agent'), release]) await chmod(d, 0o755);
    await checkAgentCanReach(release, account);
    await chmod(join(dir, 'state'), 0o700);
    const error = await checkAgentCanReach(release, account).catch((e: unknown) => e);
    expect(isDroverError(error) && error.code).toBe('AGENT_USER_NO_ACCESS');
    expect((error as Error).message).toContain(`${join(dir, 'state')} (mode 0700`);
    // The state directory opened for the agent: searchable, still not listable.
    expect(await openStateDirForAgent(join(dir, 'state'))).toBe(0o711);
    expect(await openStateDirForAgent(join(dir, 'state'))).toBeUndefined();
    await checkAgentCanReach(release, account);
    await chmod(release, 0o711);
    expect(await codeOf(checkAgentCanReach(release, account))).toBe('AGENT_USER_NO_ACCESS');
  });

  it('checks the agent user may run the program droverd starts it with, naming the directory or file that refuses it', async () => {
    const account: AgentAccount = { uid: 4242, gid: 4242, name: 'agent', dataDir: '/x' };
    const bin = join(dir, 'opt', 'node', 'bin');
    await mkdir(bin, { recursive: true });
    const node = join(bin, 'node');
    await writeFile(node, '#!/bin/sh\n', { mode: 0o755 });
    await symlink(node, join(dir, 'node-link'));
    await chmod(dir, 0o755);
    for (const d of [join(dir, 'opt'), join(dir, 'opt', 'node'), bin]) await chmod(d, 0o755);
    await checkAgentCanExecute(join(dir, 'node-link'), account);
    // A node unpacked into a root-only (mktemp) directory.
    await chmod(join(dir, 'opt', 'node'), 0o700);
    const error = await checkAgentCanExecute(join(dir, 'node-link'), account).catch((e: unknown) => e);
    expect(isDroverError(error) && error.code).toBe('AGENT_USER_NO_ACCESS');
    expect((error as Error).message).toContain(`${join(dir, 'opt', 'node')} (mode 0700`);
    await chmod(join(dir, 'opt', 'node'), 0o755);
    await chmod(node, 0o750);
    expect((await checkAgentCanExecute(node, account).catch((e: unknown) => e) as Error).message).toContain('no execute permission');
  });

  it.skipIf(!root)('creates the data directory 0700 for the agent, and refuses a symlink in its place', async () => {
    const account: AgentAccount = { uid: 4242, gid: 4243, name: 'agent', dataDir: join(dir, 'agent-data') };
    await prepareAgentDataDir(account);
    const info = await stat(account.dataDir);
    expect([info.uid, info.gid, info.mode & 0o777]).toEqual([4242, 4243, 0o700]);
    await prepareAgentDataDir(account); // again: nothing to change
    const linked: AgentAccount = { ...account, dataDir: join(dir, 'link') };
    await symlink(join(dir, 'agent-data'), linked.dataDir);
    expect(await codeOf(prepareAgentDataDir(linked))).toBe('AGENT_USER_NO_ACCESS');
  });
});
