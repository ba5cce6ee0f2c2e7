// An audit key in a PKCS#11 token, of either asymmetric algorithm of the audit log (decision 0046):
// Ed25519 (CKK_EC_EDWARDS, as every other drover key in a token) or RSA (CKK_RSA, 2048 bits or
// more, signed with CKM_SHA256_RSA_PKCS over the 32-byte record hash: RSASSA-PKCS1-v1_5 with
// SHA-256, what `openssl dgst -sha256 -verify` checks). The public key for signers.json is read from
// the token's public object of the same CKA_ID.

import { createPublicKey, randomBytes } from 'node:crypto';
import { ed25519AuditSigner, rsaAuditKey } from '@drover/protocol';
import type { AuditAlgorithm, AuditSigner, RsaAuditKey } from '@drover/protocol';
import { shortId, verifyAuditSignature } from '@drover/protocol/internal';
import { ManagerError } from '../errors.js';
import type { ExternalAuditSigner } from '../kms/audit-key.js';
import { findObjects, nameTemplate, openPkcs11Signer, readUlong } from './ed25519-key.js';
import type { Template } from './ed25519-key.js';
import { pkcs11Failure, TokenSession } from './token.js';
import { describePkcs11Uri, parsePkcs11Uri } from './uri.js';

const CKK_EC_EDWARDS = 0x40;
const RSA_MIN_BITS = 2048;

/** Options of {@link openPkcs11AuditSigner}. */
export interface Pkcs11AuditKeyOptions {
  /** Where DROVER_PKCS11_MODULE and DROVER_PKCS11_PIN are read (default: `process.env`). */
  env?: Record<string, string | undefined>;
  /** The algorithm the configuration expects (AUDIT_SIGNING_ALG); a key of another type is refused. */
  algorithm?: AuditAlgorithm | undefined;
  /** The kid records name (AUDIT_SIGNER_KID); by default the key id (Ed25519) or the first 16 hex of the SHA-256 of the public key's DER (RSA). */
  kid?: string | undefined;
}

// The RSA public key of the public object with the private key's CKA_ID, as DER SubjectPublicKeyInfo.
function readRsaPublicKey(token: TokenSession, privateKey: Buffer, name: string): RsaAuditKey {
  const { binding, pkcs11, session } = token;
  let id: Buffer | undefined;
  try {
    const value = pkcs11.C_GetAttributeValue(session, privateKey, [{ type: binding.CKA_ID }])[0]?.value;
    id = Buffer.isBuffer(value) ? value : undefined;
  } catch (error) {
    throw pkcs11Failure(error, `reading ${name}`);
  }
  const template: Template = [
    { type: binding.CKA_CLASS, value: binding.CKO_PUBLIC_KEY },
    { type: binding.CKA_KEY_TYPE, value: binding.CKK_RSA },
  ];
  if (id !== undefined && id.length > 0) template.push({ type: binding.CKA_ID, value: id });
  for (const handle of findObjects(token, template)) {
    try {
      const [modulus, exponent] = pkcs11.C_GetAttributeValue(session, handle, [{ type: binding.CKA_MODULUS }, { type: binding.CKA_PUBLIC_EXPONENT }]);
      if (!Buffer.isBuffer(modulus?.value) || !Buffer.isBuffer(exponent?.value)) continue;
      const key = createPublicKey({ key: { kty: 'RSA', n: modulus.value.toString('base64url'), e: exponent.value.toString('base64url') }, format: 'jwk' });
      return rsaAuditKey(new Uint8Array(key.export({ format: 'der', type: 'spki' })));
    } catch (error) {
      throw new ManagerError('PKCS11_KEY_UNSUPPORTED', `${name}'s public key is not an RSA key of ${RSA_MIN_BITS} bits or more, which an rsa-sha256 audit key must be.`, { cause: error });
    }
  }
  throw new ManagerError('PKCS11_OBJECT_NOT_FOUND', `The token holds ${name}'s private key but not its RSA public key object (same CKA_ID). Import the public key into the token, or generate the key pair there.`);
}

/**
 * Opens the audit key a `pkcs11:` URI names, Ed25519 or RSA. Each RSA signature is checked against
 * the public key before it is returned.
 *
 * @throws ManagerError `PKCS11_KEY_UNSUPPORTED` for a key of another type, or of another algorithm
 *   than `options.algorithm`; the codes of `openPkcs11Signer` otherwise.
 */
export function openPkcs11AuditSigner(text: string, options: Pkcs11AuditKeyOptions = {}): ExternalAuditSigner {
  const env = options.env ?? process.env;
  const uri = parsePkcs11Uri(text);
  const name = describePkcs11Uri(uri);
  if (uri.type === 'public') throw new ManagerError('PKCS11_URI_INVALID', `${name} names a public key (type=public), which cannot sign. Use type=private or leave type= out.`);
  const token = TokenSession.open(uri, env);
  let handedOver = false;
  try {
    const { binding, pkcs11, session } = token;
    const found = findObjects(token, [{ type: binding.CKA_CLASS, value: binding.CKO_PRIVATE_KEY }, ...nameTemplate(token, uri)]);
    const [privateKey] = found;
    if (privateKey === undefined) throw new ManagerError('PKCS11_OBJECT_NOT_FOUND', `The token holds no private key ${name}. Fix object= / id= in the URI (list the token's keys with \`pkcs11-tool --module MODULE --login -O\`).`);
    if (found.length > 1) throw new ManagerError('PKCS11_URI_INVALID', `${found.length} private keys on the token match ${name}. Add id= to the URI to name one.`);
    let keyType: number;
    try {
      const value = pkcs11.C_GetAttributeValue(session, privateKey, [{ type: binding.CKA_KEY_TYPE }])[0]?.value;
      keyType = Buffer.isBuffer(value) ? readUlong(value) : -1;
    } catch (error) {
      throw pkcs11Failure(error, `reading ${name}`);
    }
    const algorithm: AuditAlgorithm | undefined = keyType === CKK_EC_EDWARDS ? 'ed25519' : keyType === binding.CKK_RSA ? 'rsa-sha256' : undefined;
    if (algorithm === undefined) throw new ManagerError('PKCS11_KEY_UNSUPPORTED', `${name} is neither an Ed25519 (CKK_EC_EDWARDS) nor an RSA (CKK_RSA) key; an audit key in a token is one of those.`);
    if (options.algorithm !== undefined && options.algorithm !== algorithm) {
      throw new ManagerError('PKCS11_KEY_UNSUPPORTED', `${name} is an ${algorithm} key, but the audit signer is configured for ${options.algorithm} (AUDIT_SIGNING_ALG). Use a key of the configured kind, or change the setting.`);
    }
    if (algorithm === 'ed25519') {
      token.close();
      handedOver = true;
      const key = openPkcs11Signer(text, { env });
      const signer = ed25519AuditSigner(key);
      return {
        signer: options.kid === undefined ? signer : { ...signer, kid: options.kid },
        publicKey: { algorithm, publicKey: key.publicKey },
        uri: key.uri,
        close: () => {
          key.close();
        },
      };
    }
    const publicKey = readRsaPublicKey(token, privateKey, name);
    const length = Math.ceil(publicKey.bits / 8);
    const signer: AuditSigner = {
      kid: options.kid ?? shortId(publicKey.spki),
      algorithm,
      sign: (hash) => {
        let signature: Buffer;
        try {
          pkcs11.C_SignInit(session, { mechanism: binding.CKM_SHA256_RSA_PKCS }, privateKey);
          signature = Buffer.from(pkcs11.C_Sign(session, Buffer.from(hash), Buffer.alloc(length)));
        } catch (error) {
          throw pkcs11Failure(error, `signing an audit record with ${name}`);
        }
        // A device that answers with anything but a valid signature must not get it into the log.
        if (!verifyAuditSignature(publicKey, hash, signature)) {
          throw new ManagerError('PKCS11_FAILED', `The token returned a signature that does not verify under ${name}'s public key. Check that the private and public objects of the key belong together.`);
        }
        return new Uint8Array(signature);
      },
    };
    return {
      signer,
      publicKey,
      uri: name,
      close: () => {
        token.close();
      },
    };
  } catch (error) {
    if (!handedOver) token.close();
    throw error;
  }
}

/**
 * Generates an RSA key pair (2048 bits by default) inside the token a `pkcs11:` URI names, labelled
 * with its `object=`: the private key sensitive, not extractable, for signing only. Refuses when the
 * token already holds an object of that label or id.
 *
 * @throws ManagerError `PKCS11_OBJECT_EXISTS`, and the codes of `openPkcs11Signer`
 */
export function generatePkcs11RsaKey(text: string, options: { env?: Record<string, string | undefined>; bits?: number } = {}): void {
  const uri = parsePkcs11Uri(text);
  const name = describePkcs11Uri(uri);
  const bits = options.bits ?? RSA_MIN_BITS;
  if (uri.object === undefined) throw new ManagerError('PKCS11_URI_INVALID', `${name} has no object= label; a new key needs one.`);
  if (bits < RSA_MIN_BITS) throw new ManagerError('PKCS11_KEY_UNSUPPORTED', `An RSA audit key has ${RSA_MIN_BITS} bits or more, not ${bits}.`);
  const token = TokenSession.open(uri, options.env ?? process.env);
  try {
    const { binding, pkcs11, session } = token;
    if (findObjects(token, [{ type: binding.CKA_LABEL, value: uri.object }]).length > 0) {
      throw new ManagerError('PKCS11_OBJECT_EXISTS', `The token already holds an object ${name}. Choose another object= label, or delete the old key with the HSM's tools first.`);
    }
    const common: Template = [
      { type: binding.CKA_TOKEN, value: true },
      { type: binding.CKA_LABEL, value: uri.object },
      { type: binding.CKA_ID, value: Buffer.from(uri.id ?? randomBytes(16)) },
    ];
    try {
      pkcs11.C_GenerateKeyPair(
        session,
        { mechanism: binding.CKM_RSA_PKCS_KEY_PAIR_GEN },
        [...common, { type: binding.CKA_VERIFY, value: true }, { type: binding.CKA_MODULUS_BITS, value: bits }, { type: binding.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }, { type: binding.CKA_PRIVATE, value: false }],
        [...common, { type: binding.CKA_SIGN, value: true }, { type: binding.CKA_PRIVATE, value: true }, { type: binding.CKA_SENSITIVE, value: true }, { type: binding.CKA_EXTRACTABLE, value: false }],
      );
    } catch (error) {
      throw pkcs11Failure(error, `generating ${name}`);
    }
  } finally {
    token.close();
  }
}
