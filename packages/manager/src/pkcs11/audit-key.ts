// An audit key in a PKCS#11 token, of any algorithm of the audit log (decision 0046): Ed25519
// (CKK_EC_EDWARDS, as every other drover key in a token), RSA (CKK_RSA, 2048 bits or more, signed
// with CKM_SHA256_RSA_PKCS over the 32-byte record hash: RSASSA-PKCS1-v1_5 with SHA-256, what
// `openssl dgst -sha256 -verify` checks), or HMAC (a secret key, CKK_GENERIC_SECRET or
// CKK_SHA256_HMAC, MACed with CKM_SHA256_HMAC). The public key for signers.json is read from the
// token's public object of the same CKA_ID; an HMAC key has none, and its records are checked by the
// token itself (C_Verify), which never hands the secret out.

import { createPublicKey, randomBytes } from 'node:crypto';
import { ed25519AuditSigner, rsaAuditKey } from '@drover/protocol';
import type { AuditAlgorithm, AuditSigner, RsaAuditKey } from '@drover/protocol';
import { shortId, verifyAuditSignature } from '@drover/protocol/internal';
import { ManagerError } from '../errors.js';
import { externalAuditMacKey } from '../kms/audit-key.js';
import type { ExternalAuditMacKey, ExternalAuditSigner } from '../kms/audit-key.js';
import { findObjects, nameTemplate, openPkcs11Signer, readUlong } from './ed25519-key.js';
import type { Template } from './ed25519-key.js';
import { ckrName, pkcs11Failure, TokenSession } from './token.js';
import { describePkcs11Uri, parsePkcs11Uri } from './uri.js';

const CKK_EC_EDWARDS = 0x40;
const RSA_MIN_BITS = 2048;
const HMAC_LENGTH = 32; // bytes of an HMAC-SHA256 tag, of the secret keygen makes, and the least a token HMAC key may have (as a file's)

/** Options of {@link openPkcs11AuditSigner}. */
export interface Pkcs11AuditKeyOptions {
  /** Where DROVER_PKCS11_MODULE and DROVER_PKCS11_PIN are read (default: `process.env`). */
  env?: Record<string, string | undefined>;
  /** The algorithm the configuration expects (AUDIT_SIGNING_ALG); a key of another type is refused. */
  algorithm?: AuditAlgorithm | undefined;
  /** The kid records name (AUDIT_SIGNER_KID); by default the key id (Ed25519), the first 16 hex of the SHA-256 of the public key's DER (RSA), or `pkcs11-hmac-` and those of its CKA_ID (HMAC). */
  kid?: string | undefined;
}

// The RSA public key of the public object with the private key's CKA_ID, as DER SubjectPublicKeyInfo.
function readRsaPublicKey(token: TokenSession, privateKey: Buffer, name: string): RsaAuditKey {
  const { binding, pkcs11, session } = token;
  const id = attributeOf(token, privateKey, binding.CKA_ID, name);
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

// One attribute of an object (`name` the key's, for the error), undefined when the module gives none.
function attributeOf(token: TokenSession, handle: Buffer, type: number, name: string): Buffer | undefined {
  try {
    const value = token.pkcs11.C_GetAttributeValue(token.session, handle, [{ type }])[0]?.value;
    return Buffer.isBuffer(value) ? value : undefined;
  } catch (error) {
    throw pkcs11Failure(error, `reading ${name}`);
  }
}

// A CK_ULONG attribute of an object (CKA_KEY_TYPE, CKA_VALUE_LEN), -1 when the module gives none.
function ulongOf(token: TokenSession, handle: Buffer, type: number, name: string): number {
  const value = attributeOf(token, handle, type, name);
  return value === undefined ? -1 : readUlong(value);
}

// A session for a new key labelled with the URI's object=: refused when the token holds an object of that label.
function openForNewKey(text: string, env: Record<string, string | undefined> | undefined): { uri: ReturnType<typeof parsePkcs11Uri>; name: string; label: string; token: TokenSession } {
  const uri = parsePkcs11Uri(text);
  const name = describePkcs11Uri(uri);
  const label = uri.object;
  if (label === undefined) throw new ManagerError('PKCS11_URI_INVALID', `${name} has no object= label; a new key needs one.`);
  const token = TokenSession.open(uri, env ?? process.env);
  try {
    // Never a second key under one label or id: a key's default kid comes from its CKA_ID.
    const byId = uri.id === undefined ? [] : findObjects(token, [{ type: token.binding.CKA_ID, value: Buffer.from(uri.id) }]);
    if (byId.length > 0 || findObjects(token, [{ type: token.binding.CKA_LABEL, value: label }]).length > 0) {
      throw new ManagerError('PKCS11_OBJECT_EXISTS', `The token already holds an object ${name}. Choose another object= label (or id=), or delete the old key with the HSM's tools first.`);
    }
  } catch (error) {
    token.close();
    throw error;
  }
  return { uri, name, label, token };
}

// The one secret key (CKO_SECRET_KEY) the URI names, of a type CKM_SHA256_HMAC takes; undefined when there is none.
function findHmacKey(token: TokenSession, uri: ReturnType<typeof parsePkcs11Uri>, name: string): Buffer | undefined {
  const { binding } = token;
  const found = findObjects(token, [{ type: binding.CKA_CLASS, value: binding.CKO_SECRET_KEY }, ...nameTemplate(token, uri)]);
  const [key] = found;
  if (key === undefined) return undefined;
  if (found.length > 1) throw new ManagerError('PKCS11_URI_INVALID', `${found.length} secret keys on the token match ${name}. Add id= to the URI to name one.`);
  const keyType = ulongOf(token, key, binding.CKA_KEY_TYPE, name);
  if (keyType !== binding.CKK_GENERIC_SECRET && keyType !== binding.CKK_SHA256_HMAC) {
    throw new ManagerError('PKCS11_KEY_UNSUPPORTED', `${name} is a secret key, but not one CKM_SHA256_HMAC takes (CKK_GENERIC_SECRET or CKK_SHA256_HMAC); an hmac-sha256 audit key in a token is one of those.`);
  }
  // A shorter key is weaker than the tag it makes (RFC 2104); a file's HMAC key must be as long.
  const length = ulongOf(token, key, binding.CKA_VALUE_LEN, name);
  if (length < HMAC_LENGTH) {
    throw new ManagerError('PKCS11_KEY_UNSUPPORTED', `${name} is an HMAC key of ${length < 0 ? 'unknown length' : `${length} bytes`}; an hmac-sha256 audit key has ${HMAC_LENGTH} bytes or more. Make one with \`drover keygen --pkcs11 URI --algorithm hmac-sha256\`.`);
  }
  return key;
}

// The kid of an HMAC key's records unless AUDIT_SIGNER_KID names another: from its CKA_ID (its
// label without one), which the token shows signer and verifier alike; never from the secret.
function hmacKid(token: TokenSession, key: Buffer, label: string | undefined, name: string): string {
  const id = attributeOf(token, key, token.binding.CKA_ID, name);
  return `pkcs11-hmac-${shortId(new Uint8Array(id !== undefined && id.length > 0 ? id : Buffer.from(label ?? '', 'utf8')))}`;
}

/**
 * Opens the HMAC key a `pkcs11:` URI names for verifying audit records: each record's MAC is
 * checked by the token (C_Verify with CKM_SHA256_HMAC), which keeps the secret. Close it when done.
 *
 * @throws ManagerError `PKCS11_OBJECT_NOT_FOUND` when the token holds no secret key of that name,
 *   `PKCS11_KEY_UNSUPPORTED` for one CKM_SHA256_HMAC does not take; the codes of `openPkcs11Signer`
 *   otherwise. Its `verifyMac` throws (`PKCS11_TOKEN_NOT_FOUND`, `PKCS11_FAILED`) when the token
 *   cannot give a verdict: never a false "invalid".
 */
export function openPkcs11AuditMacKey(text: string, options: { env?: Record<string, string | undefined>; kid?: string | undefined } = {}): ExternalAuditMacKey {
  const uri = parsePkcs11Uri(text);
  const name = describePkcs11Uri(uri);
  if (uri.type !== undefined && uri.type !== 'secret-key') throw new ManagerError('PKCS11_URI_INVALID', `${name} names a ${uri.type} key (type=${uri.type}); an HMAC key is a secret key: use type=secret-key or leave type= out.`);
  const token = TokenSession.open(uri, options.env ?? process.env);
  try {
    const { binding, pkcs11, session } = token;
    const key = findHmacKey(token, uri, name);
    if (key === undefined) throw new ManagerError('PKCS11_OBJECT_NOT_FOUND', `The token holds no secret (HMAC) key ${name}. Fix object= / id= in the URI (list the token's keys with \`pkcs11-tool --module MODULE --login -O\`).`);
    const verifyMac = (hash: Uint8Array, mac: Uint8Array): boolean => {
      try {
        pkcs11.C_VerifyInit(session, { mechanism: binding.CKM_SHA256_HMAC }, key);
        return pkcs11.C_Verify(session, Buffer.from(hash), Buffer.from(mac));
      } catch (error) {
        // The token's verdict on a wrong MAC, where a module says it by an error.
        const ckr = ckrName(error);
        if (ckr !== 'CKR_SIGNATURE_INVALID' && ckr !== 'CKR_SIGNATURE_LEN_RANGE') throw pkcs11Failure(error, `checking an audit record's MAC with ${name}`);
        return false;
      }
    };
    return externalAuditMacKey(options.kid ?? hmacKid(token, key, uri.object, name), name, verifyMac, () => {
      token.close();
    });
  } catch (error) {
    token.close();
    throw error;
  }
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
    const { binding } = token;
    const found = uri.type === 'secret-key' ? [] : findObjects(token, [{ type: binding.CKA_CLASS, value: binding.CKO_PRIVATE_KEY }, ...nameTemplate(token, uri)]);
    const [privateKey] = found;
    if (privateKey === undefined) {
      const secret = uri.type === 'private' ? undefined : findHmacKey(token, uri, name);
      if (secret !== undefined) {
        if (options.algorithm !== undefined && options.algorithm !== 'hmac-sha256') {
          throw new ManagerError('PKCS11_KEY_UNSUPPORTED', `${name} is an hmac-sha256 key, but the audit signer is configured for ${options.algorithm} (AUDIT_SIGNING_ALG). Use a key of the configured kind, or change the setting.`);
        }
        return hmacSigner(token, secret, options.kid ?? hmacKid(token, secret, uri.object, name), name);
      }
      throw new ManagerError('PKCS11_OBJECT_NOT_FOUND', `The token holds no ${uri.type === 'secret-key' ? 'secret' : uri.type === 'private' ? 'private' : 'private or secret'} key ${name}. Fix object= / id= in the URI (list the token's keys with \`pkcs11-tool --module MODULE --login -O\`).`);
    }
    if (found.length > 1) throw new ManagerError('PKCS11_URI_INVALID', `${found.length} private keys on the token match ${name}. Add id= to the URI to name one.`);
    const keyType = ulongOf(token, privateKey, binding.CKA_KEY_TYPE, name);
    const algorithm: AuditAlgorithm | undefined = keyType === CKK_EC_EDWARDS ? 'ed25519' : keyType === binding.CKK_RSA ? 'rsa-sha256' : undefined;
    if (algorithm === undefined) throw new ManagerError('PKCS11_KEY_UNSUPPORTED', `${name} is neither an Ed25519 (CKK_EC_EDWARDS) nor an RSA (CKK_RSA) private key; an audit key in a token is one of those, or an HMAC secret key (CKK_GENERIC_SECRET).`);
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
        const signature = tokenSign(token, binding.CKM_SHA256_RSA_PKCS, privateKey, hash, length, `signing an audit record with ${name}`);
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

// One C_Sign of `hash` with `mechanism` (a signature or MAC of at most `length` bytes).
function tokenSign(token: TokenSession, mechanism: number, key: Buffer, hash: Uint8Array, length: number, what: string): Buffer {
  try {
    token.pkcs11.C_SignInit(token.session, { mechanism }, key);
    return Buffer.from(token.pkcs11.C_Sign(token.session, Buffer.from(hash), Buffer.alloc(length)));
  } catch (error) {
    throw pkcs11Failure(error, what);
  }
}

// An hmac-sha256 audit signer over a secret key in the token: each MAC one C_Sign with CKM_SHA256_HMAC.
function hmacSigner(token: TokenSession, key: Buffer, kid: string, name: string): ExternalAuditSigner {
  const signer: AuditSigner = {
    kid,
    algorithm: 'hmac-sha256',
    sign: (hash) => {
      const mac = tokenSign(token, token.binding.CKM_SHA256_HMAC, key, hash, HMAC_LENGTH, `MACing an audit record with ${name}`);
      if (mac.length !== HMAC_LENGTH) throw new ManagerError('PKCS11_FAILED', `The token returned ${mac.length} bytes for an HMAC-SHA256 with ${name}. Nothing was written.`);
      return new Uint8Array(mac);
    },
  };
  return {
    signer,
    publicKey: { algorithm: 'hmac-sha256' },
    uri: name,
    close: () => {
      token.close();
    },
  };
}

/**
 * Generates an HMAC key (32 random bytes, CKK_GENERIC_SECRET) inside the token a `pkcs11:` URI
 * names, labelled with its `object=`: sensitive, not extractable, for CKM_SHA256_HMAC signing and
 * verifying only. Answers the kid its records get. Refuses when the token already holds an object
 * of that label.
 *
 * @throws ManagerError `PKCS11_OBJECT_EXISTS`, and the codes of `openPkcs11Signer`
 */
export function generatePkcs11HmacKey(text: string, options: { env?: Record<string, string | undefined> } = {}): { kid: string } {
  const { uri, name, label, token } = openForNewKey(text, options.env);
  try {
    const { binding, pkcs11, session } = token;
    let key: Buffer;
    try {
      key = pkcs11.C_GenerateKey(session, { mechanism: binding.CKM_GENERIC_SECRET_KEY_GEN }, [
        { type: binding.CKA_CLASS, value: binding.CKO_SECRET_KEY },
        { type: binding.CKA_KEY_TYPE, value: binding.CKK_GENERIC_SECRET },
        { type: binding.CKA_TOKEN, value: true },
        { type: binding.CKA_LABEL, value: label },
        { type: binding.CKA_ID, value: Buffer.from(uri.id ?? randomBytes(16)) },
        { type: binding.CKA_VALUE_LEN, value: HMAC_LENGTH },
        { type: binding.CKA_SIGN, value: true },
        { type: binding.CKA_VERIFY, value: true },
        // For MACs only: never a key to derive, wrap, encrypt or decrypt with.
        { type: binding.CKA_DERIVE, value: false },
        { type: binding.CKA_WRAP, value: false },
        { type: binding.CKA_ENCRYPT, value: false },
        { type: binding.CKA_DECRYPT, value: false },
        { type: binding.CKA_PRIVATE, value: true },
        { type: binding.CKA_SENSITIVE, value: true },
        { type: binding.CKA_EXTRACTABLE, value: false },
      ]);
    } catch (error) {
      throw pkcs11Failure(error, `generating ${name}`);
    }
    return { kid: hmacKid(token, key, label, name) };
  } finally {
    token.close();
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
  const bits = options.bits ?? RSA_MIN_BITS;
  if (bits < RSA_MIN_BITS) throw new ManagerError('PKCS11_KEY_UNSUPPORTED', `An RSA audit key has ${RSA_MIN_BITS} bits or more, not ${bits}.`);
  const { uri, name, label, token } = openForNewKey(text, options.env);
  try {
    const { binding, pkcs11, session } = token;
    const common: Template = [
      { type: binding.CKA_TOKEN, value: true },
      { type: binding.CKA_LABEL, value: label },
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
