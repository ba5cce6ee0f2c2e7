// A real HTTP forward proxy for the suites that check droverd behind one: tinyproxy (Debian's
// `tinyproxy`, installed by .ci/run), started on a free loopback port with a configuration of its
// own, logging every connection it carries. Where it is missing the suite skips and says why; with
// DROVER_REQUIRE_INTEROP=1 (CI) it fails instead.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { skipUnlessRequired } from './skip.js';

const TINYPROXY = '/usr/bin/tinyproxy';

/** True when the proxy suites should skip (after saying why). */
export function skipWithoutProxy(what: string): boolean {
  return skipUnlessRequired(what, existsSync(TINYPROXY) ? undefined : 'tinyproxy is not installed (apt-get install tinyproxy)', 'DROVER_REQUIRE_INTEROP');
}

export interface RunningProxy {
  /** http://127.0.0.1:PORT, for HTTP_PROXY / HTTPS_PROXY. */
  url: string;
  /** What it logged so far (a line per connection it carried). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts tinyproxy on loopback; `idleTimeoutSeconds`: its Timeout (an idle connection is closed after it). */
export async function startProxy(idleTimeoutSeconds = 600): Promise<RunningProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'drover-proxy-'));
  // tinyproxy started as root runs as nobody: its log must be writable by anyone.
  await chmod(dir, 0o777);
  const port = await freePort();
  const logPath = join(dir, 'tinyproxy.log');
  await writeFile(logPath, '', { mode: 0o666 });
  await chmod(logPath, 0o666);
  const config = join(dir, 'tinyproxy.conf');
  await writeFile(
    config,
    [`Port ${port}`, 'Listen 127.0.0.1', `Timeout ${idleTimeoutSeconds}`, `LogFile "${logPath}"`, 'LogLevel Connect', 'MaxClients 200', 'Allow 127.0.0.1', 'DisableViaHeader Yes', ...(process.getuid?.() === 0 ? ['User nobody', 'Group nogroup'] : [])].join('\n') + '\n',
  );
  const child = spawn(TINYPROXY, ['-d', '-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
  });
  // Ready once it accepts a connection.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => {
        resolve(false);
      });
    });
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`tinyproxy did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => readFile(logPath, 'utf8'),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
