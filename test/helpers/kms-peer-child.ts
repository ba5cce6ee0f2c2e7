// The KMS peer (test/fakes/kms-peer.ts) in a child process, for code that signs in-process: a
// KmsSigner blocks its thread while KMS answers, so a peer in that same thread would never answer.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../fakes/kms-peer-process.ts', import.meta.url));

export interface KmsPeerChild {
  /** Endpoint, region and credentials for `openKmsSigner(..., { env })`. */
  env: Record<string, string>;
  /** `awskms:` name of the Ed25519 key the peer holds. */
  keyName: string;
  stop(): void;
}

/** Starts the peer in a child (under tsx) and resolves once it listens. */
export async function startKmsPeerChild(): Promise<KmsPeerChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.on('exit', (code) => {
      reject(new Error(`the KMS peer exited (${String(code)})`));
    });
  });
  const { env, keyName } = JSON.parse(line) as { env: Record<string, string>; keyName: string };
  return {
    env,
    keyName,
    stop: () => {
      child.stdin.end();
    },
  };
}
