// `drover audit verify` on logs signed with each algorithm of decision 0046, through a rotation.
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey, ed25519AuditSigner, hmacAuditSigner, rsaAuditSigner } from '@drover/protocol';
import type { AuditRecord, AuditSigner } from '@drover/protocol';
import { AuditChain, buildAuditSigners, canonicalize } from '@drover/protocol/internal';
import { drover } from '../../../test/helpers/cli.js';

let dir: string;
const at = (name: string): string => join(dir, name);
const ed = Ed25519PrivateKey.generate();
const rsa = rsaAuditSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'audit-rsa-2026');
const secret = new Uint8Array(Array.from({ length: 32 }, (_, i) => i * 7 + 1));
const hmac = hmacAuditSigner(secret, 'audit-hmac-2026');
let lines: string[] = [];

// Two records by each key in turn, the chain resumed with the next key at each rotation.
async function rotatedLog(signers: AuditSigner[]): Promise<string[]> {
  let t = Date.UTC(2026, 0, 1);
  const now = (): Date => new Date((t += 1000));
  const out: string[] = [];
  for (const signer of signers) {
    const chain = AuditChain.resume(out[out.length - 1], signer, { now });
    for (let n = 0; n < 2; n += 1) out.push((await chain.append({ event: 'agent.checkin', actor: 'system', outcome: 'success', details: { n: out.length } })).line);
  }
  return out;
}

async function verify(log: string[], ...extra: string[]): Promise<{ code: number | null; verdict: { ok: boolean; reason?: string; seq?: number; count: number } }> {
  await writeFile(at('audit.jsonl'), log.join(''));
  const result = await drover(['audit', 'verify', '--signers', at('signers.json'), ...extra, '--json', at('audit.jsonl')]);
  return { code: result.code, verdict: JSON.parse(result.stdout) as { ok: boolean; reason?: string; seq?: number; count: number } };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-audit-alg-'));
  lines = await rotatedLog([ed25519AuditSigner(ed), rsa.signer, hmac.signer]);
  const signers = buildAuditSigners([ed.publicKey, { kid: rsa.signer.kid, publicKey: rsa.key }, { kid: hmac.signer.kid, publicKey: hmac.key }]);
  await writeFile(at('signers.json'), JSON.stringify(signers, null, 2));
  await writeFile(at('hmac-keys.json'), JSON.stringify({ keys: [{ kid: hmac.signer.kid, key: Buffer.from(secret).toString('base64') }] }));
  await chmod(at('hmac-keys.json'), 0o600);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('drover audit verify with rsa-sha256 and hmac-sha256 records', () => {
  it('verifies a chain that rotates ed25519 -> rsa-sha256 -> hmac-sha256 given the HMAC key file', async () => {
    await writeFile(at('audit.jsonl'), lines.join(''));
    const text = await drover(['audit', 'verify', '--signers', at('signers.json'), '--hmac-key-file', at('hmac-keys.json'), at('audit.jsonl')]);
    expect(text.stdout.split('\n')[0]).toBe('VERIFIED 6 records');
    expect(text.code).toBe(0);
  });

  it('says MAC_KEY_MISSING (exit 1) without the HMAC key file', async () => {
    const { code, verdict } = await verify(lines);
    expect(code).toBe(1);
    expect(verdict).toMatchObject({ ok: false, reason: 'MAC_KEY_MISSING', seq: 5, count: 4 });
  });

  it.each([
    ['ed25519', 1],
    ['rsa-sha256', 3],
    ['hmac-sha256', 5],
  ])('reports a modified %s record as HASH_MISMATCH at its seq', async (alg, seq) => {
    const edited = [...lines];
    const record = JSON.parse(edited[seq - 1] ?? '') as AuditRecord;
    expect(record.alg).toBe(alg);
    edited[seq - 1] = `${canonicalize({ ...record, outcome: 'failure' })}\n`;
    const { code, verdict } = await verify(edited, '--hmac-key-file', at('hmac-keys.json'));
    expect(code).toBe(1);
    expect(verdict).toMatchObject({ ok: false, reason: 'HASH_MISMATCH', seq });
  });

  it('refuses an HMAC key file whose kid is an RSA key in signers.json (AUDIT_MAC_KEYS_INVALID), without printing the secret', async () => {
    await writeFile(at('bad-keys.json'), JSON.stringify({ keys: [{ kid: rsa.signer.kid, key: Buffer.from(secret).toString('base64') }] }));
    await writeFile(at('audit.jsonl'), lines.join(''));
    const result = await drover(['audit', 'verify', '--signers', at('signers.json'), '--hmac-key-file', at('bad-keys.json'), '--json', at('audit.jsonl')]);
    expect((JSON.parse(result.stdout) as { error: { code: string } }).error.code).toBe('AUDIT_MAC_KEYS_INVALID');
    expect(result.stdout + result.stderr).not.toContain(Buffer.from(secret).toString('base64'));
    expect(result.code, 'no verdict').toBe(3);
  });

  it('trusts only the kids signers.json lists: a record MACed with another key of the key file is UNKNOWN_SIGNER, with a warning', async () => {
    // A key file holding another manager's HMAC key too: its kid is not in this signers.json.
    const other = hmacAuditSigner(new Uint8Array(32).fill(9), 'other-manager-hmac');
    await writeFile(
      at('keyring.json'),
      JSON.stringify({ keys: [{ kid: hmac.signer.kid, key: Buffer.from(secret).toString('base64') }, { kid: other.signer.kid, key: Buffer.from(new Uint8Array(32).fill(9)).toString('base64') }] }),
    );
    await chmod(at('keyring.json'), 0o600);
    // A record chained onto the real log, MACed with that other key.
    const chain = AuditChain.resume(lines[lines.length - 1], other.signer, { now: () => new Date(Date.UTC(2030, 0, 1)) });
    const appended = [...lines, (await chain.append({ event: 'agent.checkin', actor: 'system', outcome: 'success' })).line];
    await writeFile(at('audit.jsonl'), appended.join(''));
    const result = await drover(['audit', 'verify', '--signers', at('signers.json'), '--hmac-key-file', at('keyring.json'), '--json', at('audit.jsonl')]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, reason: 'UNKNOWN_SIGNER', seq: lines.length + 1 });
    expect(result.stderr).toContain('warning: --hmac-key-file');
    expect(result.stderr).toContain('"other-manager-hmac", which signers.json does not list');
    // The listed key still verifies the real records.
    await writeFile(at('audit.jsonl'), lines.join(''));
    expect((await drover(['audit', 'verify', '--signers', at('signers.json'), '--hmac-key-file', at('keyring.json'), at('audit.jsonl')])).code).toBe(0);
  });
});
