// An Ed25519 key that lives in a PKCS#11 token: found by the object= / id= of its URI, or generated
// there, and used through CKM_EDDSA. It signs as drover's local key does (a raw 64-byte RFC 8032
// signature), so every verifier of releases, nonces, minisign files and audit records accepts it.

import { randomBytes } from 'node:crypto';
import { Ed25519PublicKey } from '@drover/protocol';
import type { Ed25519Signer } from '@drover/protocol';
import { ManagerError } from '../errors.js';
import { pkcs11Failure, TokenSession } from './token.js';
import { describePkcs11Uri, parsePkcs11Uri } from './uri.js';
import type { Pkcs11Uri } from './uri.js';

// PKCS#11 3.0 values, which pkcs11js's constant table (2.40) lacks.
const CKK_EC_EDWARDS = 0x40;
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;
// DER of the OID id-Ed25519 (1.3.101.112), CKA_EC_PARAMS of an Ed25519 key (PKCS#11 3.0, 2.3.10).
const ED25519_EC_PARAMS = Buffer.from('06032b6570', 'hex');
const SIGNATURE_LENGTH = 64; // bytes
const GENERATED_ID_LENGTH = 16; // bytes of a random CKA_ID when the URI gives none

/** Options of {@link openPkcs11Signer} and {@link generatePkcs11Key}. */
export interface Pkcs11KeyOptions {
  /** Where DROVER_PKCS11_MODULE and DROVER_PKCS11_PIN are read (default: `process.env`). */
  env?: Record<string, string | undefined>;
}

/**
 * An Ed25519 key held in a PKCS#11 token: an `Ed25519Signer` (from `@drover/protocol`) whose private half never
 * leaves the token. Close it when done (it holds a logged-in session).
 */
export interface Pkcs11Signer extends Ed25519Signer {
  /** The key's URI without its PIN source or module path, for messages and logs. */
  readonly uri: string;
  /** Logs out and ends the session. */
  close(): void;
}

class TokenEd25519Key implements Pkcs11Signer {
  readonly keyid: string;
  readonly publicKey: Ed25519PublicKey;
  readonly uri: string;
  readonly #token: TokenSession;
  readonly #privateKey: Buffer;

  constructor(token: TokenSession, privateKey: Buffer, publicKey: Ed25519PublicKey, uri: string) {
    this.#token = token;
    this.#privateKey = privateKey;
    this.publicKey = publicKey;
    this.keyid = publicKey.keyid;
    this.uri = uri;
  }

  sign(message: Uint8Array): Uint8Array {
    const { pkcs11, session } = this.#token;
    let signature: Buffer;
    try {
      pkcs11.C_SignInit(session, { mechanism: CKM_EDDSA }, this.#privateKey);
      signature = Buffer.from(pkcs11.C_Sign(session, Buffer.from(message), Buffer.alloc(SIGNATURE_LENGTH)));
    } catch (error) {
      throw pkcs11Failure(error, `signing with ${this.uri}`);
    }
    // A device that answers with anything but a valid signature of this key must not get it into a
    // release or an audit record: checked here, before any caller writes it.
    if (signature.length !== SIGNATURE_LENGTH || !this.publicKey.verify(message, signature)) {
      throw new ManagerError('PKCS11_FAILED', `The token returned a signature that does not verify under ${this.uri}'s public key. Check that the private and public objects of the key belong together.`);
    }
    return new Uint8Array(signature);
  }

  close(): void {
    this.#token.close();
  }

  toJSON(): { keyid: string; uri: string } {
    return { keyid: this.keyid, uri: this.uri };
  }
}

export type Template = { type: number; value?: number | boolean | string | Buffer }[];

export function findObjects(token: TokenSession, template: Template): Buffer[] {
  const { pkcs11, session } = token;
  try {
    pkcs11.C_FindObjectsInit(session, template);
    try {
      return pkcs11.C_FindObjects(session, 16);
    } finally {
      pkcs11.C_FindObjectsFinal(session);
    }
  } catch (error) {
    throw pkcs11Failure(error, 'searching the token');
  }
}

export function nameTemplate(token: TokenSession, uri: Pkcs11Uri): Template {
  const { binding } = token;
  const template: Template = [];
  if (uri.object !== undefined) template.push({ type: binding.CKA_LABEL, value: uri.object });
  if (uri.id !== undefined) template.push({ type: binding.CKA_ID, value: Buffer.from(uri.id) });
  return template;
}

/** The raw 32-byte key from CKA_EC_POINT: a DER OCTET STRING (PKCS#11 3.0), or the bare bytes some modules give. */
function ed25519Point(point: Buffer): Uint8Array | undefined {
  if (point.length === 34 && point[0] === 0x04 && point[1] === 0x20) return new Uint8Array(point.subarray(2));
  if (point.length === 32) return new Uint8Array(point);
  return undefined;
}

function readPublicKey(token: TokenSession, privateKey: Buffer, uri: string): Ed25519PublicKey {
  const { binding, pkcs11, session } = token;
  let label: Buffer | undefined;
  let id: Buffer | undefined;
  try {
    const [labelAttr, idAttr] = pkcs11.C_GetAttributeValue(session, privateKey, [{ type: binding.CKA_LABEL }, { type: binding.CKA_ID }]);
    label = Buffer.isBuffer(labelAttr?.value) ? labelAttr.value : undefined;
    id = Buffer.isBuffer(idAttr?.value) ? idAttr.value : undefined;
  } catch (error) {
    throw pkcs11Failure(error, `reading ${uri}`);
  }
  // The public object that goes with the private one carries the same CKA_ID (and label).
  const template: Template = [{ type: binding.CKA_CLASS, value: binding.CKO_PUBLIC_KEY }];
  if (id !== undefined && id.length > 0) template.push({ type: binding.CKA_ID, value: id });
  else if (label !== undefined) template.push({ type: binding.CKA_LABEL, value: label });
  const found = findObjects(token, template);
  for (const handle of found) {
    try {
      const [point] = pkcs11.C_GetAttributeValue(session, handle, [{ type: binding.CKA_EC_POINT }]);
      const raw = Buffer.isBuffer(point?.value) ? ed25519Point(point.value) : undefined;
      if (raw !== undefined) return new Ed25519PublicKey(raw);
    } catch {
      // Not an EC key (an RSA public key with the same id): look at the next one.
    }
  }
  throw new ManagerError('PKCS11_OBJECT_NOT_FOUND', `The token holds ${uri}'s private key but not its Ed25519 public key object (same CKA_ID). Import the public key into the token, or generate the key again with \`drover keygen --pkcs11\`.`);
}

/**
 * Opens the Ed25519 key a `pkcs11:` URI names (RFC 7512: `token=`, `object=`, `id=`; the PIN from
 * `pin-source=file:...` or DROVER_PKCS11_PIN; the module from `module-path=` or
 * DROVER_PKCS11_MODULE). The private key never leaves the token.
 *
 * @throws ManagerError `PKCS11_URI_INVALID`, `PKCS11_UNAVAILABLE`, `PKCS11_MODULE_NOT_FOUND`,
 *   `PKCS11_TOKEN_NOT_FOUND`, `PKCS11_PIN_MISSING`, `PKCS11_PIN_INCORRECT`, `PKCS11_PIN_LOCKED`,
 *   `PKCS11_OBJECT_NOT_FOUND`, `PKCS11_KEY_UNSUPPORTED` or `PKCS11_FAILED`
 * @example
 * ```ts
 * const key = openPkcs11Signer('pkcs11:token=release;object=release-2026?pin-source=file:/run/secrets/hsm-pin');
 * try {
 *   const envelope = signRelease(payload, [key]);
 * } finally {
 *   key.close();
 * }
 * ```
 */
export function openPkcs11Signer(text: string, options: Pkcs11KeyOptions = {}): Pkcs11Signer {
  const uri = parsePkcs11Uri(text);
  const name = describePkcs11Uri(uri);
  if (uri.type === 'public') throw new ManagerError('PKCS11_URI_INVALID', `${name} names a public key (type=public), which cannot sign. Use type=private or leave type= out.`);
  if (uri.type === 'secret-key') throw new ManagerError('PKCS11_URI_INVALID', `${name} names a secret key (type=secret-key): releases, nonces and minisign files are signed with an Ed25519 private key. An HMAC secret key can MAC audit records (AUDIT_SIGNING_ALG=hmac-sha256).`);
  const token = TokenSession.open(uri, options.env ?? process.env);
  try {
    const { binding, pkcs11, session } = token;
    const found = findObjects(token, [{ type: binding.CKA_CLASS, value: binding.CKO_PRIVATE_KEY }, ...nameTemplate(token, uri)]);
    const [privateKey] = found;
    if (privateKey === undefined) {
      throw new ManagerError('PKCS11_OBJECT_NOT_FOUND', `The token holds no private key ${name}. Fix object= / id= in the URI (list the token's keys with \`pkcs11-tool --module MODULE --login -O\`), or create it with \`drover keygen --pkcs11\`.`);
    }
    if (found.length > 1) {
      throw new ManagerError('PKCS11_URI_INVALID', `${found.length} private keys on the token match ${name}. Add id= to the URI to name one.`);
    }
    let keyType: unknown;
    try {
      keyType = pkcs11.C_GetAttributeValue(session, privateKey, [{ type: binding.CKA_KEY_TYPE }])[0]?.value;
    } catch (error) {
      throw pkcs11Failure(error, `reading ${name}`);
    }
    if (!Buffer.isBuffer(keyType) || readUlong(keyType) !== CKK_EC_EDWARDS) {
      throw new ManagerError('PKCS11_KEY_UNSUPPORTED', `${name} is not an Ed25519 key (CKK_EC_EDWARDS). Releases, update nonces and minisign files are signed with Ed25519 only (an RSA key can sign audit records: AUDIT_SIGNING_ALG=rsa-sha256); create an Ed25519 key with \`drover keygen --pkcs11\`.`);
    }
    return new TokenEd25519Key(token, privateKey, readPublicKey(token, privateKey, name), name);
  } catch (error) {
    token.close();
    throw error;
  }
}

export function readUlong(value: Buffer): number {
  return value.length >= 8 ? Number(value.readBigUInt64LE(0)) : value.readUInt32LE(0);
}

/**
 * Generates an Ed25519 key pair inside the token a `pkcs11:` URI names, labelled with its `object=`
 * (and `id=`, else a random CKA_ID): the private key sensitive and not extractable, both objects
 * stored on the token. Refuses when the token already holds a key of that label or id.
 *
 * @returns the new key, open for signing (close it when done)
 * @throws ManagerError `PKCS11_OBJECT_EXISTS`, and the codes of {@link openPkcs11Signer}
 */
export function generatePkcs11Key(text: string, options: Pkcs11KeyOptions = {}): Pkcs11Signer {
  const uri = parsePkcs11Uri(text);
  const name = describePkcs11Uri(uri);
  if (uri.object === undefined) throw new ManagerError('PKCS11_URI_INVALID', `${name} has no object= label; a new key needs one.`);
  const token = TokenSession.open(uri, options.env ?? process.env);
  try {
    const { binding, pkcs11, session } = token;
    // Never a second key under one name: signing by that name would pick either.
    if (findObjects(token, nameTemplate(token, uri)).length > 0 || (uri.id === undefined && findObjects(token, [{ type: binding.CKA_LABEL, value: uri.object }]).length > 0)) {
      throw new ManagerError('PKCS11_OBJECT_EXISTS', `The token already holds an object ${name}. Choose another object= label (or id=), or delete the old key with the HSM's tools first.`);
    }
    const id = Buffer.from(uri.id ?? randomBytes(GENERATED_ID_LENGTH));
    const common: Template = [
      { type: binding.CKA_TOKEN, value: true },
      { type: binding.CKA_LABEL, value: uri.object },
      { type: binding.CKA_ID, value: id },
    ];
    const publicTemplate: Template = [...common, { type: binding.CKA_CLASS, value: binding.CKO_PUBLIC_KEY }, { type: binding.CKA_KEY_TYPE, value: CKK_EC_EDWARDS }, { type: binding.CKA_EC_PARAMS, value: ED25519_EC_PARAMS }, { type: binding.CKA_VERIFY, value: true }, { type: binding.CKA_PRIVATE, value: false }];
    const privateTemplate: Template = [
      ...common,
      { type: binding.CKA_CLASS, value: binding.CKO_PRIVATE_KEY },
      { type: binding.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
      { type: binding.CKA_SIGN, value: true },
      { type: binding.CKA_PRIVATE, value: true },
      // The point of an HSM: the private key can be used, never read out.
      { type: binding.CKA_SENSITIVE, value: true },
      { type: binding.CKA_EXTRACTABLE, value: false },
    ];
    let pair: { privateKey: Buffer; publicKey: Buffer };
    try {
      pair = pkcs11.C_GenerateKeyPair(session, { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN }, publicTemplate, privateTemplate);
    } catch (error) {
      throw pkcs11Failure(error, `generating ${name}`);
    }
    const idName = describePkcs11Uri({ ...uri, id });
    return new TokenEd25519Key(token, pair.privateKey, readPublicKey(token, pair.privateKey, idName), idName);
  } catch (error) {
    token.close();
    throw error;
  }
}
