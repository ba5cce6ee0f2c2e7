// The KMS peer in a process of its own (started by test/helpers/kms-peer-child.ts), for a caller that blocks its own thread while it signs
// (bench/crypto.ts: a KmsSigner waits on its worker, so a peer in the same thread would never
// answer). Prints one JSON line `{"env":{...},"keyName":"awskms:alias/bench"}` once listening, and
// stops when its stdin closes.
import { startKmsPeer } from './kms-peer.js';

const peer = await startKmsPeer();
peer.addKey('ECC_NIST_EDWARDS25519', { alias: 'alias/bench' });
// Audit keys of the other algorithms (decision 0046), and one no audit signer may use.
peer.addKey('RSA_2048', { alias: 'alias/audit-rsa' });
peer.addKey('HMAC_256', { alias: 'alias/audit-hmac' });
peer.addKey('SYMMETRIC_DEFAULT', { alias: 'alias/audit-symmetric' });
process.stdout.write(`${JSON.stringify({ env: peer.env, keyName: 'awskms:alias/bench' })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void peer.close().then(() => process.exit(0));
});
