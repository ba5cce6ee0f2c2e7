import { at, describeWireFamily, hex64, keyid, machineId, patch, publicKey, refuse, signature } from '../../test/wire-examples.js';
import type { Examples, Refusal } from '../../test/wire-examples.js';
import * as audit from './audit.js';

const auditRecord = {
  seq: 42,
  ts: at,
  event: 'agent.machine_id_mismatch',
  actor: 'agent:agent-7f3a',
  agentId: 'agent-7f3a',
  tokenId: hex64('credential').slice(0, 16),
  outcome: 'denied',
  details: { expected: machineId.slice(0, 16), got: hex64('machine-2').slice(0, 16) },
  prev: hex64('record 41'),
  hash: hex64('record 42'),
  kid: keyid,
  sig: signature,
};
const signers = { signers: [{ kid: keyid, algorithm: 'ed25519', publicKey }] };
// An RSA-2048 SubjectPublicKeyInfo is 294 bytes of DER; the schema checks it is base64, the parser that it is RSA-2048+.
const rsaSigners = { signers: [{ kid: 'audit-rsa', algorithm: 'rsa-sha256', publicKey: Buffer.alloc(294, 3).toString('base64') }] };
const hmacSigners = { signers: [{ kid: 'audit-hmac', algorithm: 'hmac-sha256' }] };
// A signers entry is one of three shapes, so a problem inside one is reported at the entry.
const refuseEntry = (why: string, base: unknown, path: string, value: unknown): Refusal => ({ ...refuse(why, base, path, value), path: '/signers/0' });

const examples: Record<string, Examples> = {
  AuditRecord: {
    valid: [
      auditRecord,
      { ...auditRecord, seq: 1, prev: '0'.repeat(64), details: {} },
      { ...auditRecord, alg: 'ed25519' },
      { ...auditRecord, alg: 'rsa-sha256', sig: Buffer.alloc(256, 1).toString('base64') },
      { ...auditRecord, alg: 'hmac-sha256', sig: Buffer.alloc(32, 1).toString('base64') },
    ],
    invalid: [
      refuse('seq 0', auditRecord, '/seq', 0),
      refuse('a short prev', auditRecord, '/prev', hex64('x').slice(1)),
      refuse('a 31-byte signature (shorter than any alg makes)', auditRecord, '/sig', Buffer.alloc(31).toString('base64')),
      refuse('an unknown alg', auditRecord, '/alg', 'rsa-pss'),
      refuse('details that are a list', auditRecord, '/details', []),
      refuse('an empty event', auditRecord, '/event', ''),
      refuse('a kid with a space', auditRecord, '/kid', 'audit key'),
    ],
  },
  AuditSigners: {
    valid: [signers, rsaSigners, hmacSigners],
    invalid: [
      refuseEntry('another algorithm', signers, '/signers/0/algorithm', 'rsa'),
      refuse('no signer', signers, '/signers', []),
      refuseEntry('a hex public key', signers, '/signers/0/publicKey', Buffer.alloc(32, 7).toString('hex')),
      refuseEntry('an unknown signer field', signers, '/signers/0/comment', 'old key'),
      refuseEntry('an HMAC secret in signers.json', hmacSigners, '/signers/0/publicKey', Buffer.alloc(32, 7).toString('base64')),
    ],
  },
  AuditListQuery: {
    valid: [{}, { limit: '50', before: '1200', agent_id: 'agent-7f3a', actor: 'system', event: 'deployment.' }],
    invalid: [
      refuse('a limit of 0', {}, '/limit', '0'),
      refuse('a limit above 999', {}, '/limit', '1000'),
      refuse('before 0', {}, '/before', '0'),
      refuse('an unknown filter', {}, '/host', 'h1'),
    ],
  },
  AuditListResponse: {
    valid: [{ records: [auditRecord], next: 41 }, { records: [], next: null }],
    invalid: [refuse('next 0', { records: [], next: null }, '/next', 0), refuse('a record without its hash', { records: [{ ...auditRecord, hash: undefined }], next: null }, '/records/0/hash', 'x')],
  },
  AuditVerifyResponse: {
    valid: [
      { ok: true, count: 42, lastSeq: 42, lastHash: hex64('record 42'), checkedAt: at },
      { ok: false, count: 1, seq: 2, line: 2, reason: 'HASH_MISMATCH', message: 'line 2: modified', checkedAt: at },
    ],
    invalid: [
      // A union: the validator reports a refusal at its root.
      { why: 'an unknown reason', value: patch({ ok: false, count: 1, seq: 2, line: 2, reason: 'HASH_MISMATCH', message: 'm', checkedAt: at }, '/reason', 'BAD'), path: '/' },
      { why: 'a verdict without its time', value: patch({ ok: true, count: 0, lastSeq: 0, lastHash: hex64('x'), checkedAt: at }, '/checkedAt', undefined), path: '/' },
    ],
  },
};

describeWireFamily(audit, examples);
