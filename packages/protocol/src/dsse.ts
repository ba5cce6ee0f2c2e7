import { Ed25519PublicKey } from './ed25519.js';
import type { Ed25519Signer } from './ed25519.js';
import { fromBase64Either, toBase64, utf8 } from './bytes.js';
import { ReleaseError } from './errors.js';
import { limits } from './config.js';
import { DsseEnvelopeSchema, TrustPolicySchema } from './schemas/releases.js';
import type { DsseEnvelope, TrustPolicyDocument } from './schemas/releases.js';
import { describeProblems, schemaProblems } from './validate.js';

/** A parsed trust policy: the keys a host trusts, by key id, and how many must sign. */
export interface TrustPolicy {
  /** How many distinct trusted keys must sign. */
  readonly threshold: number;
  /** The trusted keys by key id. */
  readonly keys: ReadonlyMap<string, Ed25519PublicKey>;
}

/**
 * DSSE's pre-authentication encoding: `"DSSEv1" SP len(type) SP type SP len(body) SP body`,
 * lengths in bytes as ASCII decimal. Signing PAE rather than the payload binds the payload type,
 * so a signature over one kind of document can never be replayed as another.
 */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = utf8(payloadType);
  const header = utf8(`DSSEv1 ${type.length} ${payloadType} ${payload.length} `);
  const out = new Uint8Array(header.length + payload.length);
  out.set(header, 0);
  out.set(payload, header.length);
  return out;
}

/**
 * Signs `payload` with every key given; the envelope carries one signature per distinct key.
 *
 * @param payloadType - bound into each signature through {@link pae}
 * @param payload - the bytes to sign, carried base64 in the envelope
 * @param keys - at least one; duplicates sign once
 */
export function signEnvelope(payloadType: string, payload: Uint8Array, keys: readonly Ed25519Signer[]): DsseEnvelope {
  if (keys.length === 0) throw new ReleaseError('RELEASE_MALFORMED', 'An envelope needs at least one signing key.');
  const message = pae(payloadType, payload);
  const seen = new Set<string>();
  const signatures = keys
    .filter((key) => !seen.has(key.keyid) && seen.add(key.keyid))
    .map((key) => ({ keyid: key.keyid, sig: toBase64(key.sign(message)) }));
  return { payloadType, payload: toBase64(payload), signatures };
}

/**
 * Checks the shape of an envelope (an object, or its JSON text or bytes) and returns it typed.
 * Throws ReleaseError `RELEASE_MALFORMED`; verifies no signature (see {@link verifyEnvelope}).
 */
export function parseEnvelope(input: unknown): DsseEnvelope {
  let value = input;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
    // endless data: an envelope is small; refuse to parse megabytes of JSON.
    if (text.length > limits.envelopeMaxBytes) {
      throw new ReleaseError('RELEASE_MALFORMED', `The release envelope is larger than ${limits.envelopeMaxBytes} bytes; it is not a drover release.`);
    }
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new ReleaseError('RELEASE_MALFORMED', 'The release envelope is not valid JSON. Pass the FILE.release.json written by `drover release sign`.', { cause: error });
    }
  }
  const problems = schemaProblems(DsseEnvelopeSchema, value);
  if (problems.length > 0) {
    throw new ReleaseError('RELEASE_MALFORMED', `The release envelope is not a DSSE envelope (${describeProblems(problems)}).`);
  }
  return value as DsseEnvelope;
}

/**
 * Builds a trust policy from its JSON document (`trust.json`), checking that every key id matches
 * its key and that the threshold can be met. Throws ReleaseError `TRUST_POLICY_INVALID`.
 */
export function parseTrustPolicy(input: unknown): TrustPolicy {
  const problems = schemaProblems(TrustPolicySchema, input);
  if (problems.length > 0) {
    throw new ReleaseError('TRUST_POLICY_INVALID', `The trust policy is malformed (${describeProblems(problems)}). See docs for the trust.json format.`);
  }
  const doc = input as TrustPolicyDocument;
  const keys = new Map<string, Ed25519PublicKey>();
  for (const entry of doc.keys) {
    let key: Ed25519PublicKey;
    try {
      key = Ed25519PublicKey.from(entry.publicKey);
    } catch (error) {
      throw new ReleaseError('TRUST_POLICY_INVALID', `The trust policy's key ${entry.keyid} is not an Ed25519 public key.`, { cause: error });
    }
    // A key id that does not match its key would let one key be counted under another's name.
    if (key.keyid !== entry.keyid) {
      throw new ReleaseError('TRUST_POLICY_INVALID', `The trust policy lists key id ${entry.keyid} for a key whose id is ${key.keyid}. Fix the key id.`);
    }
    keys.set(key.keyid, key);
  }
  if (doc.threshold > keys.size) {
    throw new ReleaseError('TRUST_POLICY_INVALID', `The trust policy's threshold (${doc.threshold}) is above its number of distinct keys (${keys.size}); no release could ever verify.`);
  }
  return { threshold: doc.threshold, keys };
}

/**
 * A trust policy document (`trust.json`) for the given public keys.
 *
 * @param keys - the keys to trust
 * @param threshold - how many distinct keys must sign a release (default 1)
 */
export function trustPolicyDocument(keys: readonly Ed25519PublicKey[], threshold = 1): TrustPolicyDocument {
  return { schema: 'drover.trust/v1', threshold, keys: keys.map((key) => ({ keyid: key.keyid, publicKey: key.toBase64() })) };
}

/** What {@link verifyEnvelope} vouches for: the payload bytes it verified, and who signed them. */
export interface VerifiedEnvelope {
  /** The exact bytes the signatures cover: parse these, never the envelope's `payload` again. */
  payload: Uint8Array;
  /** The distinct trusted keys whose signatures verified. */
  keyids: string[];
}

/**
 * Verifies an envelope against a trust policy: at least `threshold` distinct trusted keys must
 * have signed PAE(payloadType, payload).
 *
 * As DSSE allows, `payload` and `sig` may use either base64 alphabet (standard or URL-safe, decoded
 * strictly), and a signature's `keyid` is only a hint: a signature whose key id names a trusted key is
 * checked with that key alone; one without a key id, or with one no trusted key has, is tried against
 * each trusted key not yet counted (so at most the policy's key count per signature, and at most
 * `limits.releaseMaxSignatures` signatures). A key counts once however many signatures it made.
 *
 * @param payloadType - the type the caller expects; an envelope of another type is refused
 * @returns the exact payload bytes that were verified, and the key ids that signed them
 * @throws ReleaseError `RELEASE_MALFORMED`, `RELEASE_SIGNATURE_INVALID`, `RELEASE_UNTRUSTED_SIGNER` or `RELEASE_THRESHOLD_NOT_MET`
 */
export function verifyEnvelope(envelope: DsseEnvelope, policy: TrustPolicy, payloadType: string): VerifiedEnvelope {
  // mix-and-match: a signature over another document type never counts.
  if (envelope.payloadType !== payloadType) {
    throw new ReleaseError('RELEASE_MALFORMED', `The envelope's payload type is "${envelope.payloadType.slice(0, 80)}", expected "${payloadType}".`);
  }
  const payload = fromBase64Either(envelope.payload);
  if (payload === undefined) {
    throw new ReleaseError('RELEASE_MALFORMED', 'The envelope payload is not strict base64 (one alphabet, standard or URL-safe; padding absent or exact).');
  }
  // endless work: keyless signatures are tried against every trusted key, so their number is capped first.
  if (envelope.signatures.length > limits.releaseMaxSignatures) {
    throw new ReleaseError('RELEASE_MALFORMED', `The envelope carries more than ${limits.releaseMaxSignatures} signatures.`);
  }
  const message = pae(envelope.payloadType, payload);
  const verified = new Set<string>();
  let trustedButInvalid = 0;
  for (const { keyid, sig } of envelope.signatures) {
    const named = keyid === undefined ? undefined : policy.keys.get(keyid);
    if (named !== undefined && keyid !== undefined) {
      if (verified.has(keyid)) continue;
      const signature = fromBase64Either(sig);
      // A signature is checked with the key the policy names for that id, never a key the envelope brings.
      if (signature !== undefined && named.verify(message, signature)) verified.add(keyid);
      else trustedButInvalid += 1;
      continue;
    }
    // No key id, or one no trusted key has: DSSE's key id is only a hint, so try each trusted key once.
    const signature = fromBase64Either(sig);
    if (signature === undefined) continue;
    for (const [id, key] of policy.keys) {
      if (!verified.has(id) && key.verify(message, signature)) {
        verified.add(id);
        break;
      }
    }
  }
  if (verified.size >= policy.threshold) return { payload, keyids: [...verified] };
  if (trustedButInvalid > 0) {
    throw new ReleaseError('RELEASE_SIGNATURE_INVALID', 'A signature by a trusted key does not match the release: the release was modified after signing, or it is corrupt. Do not install it.');
  }
  if (verified.size === 0) {
    const ids = envelope.signatures.map((s) => (s.keyid === undefined || s.keyid === '' ? '(no key id)' : s.keyid.slice(0, 16))).join(', ');
    // Without a key id, a stranger's signature and a broken one look the same: say both.
    const why = envelope.signatures.some((s) => s.keyid === undefined || !policy.keys.has(s.keyid)) ? ' (or the release was modified after signing)' : '';
    throw new ReleaseError('RELEASE_UNTRUSTED_SIGNER', `No signature is by a trusted key${why} (signed by: ${ids}). Add the signer's public key to the trust policy if you trust it.`);
  }
  throw new ReleaseError('RELEASE_THRESHOLD_NOT_MET', `Only ${verified.size} of the ${policy.threshold} trusted signatures the policy requires are present. Sign the release with more trusted keys.`);
}
