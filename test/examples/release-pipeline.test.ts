// examples/release-pipeline/release.sh run for real, as a CI job runs it: against a real manager
// process (`drover manager start`) with a trust policy, one enrolled host, the deploy token and a
// real artifact file. Sign -> publish -> notify must leave a published release and a deployment of
// it; a missing variable is a usage error naming it; a key the manager does not trust stops the
// job at publish with the manager's refusal code, and nothing is published.
import { createHash, randomBytes } from 'node:crypto';
import { access, constants, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReleasePayload } from '@drover/protocol';
import { drover, droverBin, repoRoot, run } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import { enrollBody } from '../../packages/manager/test/harness.js';
import { brokenLinks } from './markdown.js';

const script = join(repoRoot, 'examples', 'release-pipeline', 'release.sh');

let dir: string;
let manager: ManagerProcess | undefined;
let deployToken: string;
const at = (...parts: string[]): string => join(dir, ...parts);
const baseEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };

async function cli(args: string[]): Promise<RunResult> {
  const result = await drover(args, { env: baseEnv });
  expect(result.code, `drover ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result;
}

function current(): ManagerProcess {
  if (manager === undefined) throw new Error('the manager is not running');
  return manager;
}

/** The environment a CI job gives release.sh; `unset` names variables to leave out. */
function pipelineEnv(vars: Record<string, string>, unset: readonly string[] = []): NodeJS.ProcessEnv {
  const env: Record<string, string> = {
    ...baseEnv,
    // The CLI as a command line of two words, as the script's help shows.
    DROVER: `${process.execPath} ${droverBin}`,
    DROVER_MANAGER_URL: current().url,
    DROVER_DEPLOY_TOKEN: deployToken,
    PLATFORM: 'linux-x64',
    ...vars,
  };
  for (const name of unset) Reflect.deleteProperty(env, name);
  return env;
}

function releaseScript(env: NodeJS.ProcessEnv): Promise<RunResult> {
  return run('bash', [script], { cwd: dir, env, timeoutMs: 60_000 });
}

const bearer = (): Record<string, string> => ({ authorization: `Bearer ${deployToken}` });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-release-pipeline-'));
  // The one-time setup of the README: a release key, a trust policy, a manager that trusts it.
  await cli(['keygen', '--out', at('keys'), '--name', 'release']);
  await cli(['trust', 'create', '--pub', at('keys', 'release.pub'), '--out', at('trust.json')]);
  const init = await cli(['manager', 'init', '--dir', at('m'), '--trust', at('trust.json'), '--seats', '1', '--expires-in', '1h', '--json']);
  const enrollmentToken = (JSON.parse(init.stdout) as { enrollmentToken: string }).enrollmentToken;
  deployToken = (await readFile(at('m', 'secrets', 'deploy.token'), 'utf8')).trim();
  manager = await ManagerProcess.start(at('m'), baseEnv);

  // One host on 1.0.0, so the rollout has someone to update.
  const machineId = createHash('sha256').update(randomBytes(8)).digest('hex');
  const enrolled = await current().call('POST', '/v1/agents/enroll', { 'x-machine-id': machineId }, enrollBody(enrollmentToken, machineId, { inventory: {} }));
  expect(enrolled.status, JSON.stringify(enrolled.json)).toBe(200);
}, 60_000);

afterAll(async () => {
  await manager?.stop(5_000);
  await rm(dir, { recursive: true, force: true });
});

describe('examples/release-pipeline/release.sh', () => {
  it('is an executable bash script with a --help', async () => {
    await access(script, constants.X_OK);
    const help = await run('bash', [script, '--help'], { env: baseEnv });
    expect(help.code).toBe(0);
    for (const name of ['DROVER_MANAGER_URL', 'DROVER_DEPLOY_TOKEN', 'RELEASE_KEY', 'ARTIFACT', 'VERSION', 'PLATFORM', 'CHANNEL', 'STRATEGY', 'CHANGELOG']) {
      expect(help.stdout).toContain(name);
    }
  });

  it('has a README whose relative links point at files and headings that exist', () => {
    expect(brokenLinks(join(repoRoot, 'examples', 'release-pipeline', 'README.md'))).toEqual([]);
  });

  it('signs, publishes and starts a rollout: the release is the latest, and a deployment of it exists', async () => {
    const artifact = at('agent-1.1.0.cjs');
    const bytes = randomBytes(200_000);
    await writeFile(artifact, bytes);
    await writeFile(at('CHANGES.txt'), 'fix: shipped by the release pipeline\n');
    // An admin token in the job's environment must not be used: the pipeline runs on the deploy token.
    const env = pipelineEnv({
      RELEASE_KEY: at('keys', 'release.key'),
      ARTIFACT: artifact,
      VERSION: '1.1.0',
      CHANGELOG: at('CHANGES.txt'),
      TRUST: at('trust.json'),
      COMMIT_SHA: 'a'.repeat(40),
      ROLLOUT_OPTIONS: '--percentages 50,100',
      DROVER_ADMIN_TOKEN: 'not-the-admin-token',
    });
    const result = await releaseScript(env);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('VERIFIED agent 1.1.0 for linux-x64');
    expect(result.stdout).toContain('PUBLISHED agent 1.1.0 for linux-x64 (200000 bytes');
    const deploymentId = /^STARTED (\S+) /m.exec(result.stdout)?.[1];
    expect(deploymentId, result.stdout).toBeDefined();
    // No secret in what the job printed.
    expect(result.stdout + result.stderr).not.toContain(deployToken);
    expect((await stat(`${artifact}.release.json`)).isFile()).toBe(true);

    // Published: the manager's latest agent release for the platform is these bytes, signed.
    const latest = await current().call('GET', '/v1/releases/latest?artifact=agent&platform=linux-x64', bearer());
    expect(latest.status).toBe(200);
    const manifest = (latest.json as { manifest: ReleasePayload }).manifest;
    expect(manifest).toMatchObject({ artifact: 'agent', version: '1.1.0', platform: 'linux-x64', channel: 'stable', commitSha: 'a'.repeat(40) });
    expect(manifest.file).toEqual({ name: 'agent-1.1.0.cjs', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });

    // Notified: a deployment of 1.1.0 over the enrolled host, seen with the deploy token.
    const status = await current().call('GET', `/manager/v1/updates/status?deployment_id=${deploymentId ?? ''}`, bearer());
    expect(status.status).toBe(200);
    expect(status.json).toMatchObject({
      deployment_id: deploymentId,
      artifact: 'agent',
      version: '1.1.0',
      strategy: 'canary',
      agents_total: 1,
      notification: { version: '1.1.0', changelog: 'fix: shipped by the release pipeline\n', commit_sha: 'a'.repeat(40), metadata: { rollout: { percentages: [50, 100] } } },
    });
    expect(['in_progress', 'completed']).toContain((status.json as { status: string }).status);
    const anonymous = await current().call('GET', '/manager/v1/updates/status', {});
    expect(anonymous.status).toBe(401);
  }, 60_000);

  it('exits 2 and names the variable when one is missing', async () => {
    await writeFile(at('agent-9.9.9.cjs'), randomBytes(1000));
    const result = await releaseScript(pipelineEnv({ RELEASE_KEY: at('keys', 'release.key'), ARTIFACT: at('agent-9.9.9.cjs') }, ['DROVER_DEPLOY_TOKEN']));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/missing environment: set .*\bVERSION\b/);
    expect(result.stderr).toContain('DROVER_DEPLOY_TOKEN');
    // Nothing was done: not even signed.
    await expect(stat(at('agent-9.9.9.cjs.release.json'))).rejects.toThrow();
  });

  it('stops at publish with the refusal code when the key is not in the manager\'s trust policy, and publishes nothing', async () => {
    await cli(['keygen', '--out', at('keys'), '--name', 'stranger']);
    await writeFile(at('agent-1.2.0.cjs'), randomBytes(5000));
    const result = await releaseScript(pipelineEnv({ RELEASE_KEY: at('keys', 'stranger.key'), ARTIFACT: at('agent-1.2.0.cjs'), VERSION: '1.2.0', STRATEGY: 'immediate' }));
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('RELEASE_UNTRUSTED_SIGNER');
    expect(result.stderr).toContain('failed at step: publish');
    expect(result.stdout).not.toContain('PUBLISHED');
    expect(result.stdout).not.toContain('STARTED');

    const missing = await current().call('GET', '/v1/releases/agent/1.2.0?platform=linux-x64', bearer());
    expect(missing).toMatchObject({ status: 404, json: { error: { code: 'RELEASE_NOT_FOUND' } } });
    const latest = await current().call('GET', '/v1/releases/latest?artifact=agent&platform=linux-x64', bearer());
    expect(latest.json).toMatchObject({ manifest: { version: '1.1.0' } });
    // The last deployment is still the 1.1.0 one: no rollout was started.
    const status = await current().call('GET', '/manager/v1/updates/status', bearer());
    expect(status.json).toMatchObject({ version: '1.1.0' });
  }, 60_000);
});
