// Small, strict byte helpers. Strictness matters: a lenient base64 decoder lets two different
// strings decode to the same key or signature, which breaks "the bytes verified are the bytes used".

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Decodes canonical padded base64; returns undefined for anything else. */
export function fromBase64(text: string): Uint8Array | undefined {
  if (!BASE64.test(text)) return undefined;
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  return toBase64(bytes) === text ? bytes : undefined;
}

/** Decodes canonical unpadded base64url (padding tolerated); returns undefined for anything else. */
export function fromBase64Url(text: string): Uint8Array | undefined {
  // Padding, when present, must be exactly what the length calls for (`AA==`, `AAA=`), nothing else.
  const unpadded = text.replace(/={1,2}$/, '');
  if (unpadded.length !== text.length && (unpadded.length + (text.length - unpadded.length)) % 4 !== 0) return undefined;
  if (!BASE64URL.test(unpadded) || unpadded.length % 4 === 1) return undefined;
  const bytes = new Uint8Array(Buffer.from(unpadded, 'base64url'));
  return toBase64Url(bytes) === unpadded ? bytes : undefined;
}

/**
 * Decodes base64 in either RFC 4648 alphabet, as DSSE allows: standard (`+/`) or URL-safe (`-_`),
 * never both in one string, with its padding either absent or exactly what the length calls for, and
 * no stray bits in the last character. Returns undefined for anything else, so every accepted string
 * names one byte sequence in one way per alphabet and padding choice.
 */
export function fromBase64Either(text: string): Uint8Array | undefined {
  const standard = /[+/]/.test(text);
  if (standard && /[-_]/.test(text)) return undefined;
  return fromBase64Url(standard ? text.replace(/\+/g, '-').replace(/\//g, '_') : text);
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(text: string): Uint8Array | undefined {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}
