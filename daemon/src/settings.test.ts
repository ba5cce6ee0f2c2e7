import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectError, expectRejection } from '../../test/helpers/expect-error.js';
import { limits } from './config.js';
import { DaemonError } from './errors.js';
import { resolvePaths } from './host/paths.js';
import { hostPlatform, loadSettings, parseSettings } from './settings.js';

describe('droverd.json', () => {
  it('fills in defaults, with durations in ms', () => {
    const settings = parseSettings({});
    expect(settings.manager).toEqual({ url: undefined, key: undefined, tofu: false, enrollmentToken: undefined });
    expect(settings.agent.configDir).toBe('/etc/drover/agent');
    expect(settings.agent.port).toBe(8080);
    expect(settings.update.healthGraceMs).toBe(limits.healthGraceMs);
    expect(settings.platform).toBe(hostPlatform());
    expect(settings.keepReleases).toBe(limits.keepReleases);
  });

  it('reads seconds (fractions allowed) as milliseconds', () => {
    const settings = parseSettings({ update: { healthGraceSeconds: 0.5, healthTimeoutSeconds: 5 }, download: { stallTimeoutSeconds: 1.25, maxAttempts: 2 } });
    expect(settings.update.healthGraceMs).toBe(500);
    expect(settings.update.healthTimeoutMs).toBe(5000);
    expect(settings.download.stallTimeoutMs).toBe(1250);
    expect(settings.download.maxAttempts).toBe(2);
  });

  it('refuses unknown keys, so a typo never goes unnoticed (CONFIG_INVALID)', () => {
    expectError(() => parseSettings({ manger: {} }), DaemonError, 'CONFIG_INVALID');
    expectError(() => parseSettings({ agent: { configdir: '/x' } }), DaemonError, 'CONFIG_INVALID');
  });

  it('reads metrics.textfileDir (an absolute path; none by default) and refuses a relative one (CONFIG_INVALID)', () => {
    expect(parseSettings({}).metrics).toEqual({ textfileDir: undefined });
    expect(parseSettings({ metrics: { textfileDir: '/var/lib/node_exporter/textfile_collector' } }).metrics.textfileDir).toBe('/var/lib/node_exporter/textfile_collector');
    expectError(() => parseSettings({ metrics: { textfileDir: 'textfile' } }), DaemonError, 'CONFIG_INVALID');
    expectError(() => parseSettings({ metrics: { textfile: '/x' } }), DaemonError, 'CONFIG_INVALID');
  });

  it('refuses bad values (CONFIG_INVALID)', () => {
    expectError(() => parseSettings({ manager: { url: 'ftp://x' } }), DaemonError, 'CONFIG_INVALID');
    expectError(() => parseSettings({ manager: { url: 'https://user:pass@x' } }), DaemonError, 'CONFIG_INVALID');
    expectError(() => parseSettings({ agent: { port: 70000 } }), DaemonError, 'CONFIG_INVALID');
    expectError(() => parseSettings({ keepReleases: 1 }), DaemonError, 'CONFIG_INVALID');
    expectError(() => parseSettings({ machineId: 'ABC' }), DaemonError, 'CONFIG_INVALID');
    expectError(() => parseSettings({ agent: { env: { 'BAD NAME': 'x' } } }), DaemonError, 'CONFIG_INVALID');
    expectError(() => parseSettings([]), DaemonError, 'CONFIG_INVALID');
  });

  it('takes the manager URL, enrollment token and log level from the environment first', () => {
    const settings = parseSettings({ manager: { url: 'https://a.example' } }, 'x', { DROVER_MANAGER_URL: 'https://b.example', DROVER_ENROLLMENT_TOKEN: 'tok', DROVER_LOG_LEVEL: 'debug' });
    expect(settings.manager.url).toBe('https://b.example');
    expect(settings.manager.enrollmentToken).toBe('tok');
    expect(settings.logLevel).toBe('debug');
  });

  it('a missing default file means defaults; a missing explicit one is CONFIG_NOT_FOUND; bad JSON is CONFIG_INVALID', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'droverd-settings-'));
    try {
      await expect(loadSettings(join(dir, 'none.json'), false, {})).resolves.toMatchObject({ keepReleases: limits.keepReleases });
      await expectRejection(loadSettings(join(dir, 'none.json'), true, {}), DaemonError, 'CONFIG_NOT_FOUND');
      await writeFile(join(dir, 'bad.json'), '{');
      await expectRejection(loadSettings(join(dir, 'bad.json'), true, {}), DaemonError, 'CONFIG_INVALID');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('paths', () => {
  it('uses systemd\'s STATE_DIRECTORY, LOGS_DIRECTORY and CONFIGURATION_DIRECTORY', () => {
    const paths = resolvePaths({ env: { STATE_DIRECTORY: '/var/lib/drover', LOGS_DIRECTORY: '/var/log/drover', CONFIGURATION_DIRECTORY: '/etc/drover' } });
    expect(paths.state).toBe('/var/lib/drover');
    expect(paths.journal).toBe('/var/lib/drover/journal.json');
    expect(paths.logs).toBe('/var/log/drover');
    expect(paths.configFile).toBe('/etc/drover/droverd.json');
    expect(paths.configExplicit).toBe(false);
  });

  it('--state-dir wins, then STATE_DIRECTORY, then droverd.json, then env-paths', () => {
    expect(resolvePaths({ env: { STATE_DIRECTORY: '/a' }, stateDir: '/b' }).state).toBe('/b');
    expect(resolvePaths({ env: { STATE_DIRECTORY: '/a:/c' }, configuredStateDir: '/d' }).state).toBe('/a');
    expect(resolvePaths({ env: {}, configuredStateDir: '/d' }).state).toBe('/d');
    expect(resolvePaths({ env: {} }).state).toMatch(/drover$/);
    expect(resolvePaths({ env: {}, configFile: '/x.json' })).toMatchObject({ configFile: '/x.json', configExplicit: true });
    expect(resolvePaths({ env: {} }).configFile).toBe('/etc/drover/droverd.json');
  });
});
