import { Type } from '@sinclair/typebox';
import type { Static, TString } from '@sinclair/typebox';
import { auditBreakReasons } from '../audit/record.js';
import { dateTime, Ed25519PublicKeyBase64, literalUnion } from './common.js';

// The audit log: one record a line, and signers.json.
//
// The record schema is as lenient as the verifier (verifyAuditLog) and no more, so the two never
// disagree about a line; it stays open because a later version may add fields, which the hash covers.

// Base64 of 32 bytes (an HMAC-SHA256 tag) to about 1024 bytes (an RSA-8192 signature); the verifier checks the exact length per alg.
function auditSignature(description: string): TString {
  return Type.String({ pattern: '^(?:[A-Za-z0-9+/]{4}){10}(?:[A-Za-z0-9+/]{3}=|(?:[A-Za-z0-9+/]{4}){1,331}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)$', description: `Base64 of the signature or MAC: ${description}` });
}

const AUDIT_TEXT_MAX_LENGTH = 1024 * 1024; // characters: a whole record line is at most this long
function auditText(description: string): TString {
  return Type.String({ minLength: 1, maxLength: AUDIT_TEXT_MAX_LENGTH, description });
}
/**
 * One line of the audit log. Its TypeScript type is {@link AuditRecord} (in audit/record.ts), whose
 * `details` is narrowed to JSON; a type test checks that it fits this schema.
 */
export const AuditRecordSchema = Type.Object(
  {
    seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: '1 for the first record, then +1 per record, no gaps.' }),
    ts: dateTime(),
    event: auditText('What happened, e.g. token.used, agent.enrolled, deployment.started.'),
    actor: auditText('Who did it: an operator, agent:<id>, system.'),
    agentId: Type.Optional(Type.String({ maxLength: AUDIT_TEXT_MAX_LENGTH })),
    deploymentId: Type.Optional(Type.String({ maxLength: AUDIT_TEXT_MAX_LENGTH })),
    tokenId: Type.Optional(Type.String({ maxLength: AUDIT_TEXT_MAX_LENGTH, description: "A token's id (first 16 hex of its SHA-256), never the token." })),
    outcome: auditText('How it ended, e.g. success, failure, denied, deferred.'),
    details: Type.Record(Type.String(), Type.Unknown(), { description: 'Any JSON object; never a secret.' }),
    prev: Type.String({ pattern: '^[0-9a-f]{64}$', description: "The previous record's hash; 64 zeros before the first." }),
    hash: Type.String({
      pattern: '^[0-9a-f]{64}$',
      description: 'hex SHA-256(RFC 8785 canonical JSON of the record without prev/hash/alg/kid/sig || the 32 bytes of prev).',
    }),
    alg: Type.Optional(
      Type.Union([Type.Literal('ed25519'), Type.Literal('rsa-sha256'), Type.Literal('hmac-sha256')], { description: 'How sig was made; absent means ed25519 (records written before records named it).' }),
    ),
    kid: Type.String({ pattern: '^[\\x21-\\x7E]{1,256}$', description: 'The signing key, named in signers.json.' }),
    sig: auditSignature('Ed25519, RSASSA-PKCS1-v1_5 SHA-256 or HMAC-SHA256 (as alg says) over the 32 bytes of hash, by the key kid.'),
  },
  { $id: 'AuditRecord', description: 'One line of the audit log (JSON Lines; each line the canonical JSON of a record).' },
);

const signerKid = (): TString => Type.String({ pattern: '^[\\x21-\\x7E]{1,256}$' });
/** The schema of signers.json: a non-empty list of distinct kids with their algorithms and public keys (none for an HMAC key). */
export const AuditSignersSchema = Type.Object(
  {
    signers: Type.Array(
      Type.Union([
        Type.Object({ kid: signerKid(), algorithm: Type.Literal('ed25519'), publicKey: Ed25519PublicKeyBase64 }, { additionalProperties: false }),
        Type.Object(
          {
            kid: signerKid(),
            algorithm: Type.Literal('rsa-sha256'),
            publicKey: Type.String({ pattern: '^[A-Za-z0-9+/]+={0,2}$', description: "Base64 of the RSA public key's DER SubjectPublicKeyInfo (2048 bits or more)." }),
          },
          { additionalProperties: false },
        ),
        Type.Object(
          { kid: signerKid(), algorithm: Type.Literal('hmac-sha256') },
          { additionalProperties: false, description: 'An HMAC key: its secret is never published; the verifier is given it apart.' },
        ),
      ]),
      { minItems: 1, maxItems: 1024, description: 'Distinct kids.' },
    ),
  },
  { $id: 'AuditSigners', additionalProperties: false, description: 'signers.json: the keys whose audit records a verifier accepts.' },
);
/** signers.json, the keys whose audit records a verifier accepts; {@link parseAuditSigners} reads it. */
export type AuditSignersDocument = Static<typeof AuditSignersSchema>;

// The manager's audit read API (GET /manager/v1/audit and /manager/v1/audit/verify): the web
// console's audit page and host page read it.

/** Query of `GET /manager/v1/audit`: newest first, paged by seq. */
export const AuditListQuerySchema = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$', description: 'Records per page: at most this many (default 50, at most 500).' })),
    before: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,15}$', description: 'Only records with a seq below this: the `next` of the previous page.' })),
    agent_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Only records about this agent (host).' })),
    actor: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Only records by this actor, e.g. operator:<tokenId>, agent:<id>, system.' })),
    event: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Only records of this event, e.g. token.used; a name ending in "." takes every event it starts, e.g. deployment.' })),
  },
  { $id: 'AuditListQuery', additionalProperties: false, description: 'Query of GET /manager/v1/audit (operator role).' },
);
/** A query of the audit read API; see {@link AuditListQuerySchema}. */
export type AuditListQuery = Static<typeof AuditListQuerySchema>;

/** `GET /manager/v1/audit`: a page of records, newest first. */
export const AuditListResponseSchema = Type.Object(
  {
    records: Type.Array(AuditRecordSchema, { maxItems: 500, description: 'Newest first.' }),
    next: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
      description: 'Pass as `before` for the next (older) page; null when the start of the chain was reached. A page scans at most 10,000 records, so a filtered page may be short and still have a next.',
    }),
  },
  { $id: 'AuditListResponse', description: '200 from GET /manager/v1/audit: audit records, newest first.' },
);
/** A page of audit records; see {@link AuditListResponseSchema}. */
export type AuditListResponse = Static<typeof AuditListResponseSchema>;

const checkedAt = dateTime();
/** `GET /manager/v1/audit/verify`: the verdict on the whole chain, as `drover audit verify --dir` gives it. */
export const AuditVerifyResponseSchema = Type.Union(
  [
    Type.Object(
      {
        ok: Type.Literal(true),
        count: Type.Integer({ minimum: 0, description: 'Records verified.' }),
        lastSeq: Type.Integer({ minimum: 0, description: 'Verified up to this seq (0: an empty chain).' }),
        lastHash: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'The hash of the last verified record: compare it with a copy kept elsewhere to detect a cut-off tail.' }),
        checkedAt,
      },
      { description: 'Every record verified.' },
    ),
    Type.Object(
      {
        ok: Type.Literal(false),
        count: Type.Integer({ minimum: 0, description: 'Records verified before the broken one.' }),
        seq: Type.Integer({ minimum: 0, description: 'The first broken record.' }),
        line: Type.Integer({ minimum: 1, description: 'Its position in the chain, 1-based.' }),
        reason: literalUnion(auditBreakReasons, { description: 'Why it is broken, a stable code (as `drover audit verify` prints it).' }),
        message: Type.String({ description: 'What is wrong, for a person.' }),
        checkedAt,
      },
      { description: 'The first broken record.' },
    ),
  ],
  { $id: 'AuditVerifyResponse', description: '200 from GET /manager/v1/audit/verify (operator role): the chain verified with the keys of signers.json, from its first record to its last.' },
);
/** The verdict on the manager's audit chain; see {@link AuditVerifyResponseSchema}. */
export type AuditVerifyResponse = Static<typeof AuditVerifyResponseSchema>;
