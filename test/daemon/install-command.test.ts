import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { createHost, destroyHost, droverd } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { treeFingerprint } from '../helpers/tree.js';

// `droverd install` run again with the release that is current (the quickstart's step, repeated on a
// stopped droverd) is an idempotent no-op that says so (issue 17), not DOWNGRADE_REFUSED; a real
// downgrade is still refused, and the same version with other bytes is RELEASE_CONFLICT.

describe('droverd install: a re-run of the current release', () => {
  let manager: FakeManager;
  let host: Host;
  const release = async (version: string, variant = ''): Promise<[string, string]> => {
    const bytes = Buffer.concat([await agentArtifact(version), Buffer.from(variant)]);
    const file = join(host.dir, `agent-${version}${variant === '' ? '' : '-variant'}.cjs`);
    await writeFile(file, bytes);
    await writeFile(`${file}.release.json`, JSON.stringify(manager.signRelease({ version, bytes, fileName: 'agent.cjs' })));
    return [`${file}.release.json`, file];
  };

  beforeAll(async () => {
    manager = await FakeManager.start();
    host = await createHost(manager);
  }, 30_000);

  afterAll(async () => {
    await destroyHost(host);
    await manager.close();
  });

  it('installs 1.0.0, then says it is already current and changes nothing', async () => {
    const [envelope, file] = await release('1.0.0');
    const first = await droverd(host, ['install', '--release', envelope, file]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('Installed agent 1.0.0');
    const before = await treeFingerprint(host.stateDir);
    const again = await droverd(host, ['install', '--release', envelope, file, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ artifact: 'agent', version: '1.0.0', changed: false });
    expect(await treeFingerprint(host.stateDir)).toEqual(before);
    const text = await droverd(host, ['install', '--release', envelope, file]);
    expect(text.stdout).toContain('agent 1.0.0 is already installed and current');
    expect(text.stdout).toContain('nothing changed');
  });

  it('still refuses a real downgrade (DOWNGRADE_REFUSED) and other bytes under the current version (RELEASE_CONFLICT)', async () => {
    const [newer, newerFile] = await release('1.1.0');
    expect((await droverd(host, ['install', '--release', newer, newerFile])).code).toBe(0);
    const [older, olderFile] = await release('1.0.0');
    const downgrade = await droverd(host, ['install', '--release', older, olderFile]);
    expect([downgrade.code, downgrade.stderr]).toEqual([1, expect.stringContaining('DOWNGRADE_REFUSED: Version 1.0.0 is not above the running 1.1.0')]);
    const [other, otherFile] = await release('1.1.0', '\n// another build\n');
    const conflict = await droverd(host, ['install', '--release', other, otherFile]);
    expect([conflict.code, conflict.stderr]).toEqual([1, expect.stringContaining('RELEASE_CONFLICT')]);
    const status = await droverd(host, ['status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ agent: { current: '1.1.0' } });
  });
});
