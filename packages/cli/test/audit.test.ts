import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey, ed25519AuditSigner } from '@drover/protocol';
import type { AuditRecord } from '@drover/protocol';
import { AuditChain, buildAuditSigners, canonicalize } from '@drover/protocol/internal';
import { drover } from '../../../test/helpers/cli.js';

let dir: string;
const at = (name: string): string => join(dir, name);
const key = Ed25519PrivateKey.generate();
const stranger = Ed25519PrivateKey.generate();
let lines: string[] = [];

async function makeLog(count: number, signingKey = key): Promise<string[]> {
  let t = Date.UTC(2025, 5, 1);
  const chain = new AuditChain(ed25519AuditSigner(signingKey), { now: () => new Date((t += 1000)) });
  const out: string[] = [];
  for (let i = 1; i <= count; i += 1) {
    out.push((await chain.append({ event: 'agent.checkin', actor: `agent:${i % 7}`, agentId: `agent-${i % 7}`, outcome: 'success', details: { i, version: '1.2.3' } })).line);
  }
  return out;
}

async function writeLog(name: string, content: string | Buffer): Promise<string> {
  await writeFile(at(name), content);
  return at(name);
}

interface Verdict {
  ok: boolean;
  count: number;
  seq?: number;
  line?: number;
  reason?: string;
  lastSeq?: number;
  lastHash?: string;
}

async function verifyJson(log: string, signers = at('signers.json')): Promise<{ code: number | null; verdict: Verdict }> {
  const result = await drover(['audit', 'verify', '--signers', signers, '--json', log]);
  return { code: result.code, verdict: JSON.parse(result.stdout) as Verdict };
}

function errorCode(stdout: string): string {
  return (JSON.parse(stdout) as { error: { code: string } }).error.code;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-audit-'));
  lines = await makeLog(6);
  await writeFile(at('signers.json'), `${JSON.stringify(buildAuditSigners([key.publicKey]), null, 2)}\n`);
  await writeFile(at('stranger-signers.json'), JSON.stringify(buildAuditSigners([stranger.publicKey])));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('drover audit verify', () => {
  it('prints VERIFIED <n> records and exits 0 for an intact log', async () => {
    const log = await writeLog('good.jsonl', lines.join(''));
    const result = await drover(['audit', 'verify', '--signers', at('signers.json'), log]);
    expect(result.stdout.split('\n')[0]).toBe('VERIFIED 6 records');
    expect(result.code).toBe(0);
    const { code, verdict } = await verifyJson(log);
    expect(code).toBe(0);
    expect(verdict).toMatchObject({ ok: true, count: 6, lastSeq: 6, lastHash: (JSON.parse(lines[5] ?? '') as AuditRecord).hash });
  });

  // Each tampering, and the seq and reason it must be reported with.
  const tamperings: [name: string, tamper: (log: string[]) => void, seq: number, reason: string][] = [
    [
      'a modified record',
      (log) => {
        log[2] = `${canonicalize({ ...(JSON.parse(log[2] ?? '') as AuditRecord), outcome: 'failure' })}\n`;
      },
      3,
      'HASH_MISMATCH',
    ],
    ['a deleted record', (log) => log.splice(2, 1), 4, 'SEQ_OUT_OF_ORDER'],
    ['an inserted copy of a record', (log) => log.splice(4, 0, log[1] ?? ''), 2, 'SEQ_OUT_OF_ORDER'],
    [
      'two reordered records',
      (log) => {
        [log[3], log[4]] = [log[4] ?? '', log[3] ?? ''];
      },
      5,
      'SEQ_OUT_OF_ORDER',
    ],
    [
      'a partial last line',
      (log) => {
        log[5] = (log[5] ?? '').slice(0, 50);
      },
      6,
      'MALFORMED',
    ],
    [
      'a last record without its newline',
      (log) => {
        log[5] = (log[5] ?? '').slice(0, -1);
      },
      6,
      'MALFORMED',
    ],
    [
      'CRLF line ends',
      (log) => {
        log.forEach((text, i) => {
          log[i] = text.replace('\n', '\r\n');
        });
      },
      1,
      'NOT_CANONICAL',
    ],
  ];

  it.each(tamperings)('names the seq of %s and exits 1', async (name, tamper, seq, reason) => {
    const copy = [...lines];
    tamper(copy);
    const log = await writeLog(`${name.replace(/\W+/g, '-')}.jsonl`, copy.join(''));
    const result = await drover(['audit', 'verify', '--signers', at('signers.json'), log]);
    expect(result.stdout).toMatch(new RegExp(`^BROKEN at seq ${seq}: ${reason}: `));
    expect(result.code).toBe(1);
    const { code, verdict } = await verifyJson(log);
    expect(code).toBe(1);
    expect(verdict).toMatchObject({ ok: false, seq, reason });
  });

  it('reports an inserted forgery signed by an untrusted key as UNKNOWN_SIGNER at its seq', async () => {
    const previous = JSON.parse(lines[1] ?? '') as AuditRecord;
    const forged = await new AuditChain(ed25519AuditSigner(stranger), { head: { seq: 2, hash: previous.hash } }).append({ event: 'deployment.aborted', actor: 'operator:mallory', outcome: 'success' });
    const log = await writeLog('forged.jsonl', [...lines.slice(0, 2), forged.line, ...lines.slice(2)].join(''));
    const { code, verdict } = await verifyJson(log);
    expect(code).toBe(1);
    expect(verdict).toMatchObject({ ok: false, count: 2, seq: 3, line: 3, reason: 'UNKNOWN_SIGNER' });
  });

  it('reports a log signed by a key missing from signers.json as UNKNOWN_SIGNER', async () => {
    const log = await writeLog('good2.jsonl', lines.join(''));
    const result = await drover(['audit', 'verify', '--signers', at('stranger-signers.json'), log]);
    expect(result.stdout).toMatch(/^BROKEN at seq 1: UNKNOWN_SIGNER: /);
    expect(result.stdout).toContain(key.keyid);
    expect(result.code).toBe(1);
  });

  it('streams a log larger than one read chunk and finds a break near its end', async () => {
    const big = await makeLog(4000);
    expect(big.join('').length).toBeGreaterThan(1024 * 1024); // lines cross readFileChunks' 1 MiB chunks
    const good = await writeLog('big.jsonl', big.join(''));
    expect((await verifyJson(good)).verdict).toMatchObject({ ok: true, count: 4000 });
    big.splice(3990, 1);
    const broken = await writeLog('big-broken.jsonl', big.join(''));
    expect((await verifyJson(broken)).verdict).toMatchObject({ ok: false, count: 3990, seq: 3992, line: 3991, reason: 'SEQ_OUT_OF_ORDER' });
  });

  it('refuses invalid UTF-8 in the file rather than reading it as U+FFFD', async () => {
    const bytes = Buffer.from(lines.join(''), 'utf8');
    const at3 = bytes.indexOf('"version":"1.2.3"', bytes.indexOf('\n', bytes.indexOf('\n') + 1));
    bytes[at3 + 12] = 0xff;
    const log = await writeLog('bad-utf8.jsonl', bytes);
    expect((await verifyJson(log)).verdict).toMatchObject({ ok: false, seq: 3, reason: 'MALFORMED' });
  });

  it('reports an empty log as EMPTY unless --allow-empty', async () => {
    const log = await writeLog('empty.jsonl', '');
    const refused = await drover(['audit', 'verify', '--signers', at('signers.json'), log]);
    expect(refused.stdout).toMatch(/^BROKEN at seq 1: EMPTY: /);
    expect(refused.code).toBe(1);
    const allowed = await drover(['audit', 'verify', '--signers', at('signers.json'), '--allow-empty', log]);
    expect(allowed.stdout.split('\n')[0]).toBe('VERIFIED 0 records');
    expect(allowed.code).toBe(0);
  });

  it('fails with a clear code for a missing log, missing or invalid signers (exit 3: no verdict, not BROKEN), and bad usage (exit 2)', async () => {
    const missingLog = await drover(['audit', 'verify', '--signers', at('signers.json'), '--json', at('nope.jsonl')]);
    expect(missingLog.code).toBe(3);
    expect(errorCode(missingLog.stdout)).toBe('FILE_NOT_FOUND');
    const missingLogText = await drover(['audit', 'verify', '--signers', at('signers.json'), at('nope.jsonl')]);
    expect(missingLogText.stderr).toMatch(/^drover: FILE_NOT_FOUND: .*nope\.jsonl/);

    const log = await writeLog('good3.jsonl', lines.join(''));
    const missingSigners = await drover(['audit', 'verify', '--signers', at('nope.json'), '--json', log]);
    expect(missingSigners.code).toBe(3);
    expect(errorCode(missingSigners.stdout)).toBe('FILE_NOT_FOUND');

    await writeFile(at('bad-signers.json'), '{"signers":[{"kid":"k","algorithm":"rsa","publicKey":"AAAA"}]}');
    const badSigners = await drover(['audit', 'verify', '--signers', at('bad-signers.json'), '--json', log]);
    expect(badSigners.code).toBe(3);
    expect(errorCode(badSigners.stdout)).toBe('AUDIT_SIGNERS_INVALID');

    const noSigners = await drover(['audit', 'verify', '--json', log]);
    expect(noSigners.code).toBe(2);
    expect(errorCode(noSigners.stdout)).toBe('USAGE_ERROR');

    const directory = await drover(['audit', 'verify', '--signers', at('signers.json'), '--json', dir]);
    expect(directory.code).toBe(2);
    expect(errorCode(directory.stdout)).toBe('USAGE_ERROR');
  });
});
