// bench/crypto.ts: Ed25519 throughput (node:crypto vs tweetnacl, signing through a SoftHSM2
// token over PKCS#11 where SoftHSM2 is installed, and through AWS KMS's protocol against the test
// peer of test/fakes/kms-peer.ts, not AWS) and streaming artifact verification against
// `sha256sum` on the same file in the same run. Prints one JSON line.
//
//   npm run bench:crypto [-- --size-mib 256]
//
// Targets (issue 2): streaming verification at least 0.8x sha256sum's throughput, peak RSS under 100 MB.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Ed25519PrivateKey } from '../packages/protocol/src/index.js';
import type { Ed25519Implementation } from '../packages/protocol/src/index.js';
import { nativeEd25519, tweetnaclEd25519 } from '../packages/protocol/src/internal.js';
import { generatePkcs11Key, openKmsSigner } from '../packages/manager/src/index.js';
import { startKmsPeerChild } from '../test/helpers/kms-peer-child.js';
import type { KmsPeerChild } from '../test/helpers/kms-peer-child.js';
import { createSoftHsm, softhsmMissing } from '../test/helpers/softhsm.js';

const { values } = parseArgs({ options: { 'size-mib': { type: 'string', default: '256' } } });

const STREAM_CHUNK = 1024 * 1024; // bytes read per chunk while streaming
const builtProtocol = fileURLToPath(new URL('../packages/protocol/dist/index.js', import.meta.url));
const builtProtocolInternal = fileURLToPath(new URL('../packages/protocol/dist/internal.js', import.meta.url));

// The verification runs in a child on the BUILT package under plain node, as the daemon runs it,
// so that its peak RSS is the verifier's and not this script's or tsx's.
const STREAM_CHILD = `
const [path, size, sha256, protocol, protocolInternal] = process.argv.slice(1);
const { verifyArtifactStream } = await import(protocol);
const { readFileChunks } = await import(protocolInternal);
const start = process.hrtime.bigint();
await verifyArtifactStream(readFileChunks(path, { limit: Number(size) + 1 }), { size: Number(size), sha256 });
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
process.stdout.write(JSON.stringify({ seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
`;

function opsPerSecond(fn: () => void, minMs = 1000): number {
  for (let i = 0; i < 20; i++) fn(); // warm up
  let count = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0n;
  while (elapsed < BigInt(minMs) * 1_000_000n) {
    for (let i = 0; i < 10; i++) fn();
    count += 10;
    elapsed = process.hrtime.bigint() - start;
  }
  return Math.round(count / (Number(elapsed) / 1e9));
}

function ed25519Figures(impl: Ed25519Implementation): { signPerSec: number; verifyPerSec: number } {
  const key = Ed25519PrivateKey.generate();
  const message = randomBytes(256);
  const signature = key.sign(message, impl);
  return {
    signPerSec: opsPerSecond(() => key.sign(message, impl)),
    verifyPerSec: opsPerSecond(() => {
      if (!key.publicKey.verify(message, signature, impl)) throw new Error('verification failed');
    }),
  };
}

/**
 * Signatures per second of a key in a throwaway SoftHSM2 token, through drover's PKCS#11 signer
 * (C_SignInit + C_Sign with CKM_EDDSA, then the in-process check of the signature every token
 * signature gets), or why it was not measured.
 */
async function softhsmFigures(): Promise<{ signPerSec: number } | { skipped: string }> {
  const missing = softhsmMissing();
  if (missing !== undefined) return { skipped: missing };
  const hsm = await createSoftHsm();
  // SoftHSM2 reads its configuration from this process's environment when the module initialises.
  const previous = process.env['SOFTHSM2_CONF'];
  process.env['SOFTHSM2_CONF'] = hsm.env['SOFTHSM2_CONF'];
  try {
    const token = await hsm.initToken('bench');
    const key = generatePkcs11Key(hsm.uri(token, 'bench'), { env: hsm.env });
    try {
      const message = randomBytes(256);
      return { signPerSec: opsPerSecond(() => key.sign(message)) };
    } finally {
      key.close();
    }
  } finally {
    if (previous === undefined) delete process.env['SOFTHSM2_CONF'];
    else process.env['SOFTHSM2_CONF'] = previous;
    await hsm.cleanup();
  }
}

/**
 * Signatures per second of an Ed25519 key through drover's KMS signer (the real @aws-sdk/client-kms,
 * SigV4, one HTTP request per signature, the in-process check) against the KMS peer on 127.0.0.1 in
 * a child process: the cost of drover's side and the protocol, without AWS's network round trip.
 */
async function kmsPeerFigures(): Promise<{ signPerSec: number; note: string } | { skipped: string }> {
  let peer: KmsPeerChild | undefined;
  try {
    peer = await startKmsPeerChild();
    const key = openKmsSigner(peer.keyName, { env: { ...process.env, ...peer.env } });
    try {
      const message = randomBytes(256);
      return { signPerSec: opsPerSecond(() => key.sign(message)), note: 'the test peer on 127.0.0.1, not AWS: add one KMS round trip per signature' };
    } finally {
      key.close();
    }
  } catch (error) {
    return { skipped: (error as Error).message };
  } finally {
    peer?.stop();
  }
}

async function writeRandomFile(path: string, bytes: number): Promise<string> {
  const handle = await open(path, 'w');
  const hash = createHash('sha256');
  const block = randomBytes(STREAM_CHUNK);
  for (let written = 0; written < bytes; written += block.length) {
    const chunk = block.subarray(0, Math.min(block.length, bytes - written));
    block[0] = (block[0] ?? 0) ^ 0x5a; // vary the blocks a little
    hash.update(chunk);
    await handle.write(chunk);
  }
  await handle.close();
  return hash.digest('hex');
}

function best<T extends { seconds: number }>(runs: T[]): T {
  return runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
}

async function main(): Promise<void> {
  if (!existsSync(builtProtocol)) throw new Error('Build first: npm run build (npm run bench:crypto does).');
  const sizeMiB = Number(values['size-mib']);
  const size = sizeMiB * 1024 * 1024;
  const native = ed25519Figures(nativeEd25519);
  const tweetnacl = ed25519Figures(tweetnaclEd25519);
  const softhsm2 = await softhsmFigures();
  const awsKmsPeer = await kmsPeerFigures();

  const dir = await mkdtemp(join(tmpdir(), 'drover-bench-'));
  try {
    const file = join(dir, 'artifact.bin');
    const sha256 = await writeRandomFile(file, size);
    execFileSync('cat', [file], { stdio: ['ignore', 'ignore', 'inherit'] }); // warm the page cache for both peers

    const drover = best(
      [1, 2, 3].map(() => {
        const child = spawnSync(process.execPath, ['--input-type=module', '-e', STREAM_CHILD, file, String(size), sha256, builtProtocol, builtProtocolInternal], { encoding: 'utf8' });
        if (child.status !== 0) throw new Error(`stream child failed: ${child.stderr}`);
        return JSON.parse(child.stdout) as { seconds: number; maxRssBytes: number };
      }),
    );
    const peer = best(
      [1, 2, 3].map(() => {
        const start = process.hrtime.bigint();
        const out = execFileSync('sha256sum', [file], { encoding: 'utf8' });
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        if (!out.startsWith(sha256)) throw new Error('sha256sum disagrees with node:crypto');
        return { seconds };
      }),
    );
    const mbps = (seconds: number): number => Math.round((size / 1e6 / seconds) * 10) / 10;
    const ratio = Math.round((peer.seconds / drover.seconds) * 100) / 100;
    const peakRssMB = Math.round((drover.maxRssBytes / 1e6) * 10) / 10;
    process.stdout.write(
      `${JSON.stringify({
        bench: 'crypto',
        node: process.version,
        ed25519: { native, tweetnacl, pkcs11Softhsm2: softhsm2, awsKmsPeer, nativeOverTweetnacl: { sign: Math.round(native.signPerSec / tweetnacl.signPerSec), verify: Math.round(native.verifyPerSec / tweetnacl.verifyPerSec) } },
        streamVerify: {
          fileMiB: sizeMiB,
          droverMBps: mbps(drover.seconds),
          sha256sumMBps: mbps(peer.seconds),
          ratioToSha256sum: ratio,
          peakRssMB,
        },
        targets: { ratioToSha256sum: { min: 0.8, met: ratio >= 0.8 }, peakRssMB: { max: 100, met: peakRssMB < 100 } },
      })}\n`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
