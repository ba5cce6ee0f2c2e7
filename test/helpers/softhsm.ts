// A throwaway SoftHSM2 for the PKCS#11 suites: its own softhsm2.conf and token directory in a temp
// dir (never the system's /var/lib/softhsm/tokens), tokens initialised with softhsm2-util, PINs in
// 0600 files. CI installs softhsm2 and sets DROVER_REQUIRE_SOFTHSM=1 (.ci/run); elsewhere a suite
// that needs it skips and says why.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipUnlessRequired } from './skip.js';

/** Where Debian (and most distributions) install SoftHSM2's PKCS#11 module. */
const MODULE_PATHS = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib64/pkcs11/libsofthsm2.so', '/usr/local/lib/softhsm/libsofthsm2.so'];

/** The SoftHSM2 module's path on this machine, or undefined. */
export const softhsmModule: string | undefined = MODULE_PATHS.find((path) => existsSync(path));

/** Why SoftHSM2 (or the binding) cannot be used on this machine, or undefined when it can. */
export function softhsmMissing(): string | undefined {
  if (softhsmModule === undefined) return 'SoftHSM2 is not installed (apt-get install softhsm2)';
  if (spawnSync('softhsm2-util', ['--version'], { encoding: 'utf8' }).status !== 0) return 'softhsm2-util is not on PATH (apt-get install softhsm2)';
  try {
    createRequire(import.meta.url)('pkcs11js');
  } catch {
    return 'the optional package pkcs11js is not installed or did not build (npm install needs a C++ compiler, make and python3)';
  }
  return undefined;
}

/** True when a SoftHSM2 suite should skip here (never with DROVER_REQUIRE_SOFTHSM=1, as in CI). */
export function skipWithoutSoftHsm(what: string): boolean {
  return skipUnlessRequired(what, softhsmMissing(), 'DROVER_REQUIRE_SOFTHSM');
}

/** A token initialised in a {@link SoftHsm}. */
export interface SoftHsmToken {
  label: string;
  /** A 0600 file holding the user PIN, for `pin-source=file:...`. */
  pinFile: string;
  pin: string;
}

/** A private SoftHSM2: pass `env` to every process (and call) that should see its tokens. */
export interface SoftHsm {
  dir: string;
  module: string;
  /** The process environment with SOFTHSM2_CONF pointing at this instance's config. */
  env: NodeJS.ProcessEnv;
  /** Initialises a new token in the next free slot. */
  initToken(label: string, options?: { pin?: string; soPin?: string }): Promise<SoftHsmToken>;
  /** Deletes a token, as if it had been removed. */
  deleteToken(label: string): void;
  /** `pkcs11:token=LABEL;object=OBJECT?pin-source=file:PINFILE&module-path=MODULE`. */
  uri(token: SoftHsmToken, object: string, options?: { pinFile?: string; withModule?: boolean }): string;
  cleanup(): Promise<void>;
}

function softhsmUtil(args: string[], env: NodeJS.ProcessEnv): string {
  const result = spawnSync('softhsm2-util', args, { env, encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) throw new Error(`softhsm2-util ${args[0] ?? ''} failed (${String(result.status)}): ${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** Creates a private SoftHSM2 in a temp dir, with no tokens yet. */
export async function createSoftHsm(): Promise<SoftHsm> {
  if (softhsmModule === undefined) throw new Error('SoftHSM2 is not installed (apt-get install softhsm2).');
  const module = softhsmModule;
  const dir = await mkdtemp(join(tmpdir(), 'drover-softhsm-'));
  const tokens = join(dir, 'tokens');
  await mkdir(tokens, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  await writeFile(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const env: NodeJS.ProcessEnv = { ...process.env, SOFTHSM2_CONF: conf };
  delete env['DROVER_PKCS11_PIN'];
  delete env['DROVER_PKCS11_MODULE'];
  return {
    dir,
    module,
    env,
    async initToken(label, options = {}) {
      const pin = options.pin ?? '246810';
      softhsmUtil(['--init-token', '--free', '--label', label, '--so-pin', options.soPin ?? '13579135', '--pin', pin], env);
      const pinFile = join(dir, `${label}.pin`);
      await writeFile(pinFile, `${pin}\n`, { mode: 0o600 });
      return { label, pinFile, pin };
    },
    deleteToken(label) {
      softhsmUtil(['--delete-token', '--token', label], env);
    },
    uri(token, object, options = {}) {
      const query = [`pin-source=file:${options.pinFile ?? token.pinFile}`, ...(options.withModule === false ? [] : [`module-path=${module}`])];
      return `pkcs11:token=${encodeURIComponent(token.label)};object=${encodeURIComponent(object)}?${query.join('&')}`;
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
