// RFC 7512 `pkcs11:` URIs: which module, token and object a key is, and where its PIN comes from.
// Only what names a key is accepted; anything else is refused rather than ignored, so a misspelt
// attribute can never select another token's key.

import { ManagerError } from '../errors.js';

/** A parsed `pkcs11:` URI: each field is the attribute's decoded value, when the URI has it. */
export interface Pkcs11Uri {
  /** `token=`: the token's label. */
  token?: string;
  /** `manufacturer=`, `model=`, `serial=`: more of the token's identity. */
  manufacturer?: string;
  model?: string;
  serial?: string;
  /** `slot-id=`: the slot's number (RFC 7512 section 2.3). */
  slotId?: number;
  /** `object=`: the key's label (CKA_LABEL). */
  object?: string;
  /** `id=`: the key's CKA_ID bytes. */
  id?: Uint8Array;
  /** `type=`: only `private` (or absent) names a signing key. */
  type?: string;
  /** `pin-source=`: where the PIN is read from (`file:/path` or a path). */
  pinSource?: string;
  /** `module-path=`: the PKCS#11 library to load. */
  modulePath?: string;
}

const PATH_ATTRIBUTES = new Set(['token', 'manufacturer', 'model', 'serial', 'slot-id', 'object', 'id', 'type', 'library-manufacturer', 'library-description', 'library-version', 'slot-description', 'slot-manufacturer']);
const QUERY_ATTRIBUTES = new Set(['pin-source', 'module-path', 'module-name', 'pin-value']);
/** The attributes kept as text, by the field of {@link Pkcs11Uri} each fills. */
const TEXT_FIELDS: Partial<Record<string, 'token' | 'manufacturer' | 'model' | 'serial' | 'object' | 'pinSource' | 'modulePath'>> = {
  token: 'token',
  manufacturer: 'manufacturer',
  model: 'model',
  serial: 'serial',
  object: 'object',
  'pin-source': 'pinSource',
  'module-path': 'modulePath',
};

/** True when `text` is meant as a PKCS#11 URI rather than a key file's path. */
export function isPkcs11Uri(text: string): boolean {
  return text.toLowerCase().startsWith('pkcs11:');
}

function invalid(message: string): ManagerError {
  return new ManagerError('PKCS11_URI_INVALID', `${message} Write the key as pkcs11:token=LABEL;object=LABEL?pin-source=file:/path/to/pin (RFC 7512).`);
}

function decode(value: string, name: string): Uint8Array {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i += 1) {
    const char = value[i] ?? '';
    if (char === '%') {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw invalid(`The value of ${name} has a "%" that is not followed by two hex digits.`);
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(char, 'utf8'));
    }
  }
  return Uint8Array.from(bytes);
}

function decodeText(value: string, name: string): string {
  const bytes = decode(value, name);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (!Buffer.from(text, 'utf8').equals(Buffer.from(bytes))) throw invalid(`The value of ${name} is not UTF-8.`);
  return text;
}

/**
 * Parses a `pkcs11:` URI (RFC 7512). Throws ManagerError `PKCS11_URI_INVALID` for a malformed URI,
 * an attribute given twice or not known here, and for `pin-value`: a PIN in the URI would sit in
 * the shell's history and in `ps`, so it is refused; use `pin-source=file:...` or DROVER_PKCS11_PIN.
 */
export function parsePkcs11Uri(text: string): Pkcs11Uri {
  if (!isPkcs11Uri(text)) throw invalid('A PKCS#11 key is named by a URI that starts with "pkcs11:".');
  const rest = text.slice('pkcs11:'.length);
  const question = rest.indexOf('?');
  const path = question === -1 ? rest : rest.slice(0, question);
  const query = question === -1 ? '' : rest.slice(question + 1);
  const uri: Pkcs11Uri = {};
  const seen = new Set<string>();
  const parts = [...(path === '' ? [] : path.split(';').map((part) => ({ part, inQuery: false }))), ...(query === '' ? [] : query.split('&').map((part) => ({ part, inQuery: true })))];
  for (const { part, inQuery } of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw invalid(`"${part.slice(0, 40)}" is not an attribute=value pair.`);
    const name = part.slice(0, eq).toLowerCase();
    const value = part.slice(eq + 1);
    if (!(inQuery ? QUERY_ATTRIBUTES : PATH_ATTRIBUTES).has(name)) {
      throw invalid(`"${name.slice(0, 40)}" is not a ${inQuery ? 'query' : 'path'} attribute drover knows.`);
    }
    if (seen.has(name)) throw invalid(`The attribute ${name} is given twice.`);
    seen.add(name);
    if (name === 'pin-value') {
      // Never echo the value: it is a PIN.
      throw new ManagerError('PKCS11_URI_INVALID', 'The URI carries its PIN (pin-value=), which would show in shell history and the process list. Put the PIN in a file (pin-source=file:/path, mode 0600) or in DROVER_PKCS11_PIN.');
    }
    const field = TEXT_FIELDS[name];
    if (field !== undefined) {
      uri[field] = decodeText(value, name);
    } else if (name === 'slot-id') {
      const slot = decodeText(value, name);
      if (!/^\d{1,10}$/.test(slot)) throw invalid('slot-id must be a decimal number.');
      uri.slotId = Number(slot);
    } else if (name === 'id') {
      uri.id = decode(value, name);
      if (uri.id.length === 0) throw invalid('id= is empty.');
    } else if (name === 'type') {
      uri.type = decodeText(value, name);
      if (!['private', 'public', 'secret-key'].includes(uri.type)) throw invalid(`type=${uri.type.slice(0, 20)} does not name a key; use type=private (type=secret-key for an HMAC key) or leave it out.`);
    }
    // Library and slot descriptions, module-name: accepted as RFC 7512 allows, but not used to choose.
  }
  if (uri.token === undefined && uri.serial === undefined && uri.slotId === undefined) {
    throw invalid('The URI names no token (token=, serial= or slot-id=).');
  }
  if (uri.object === undefined && uri.id === undefined) throw invalid('The URI names no key (object= or id=).');
  return uri;
}

/** The URI without its query (the PIN source, the module path): how a key is named in messages and logs. */
export function describePkcs11Uri(uri: Pkcs11Uri): string {
  const enc = (text: string): string => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const parts: string[] = [];
  if (uri.token !== undefined) parts.push(`token=${enc(uri.token)}`);
  if (uri.serial !== undefined) parts.push(`serial=${enc(uri.serial)}`);
  if (uri.slotId !== undefined) parts.push(`slot-id=${uri.slotId}`);
  if (uri.object !== undefined) parts.push(`object=${enc(uri.object)}`);
  if (uri.id !== undefined) parts.push(`id=${[...uri.id].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`);
  return `pkcs11:${parts.join(';')}`;
}
