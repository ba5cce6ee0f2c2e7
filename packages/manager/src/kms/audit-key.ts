// An audit key in AWS KMS, of any of the audit log's algorithms (decision 0046): Ed25519
// (ECC_NIST_EDWARDS25519, as every other drover key), RSA (RSA_2048 and up, Sign with
// RSASSA_PKCS1_V1_5_SHA_256 over the RAW 32-byte record hash) or HMAC (HMAC_256, GenerateMac with
// HMAC_SHA_256). DescribeKey says which; the public key for signers.json comes from GetPublicKey
// (none for an HMAC key, whose secret never leaves KMS).

import { ed25519AuditSigner, rsaAuditKey } from '@drover/protocol';
import { shortId, verifyAuditSignature } from '@drover/protocol/internal';
import type { AuditAlgorithm, AuditSigner, AuditVerifyKey, HmacAuditKey } from '@drover/protocol';
import { ManagerError } from '../errors.js';
import { KmsChannel, kmsFailure, openKmsSigner } from './ed25519-key.js';
import type { KmsKeyNeeds } from './ed25519-key.js';
import { parseKmsKeyName } from './key-name.js';

const RSA_SPECS = ['RSA_2048', 'RSA_3072', 'RSA_4096'];
const RSA_SIGNING_ALGORITHM = 'RSASSA_PKCS1_V1_5_SHA_256';
const HMAC_SPEC = 'HMAC_256';
const MAC_ALGORITHM = 'HMAC_SHA_256';
const MAC_LENGTH = 32; // bytes

/** An audit signer whose key is held outside the process, with the key signers.json lists. */
export interface ExternalAuditSigner {
  signer: AuditSigner;
  /** What signers.json lists for it (an HMAC key without its secret). */
  publicKey: AuditVerifyKey;
  /** The key's name, for messages and logs. */
  readonly uri: string;
  close(): void;
}

/** Options of {@link openKmsAuditSigner}. */
export interface KmsAuditKeyOptions {
  env?: Record<string, string | undefined>;
  /** The algorithm the configuration expects (AUDIT_SIGNING_ALG); a key of another kind is refused. */
  algorithm?: AuditAlgorithm | undefined;
  /** The kid records name (AUDIT_SIGNER_KID); by default the first 16 hex of the SHA-256 of the public key (of the ARN for HMAC). */
  kid?: string | undefined;
}

function algorithmOf(keySpec: string): AuditAlgorithm | undefined {
  if (keySpec === 'ECC_NIST_EDWARDS25519') return 'ed25519';
  if (RSA_SPECS.includes(keySpec)) return 'rsa-sha256';
  if (keySpec === HMAC_SPEC) return 'hmac-sha256';
  return undefined;
}

// What each use of an audit key needs, for the advice of a refusal.
const AUDIT_KEY_KIND = 'an ECC_NIST_EDWARDS25519 or RSA_2048+ key for SIGN_VERIFY, or an HMAC_256 key for GENERATE_VERIFY_MAC';
const needs = {
  describe: { permissions: 'kms:DescribeKey', kind: AUDIT_KEY_KIND },
  rsa: { permissions: 'kms:DescribeKey, kms:GetPublicKey and kms:Sign', kind: `an RSA_2048+ key for SIGN_VERIFY with ${RSA_SIGNING_ALGORITHM}` },
  mac: { permissions: 'kms:DescribeKey and kms:GenerateMac', kind: `an ${HMAC_SPEC} key for GENERATE_VERIFY_MAC with ${MAC_ALGORITHM}` },
  verifyMac: { permissions: 'kms:DescribeKey and kms:VerifyMac', kind: `an ${HMAC_SPEC} key for GENERATE_VERIFY_MAC with ${MAC_ALGORITHM}` },
} satisfies Record<string, KmsKeyNeeds>;

/** The kid of a KMS HMAC audit key's records unless AUDIT_SIGNER_KID names another: from its ARN, which KMS reports to signer and verifier alike. */
function kmsHmacKid(keyArn: string): string {
  return `kms-hmac-${shortId(keyArn)}`;
}

/** DescribeKey: which audit algorithm the key signs, refused unless its spec and usage fit one. */
function describeAuditKey(channel: KmsChannel, keyId: string, spec: string): { algorithm: AuditAlgorithm; keyArn: string; keySpec: string } {
  const described = channel.call({ op: 'describe', keyId }, `describing ${spec}`);
  if (!described.ok) throw kmsFailure(described, `describing ${spec}`, spec, needs.describe);
  if (described.op !== 'describe') throw new ManagerError('KMS_FAILED', `AWS KMS answered DescribeKey of ${spec} with something else.`);
  const algorithm = algorithmOf(described.keySpec);
  const fits =
    (algorithm === 'ed25519' && described.keyUsage === 'SIGN_VERIFY') ||
    (algorithm === 'rsa-sha256' && described.keyUsage === 'SIGN_VERIFY' && described.signingAlgorithms.includes(RSA_SIGNING_ALGORITHM)) ||
    (algorithm === 'hmac-sha256' && described.keyUsage === 'GENERATE_VERIFY_MAC' && described.macAlgorithms.includes(MAC_ALGORITHM));
  if (algorithm === undefined || !fits) {
    throw new ManagerError(
      'KMS_KEY_SPEC_UNSUPPORTED',
      `${spec} is a ${described.keySpec || 'unknown'} key for ${described.keyUsage || 'unknown use'}; an audit key in KMS is ECC_NIST_EDWARDS25519 or RSA_2048+ for SIGN_VERIFY, or HMAC_256 for GENERATE_VERIFY_MAC (aws kms create-key --key-spec RSA_2048 --key-usage SIGN_VERIFY).`,
    );
  }
  return { algorithm, keyArn: described.keyArn, keySpec: described.keySpec };
}

/** An hmac-sha256 audit key whose secret stays where it is (AWS KMS, a PKCS#11 token), for a verifier: each MAC checked by its holder. */
export interface ExternalAuditMacKey {
  /** The kid its records name: `options.kid`, else the one a manager with this key writes by default. */
  readonly kid: string;
  /** The key for `withAuditHmacKeys`: its `verifyMac` blocks for one call to the holder per record (a KMS round trip, a token operation). */
  readonly key: HmacAuditKey;
  /** The number of MACs its holder has checked through it. */
  readonly checked: number;
  readonly uri: string;
  close(): void;
}

/** An {@link ExternalAuditMacKey} over its holder's check, counting the MACs checked. */
export function externalAuditMacKey(kid: string, uri: string, verify: (hash: Uint8Array, mac: Uint8Array) => boolean, close: () => void): ExternalAuditMacKey {
  let checked = 0;
  const verifyMac = (hash: Uint8Array, mac: Uint8Array): boolean => {
    const valid = verify(hash, mac);
    checked += 1;
    return valid;
  };
  return {
    kid,
    key: { algorithm: 'hmac-sha256', verifyMac },
    get checked() {
      return checked;
    },
    uri,
    close,
  };
}

/**
 * Opens the HMAC_256 key an `awskms:` name gives for verifying audit records (decision 0046): KMS
 * never hands out the secret, so each record's MAC goes to VerifyMac (HMAC_SHA_256) and KMS says
 * whether it is right. The principal needs kms:DescribeKey and kms:VerifyMac on the key; it cannot
 * forge with VerifyMac alone.
 *
 * @throws ManagerError `KMS_KEY_SPEC_UNSUPPORTED` for a key that is not an HMAC_256 key; the codes
 *   of `openKmsSigner` otherwise. Its `verifyMac` throws `KMS_UNREACHABLE` (and the others) when KMS
 *   cannot give a verdict: never a false "invalid".
 */
export function openKmsAuditMacKey(spec: string, options: { env?: Record<string, string | undefined>; kid?: string | undefined } = {}): ExternalAuditMacKey {
  const env = options.env ?? process.env;
  const name = parseKmsKeyName(spec, env);
  const channel = new KmsChannel(name, env);
  try {
    const { algorithm, keyArn, keySpec } = describeAuditKey(channel, name.keyId, spec);
    if (algorithm !== 'hmac-sha256') {
      throw new ManagerError('KMS_KEY_SPEC_UNSUPPORTED', `${spec} is a ${keySpec} key, which signs ${algorithm}; --hmac-kms takes an HMAC_256 key. Records of an ${algorithm} key verify from signers.json alone.`);
    }
    const verifyMac = (hash: Uint8Array, mac: Uint8Array): boolean => {
      const what = `checking an audit record's MAC with ${spec} (kms:VerifyMac)`;
      const reply = channel.call({ op: 'verifyMac', keyId: name.keyId, message: hash, mac }, what);
      if (!reply.ok) throw kmsFailure(reply, what, spec, needs.verifyMac);
      if (reply.op !== 'verifyMac') throw new ManagerError('KMS_FAILED', `AWS KMS answered VerifyMac of ${spec} with something else.`);
      return reply.valid;
    };
    return externalAuditMacKey(options.kid ?? kmsHmacKid(keyArn), spec, verifyMac, () => {
      channel.close();
    });
  } catch (error) {
    channel.close();
    throw error;
  }
}

/**
 * Opens the audit key an `awskms:` name gives, whichever of ed25519, rsa-sha256 and hmac-sha256 it
 * is. Each signature is checked against the public key before it is returned (not possible for an
 * HMAC: KMS never hands out the secret).
 *
 * @throws ManagerError `KMS_KEY_SPEC_UNSUPPORTED` for a key of another spec or usage, or of another
 *   algorithm than `options.algorithm`; the codes of `openKmsSigner` otherwise.
 */
export function openKmsAuditSigner(spec: string, options: KmsAuditKeyOptions = {}): ExternalAuditSigner {
  const env = options.env ?? process.env;
  const name = parseKmsKeyName(spec, env);
  const channel = new KmsChannel(name, env);
  let handedOver = false;
  try {
    const { algorithm, keyArn, keySpec } = describeAuditKey(channel, name.keyId, spec);
    if (options.algorithm !== undefined && options.algorithm !== algorithm) {
      throw new ManagerError('KMS_KEY_SPEC_UNSUPPORTED', `${spec} is a ${keySpec} key, which signs ${algorithm}, but the audit signer is configured for ${options.algorithm} (AUDIT_SIGNING_ALG). Use a key of the configured kind, or change the setting.`);
    }
    if (algorithm === 'ed25519') {
      channel.close();
      handedOver = true;
      const key = openKmsSigner(spec, { env });
      const signer = ed25519AuditSigner(key);
      return { signer: options.kid === undefined ? signer : { ...signer, kid: options.kid }, publicKey: { algorithm, publicKey: key.publicKey }, uri: spec, close: () => { key.close(); } };
    }
    if (algorithm === 'hmac-sha256') {
      const signer: AuditSigner = {
        kid: options.kid ?? kmsHmacKid(keyArn),
        algorithm,
        sign: (hash) => {
          const reply = channel.call({ op: 'mac', keyId: name.keyId, message: hash }, `MACing an audit record with ${spec}`);
          if (!reply.ok) throw kmsFailure(reply, `MACing an audit record with ${spec}`, spec, needs.mac);
          const mac = reply.op === 'mac' ? new Uint8Array(reply.mac) : new Uint8Array(0);
          if (mac.length !== MAC_LENGTH) throw new ManagerError('KMS_FAILED', `AWS KMS returned ${mac.length} bytes for an HMAC-SHA256 of ${spec}. Nothing was written.`);
          return mac;
        },
      };
      return { signer, publicKey: { algorithm }, uri: spec, close: () => { channel.close(); } };
    }
    const reply = channel.call({ op: 'publicKey', keyId: name.keyId }, `reading the public key of ${spec}`);
    if (!reply.ok) throw kmsFailure(reply, `reading the public key of ${spec}`, spec, needs.rsa);
    if (reply.op !== 'publicKey') throw new ManagerError('KMS_FAILED', `AWS KMS answered GetPublicKey of ${spec} with something else.`);
    let publicKey;
    try {
      publicKey = rsaAuditKey(new Uint8Array(reply.publicKey));
    } catch (error) {
      throw new ManagerError('KMS_FAILED', `AWS KMS returned a public key for ${spec} that is not an RSA SubjectPublicKeyInfo of 2048 bits or more.`, { cause: error });
    }
    const signer: AuditSigner = {
      kid: options.kid ?? shortId(publicKey.spki),
      algorithm,
      sign: (hash) => {
        const signed = channel.call({ op: 'sign', keyId: name.keyId, message: hash, algorithm: RSA_SIGNING_ALGORITHM }, `signing an audit record with ${spec}`);
        if (!signed.ok) throw kmsFailure(signed, `signing an audit record with ${spec}`, spec, needs.rsa);
        const signature = signed.op === 'sign' ? new Uint8Array(signed.signature) : new Uint8Array(0);
        // A service that answers with anything but a valid signature must not get it into the log.
        if (!verifyAuditSignature(publicKey, hash, signature)) {
          throw new ManagerError('KMS_FAILED', `AWS KMS returned a signature that does not verify under ${spec}'s public key. Nothing was written; report it.`);
        }
        return signature;
      },
    };
    return { signer, publicKey, uri: spec, close: () => { channel.close(); } };
  } catch (error) {
    if (!handedOver) channel.close();
    throw error;
  }
}
