// minisign interop: public keys and `.minisig` signature files, byte-compatible with the
// reference `minisign` tool (jedisct1/minisign, src/minisign.c). Pure: node:crypto only. Large
// files are streamed by the caller as an AsyncIterable (e.g. `fs.createReadStream(path)`), so this
// module never opens a file itself and never holds a whole prehashed artifact in memory.
//
// Formats (all binary fields base64, canonical padded, one per line):
//   public key:  "untrusted comment: <text>\n" base64("Ed" || keyId[8] || publicKey[32]) "\n"
//   signature:   "untrusted comment: <text>\n" base64(alg[2] || keyId[8] || sig[64]) "\n"
//                "trusted comment: <text>\n" base64(globalSig[64]) "\n"
// alg "Ed" (legacy) signs the file itself; "ED" (prehashed, minisign's default since 0.10) signs
// BLAKE2b-512(file). globalSig = Ed25519(sig || trusted comment bytes): it binds the trusted
// comment (timestamp, file name, ...) to this signature so it cannot be swapped.

import { createHash } from 'node:crypto';
import { fromBase64, toBase64, utf8 } from './bytes.js';
import { Ed25519PublicKey, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH } from './ed25519.js';
import type { Ed25519Signer } from './ed25519.js';
import { MinisignError } from './errors.js';
import { sha256 } from './hash.js';

/** Length of a minisign key id (bytes). */
export const MINISIGN_KEY_ID_LENGTH = 8;
/** Length of the BLAKE2b-512 digest a prehashed (`ED`) signature signs (bytes). */
export const MINISIGN_PREHASH_LENGTH = 64;
/**
 * Largest file drover signs or verifies in legacy (`Ed`) mode: 1 GiB, the limit minisign itself
 * enforced while legacy was its default. A legacy signature covers the raw file, which must then be
 * held in memory whole; use the prehashed mode (the default) for anything larger.
 */
export const MINISIGN_LEGACY_MAX_BYTES = 1024 * 1024 * 1024; // bytes
/**
 * Longest trusted comment (bytes, UTF-8): minisign reads the line with an 8192-byte `fgets`, so
 * "trusted comment: " (17) + text + "\n" must fit in 8191 bytes.
 */
export const MINISIGN_TRUSTED_COMMENT_MAX_BYTES = 8173;
/** Longest untrusted comment (bytes, UTF-8): "untrusted comment: " (19) + text + "\n" must fit in 1023 bytes. */
export const MINISIGN_UNTRUSTED_COMMENT_MAX_BYTES = 1003;

const UNTRUSTED_PREFIX = 'untrusted comment: ';
const TRUSTED_PREFIX = 'trusted comment: ';
const UNTRUSTED_LINE_MAX = 1022; // bytes before "\n" (minisign: COMMENTMAXBYTES 1024, fgets keeps 1023)
const TRUSTED_LINE_MAX = 8190; // bytes before "\n" (minisign: TRUSTEDCOMMENTMAXBYTES 8192)
const ALG_LEGACY = 'Ed';
const ALG_PREHASHED = 'ED';
const PUBLIC_KEY_STRUCT_LENGTH = 2 + MINISIGN_KEY_ID_LENGTH + PUBLIC_KEY_LENGTH; // 42 bytes
const SIGNATURE_STRUCT_LENGTH = 2 + MINISIGN_KEY_ID_LENGTH + SIGNATURE_LENGTH; // 74 bytes

/** A minisign public key: the Ed25519 key and the 8-byte key id that names it in signatures. */
export interface MinisignPublicKey {
  /** The 8-byte key id signatures name the key by. */
  readonly keyId: Uint8Array;
  /** The Ed25519 key. */
  readonly publicKey: Ed25519PublicKey;
}

/** A parsed `.minisig` file. Nothing in it is trusted until {@link verifyMinisign} accepts it. */
export interface MinisignSignature {
  /** `Ed` signs the raw file (legacy); `ED` signs its BLAKE2b-512 digest (prehashed). */
  readonly algorithm: 'Ed' | 'ED';
  /** True for `ED`. */
  readonly prehashed: boolean;
  /** The 8-byte id of the key that claims to have signed. */
  readonly keyId: Uint8Array;
  /** The 64-byte signature over the file (or its digest). */
  readonly signature: Uint8Array;
  /** The first line's comment; nothing signs it. */
  readonly untrustedComment: string;
  /** The trusted comment as text (invalid UTF-8 shown as U+FFFD); the bytes below are what is signed. */
  readonly trustedComment: string;
  /** The trusted comment's bytes, as the global signature covers them. */
  readonly trustedCommentBytes: Uint8Array;
  /** The signature over `signature` and the trusted comment. */
  readonly globalSignature: Uint8Array;
}

/** What {@link verifyMinisign} vouches for once both signatures hold. */
export interface MinisignVerified {
  /** The trusted comment, now verified (invalid UTF-8 shown as U+FFFD). */
  readonly trustedComment: string;
  /** The trusted comment's verified bytes. */
  readonly trustedCommentBytes: Uint8Array;
  /** True when the signature was prehashed (`ED`). */
  readonly prehashed: boolean;
  /** The signing key's 8-byte id. */
  readonly keyId: Uint8Array;
  /** The key id as minisign prints it (16 upper-case hex digits). */
  readonly keyIdHex: string;
}

/**
 * The signed data: the file's bytes, or (prehashed mode only) its BLAKE2b-512 digest computed
 * elsewhere, e.g. by {@link minisignPrehash} or while streaming it.
 */
export type MinisignMessage = Uint8Array | { readonly prehash: Uint8Array };

/** A public key given as minisign text (file or bare base64 line), parsed, or a drover key. */
export type MinisignPublicKeyInput = string | Uint8Array | MinisignPublicKey | Ed25519PublicKey;

/** Options of {@link signMinisign} and {@link signMinisignStream}. */
export interface MinisignSignOptions {
  /** Sign BLAKE2b-512 of the file (`ED`, default) rather than the file itself (`Ed`, legacy). */
  prehashed?: boolean;
  /** Defaults to `timestamp:<unix seconds>[\tfile:<fileName>][\thashed]`, as minisign writes it. */
  trustedComment?: string;
  /** Defaults to `signature from drover key <KEYID>`. */
  untrustedComment?: string;
  /** Defaults to {@link defaultMinisignKeyId} of the signing key. */
  keyId?: Uint8Array;
  /** The signed file's base name, for the default trusted comment. */
  fileName?: string;
  /** Seconds since the epoch for the default trusted comment; defaults to now. */
  timestamp?: number;
}

/** Options of {@link verifyMinisign} and {@link verifyMinisignStream}. */
export interface MinisignVerifyOptions {
  /** Accept legacy (`Ed`) signatures; default true, as minisign does unless run with `-H`. */
  allowLegacy?: boolean;
}

/** Options of the streaming variants, {@link signMinisignStream} and {@link verifyMinisignStream}. */
export interface MinisignStreamOptions {
  /** Refuse a legacy file larger than this (bytes); defaults to {@link MINISIGN_LEGACY_MAX_BYTES}. */
  maxLegacyBytes?: number;
}

/**
 * drover's key id for a drover key used with minisign: the first 8 bytes of SHA-256 of the raw
 * 32-byte public key. (minisign itself draws key ids at random; deriving it makes the id stable,
 * so the same drover key always produces the same minisign public key file.)
 */
export function defaultMinisignKeyId(publicKey: Ed25519PublicKey): Uint8Array {
  return sha256(publicKey.raw).subarray(0, MINISIGN_KEY_ID_LENGTH);
}

/** The key id as minisign prints it: the 8 bytes read as a little-endian integer, 16 upper-case hex digits. */
export function formatMinisignKeyId(keyId: Uint8Array): string {
  checkKeyId(keyId);
  return Buffer.from(keyId).reverse().toString('hex').toUpperCase();
}

/** BLAKE2b-512 of `data`: what a prehashed (`ED`) signature signs. Stream large files instead. */
export function minisignPrehash(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('blake2b512').update(data).digest());
}

/**
 * Writes a minisign public key file for a drover key, readable by `minisign -V -p FILE`.
 *
 * @example
 * ```ts
 * writeFileSync('release.minisign.pub', encodeMinisignPublicKey(privateKey.publicKey));
 * ```
 */
export function encodeMinisignPublicKey(publicKey: Ed25519PublicKey, keyId: Uint8Array = defaultMinisignKeyId(publicKey), untrustedComment?: string): string {
  checkKeyId(keyId);
  const comment = untrustedComment ?? `minisign public key ${formatMinisignKeyId(keyId)}`;
  checkComment(comment, MINISIGN_UNTRUSTED_COMMENT_MAX_BYTES, 'untrusted');
  const body = new Uint8Array(PUBLIC_KEY_STRUCT_LENGTH);
  body.set(utf8(ALG_LEGACY), 0);
  body.set(keyId, 2);
  body.set(publicKey.raw, 2 + MINISIGN_KEY_ID_LENGTH);
  return `${UNTRUSTED_PREFIX}${comment}\n${toBase64(body)}\n`;
}

/**
 * Reads a minisign public key: the two-line file `minisign -G` writes, or the bare base64 line
 * that `minisign -P` takes. Throws MINISIGN_KEY_INVALID or MINISIGN_ALGORITHM_UNSUPPORTED.
 */
export function parseMinisignPublicKey(input: string | Uint8Array): MinisignPublicKey {
  const lines = splitLines(typeof input === 'string' ? utf8(input) : input);
  const content = trimTrailingEmpty(lines);
  let keyLine: Uint8Array | undefined;
  if (content.length === 1) {
    keyLine = content[0];
  } else if (content.length === 2 && content[0] !== undefined) {
    if (content[0].length > UNTRUSTED_LINE_MAX || !startsWith(content[0], UNTRUSTED_PREFIX)) {
      throw new MinisignError('MINISIGN_KEY_INVALID', `A minisign public key file starts with a line "${UNTRUSTED_PREFIX}..." of at most ${UNTRUSTED_LINE_MAX + 1} bytes. Pass the .pub file minisign -G wrote.`);
    }
    keyLine = content[1];
  }
  if (keyLine === undefined) {
    throw new MinisignError('MINISIGN_KEY_INVALID', 'A minisign public key is a comment line and a base64 line (or the base64 line alone). Pass the .pub file minisign -G wrote.');
  }
  const body = fromBase64(latin1(stripCr(keyLine)));
  if (body?.length !== PUBLIC_KEY_STRUCT_LENGTH) {
    throw new MinisignError('MINISIGN_KEY_INVALID', `The minisign public key is not base64 of ${PUBLIC_KEY_STRUCT_LENGTH} bytes. Check that the file was not truncated or edited.`);
  }
  // A key for another algorithm must not be read as Ed25519.
  if (latin1(body.subarray(0, 2)) !== ALG_LEGACY) {
    throw new MinisignError('MINISIGN_ALGORITHM_UNSUPPORTED', 'The minisign public key is not an Ed25519 ("Ed") key; drover supports no other.');
  }
  return {
    keyId: body.slice(2, 2 + MINISIGN_KEY_ID_LENGTH),
    publicKey: new Ed25519PublicKey(body.subarray(2 + MINISIGN_KEY_ID_LENGTH)),
  };
}

/**
 * Reads a `.minisig` file without checking it. Throws MINISIGN_SIGNATURE_MALFORMED,
 * MINISIGN_ALGORITHM_UNSUPPORTED or MINISIGN_TRUSTED_COMMENT_INVALID.
 */
export function parseMinisignSignature(input: string | Uint8Array): MinisignSignature {
  const lines = trimTrailingEmpty(splitLines(typeof input === 'string' ? utf8(input) : input));
  const [untrustedLine, sigLine, trustedLine, globalLine] = lines;
  if (lines.length !== 4 || untrustedLine === undefined || sigLine === undefined || trustedLine === undefined || globalLine === undefined) {
    // Anything after the global signature is not covered by it; refuse rather than ignore it.
    throw new MinisignError('MINISIGN_SIGNATURE_MALFORMED', `A .minisig file has exactly 4 lines, got ${lines.length}. Check that the file is a minisign signature and was not truncated.`);
  }
  if (untrustedLine.length > UNTRUSTED_LINE_MAX || !startsWith(untrustedLine, UNTRUSTED_PREFIX)) {
    throw new MinisignError('MINISIGN_SIGNATURE_MALFORMED', `The first line of a .minisig file is "${UNTRUSTED_PREFIX}..." of at most ${UNTRUSTED_LINE_MAX + 1} bytes.`);
  }
  const sigStruct = fromBase64(latin1(stripCr(sigLine)));
  if (sigStruct?.length !== SIGNATURE_STRUCT_LENGTH) {
    throw new MinisignError('MINISIGN_SIGNATURE_MALFORMED', `The signature line is not base64 of ${SIGNATURE_STRUCT_LENGTH} bytes. Check that the .minisig file was not edited.`);
  }
  const algorithm = latin1(sigStruct.subarray(0, 2));
  if (algorithm !== ALG_LEGACY && algorithm !== ALG_PREHASHED) {
    throw new MinisignError('MINISIGN_ALGORITHM_UNSUPPORTED', `The signature algorithm "${JSON.stringify(algorithm).slice(1, -1)}" is neither "Ed" nor "ED"; drover supports only these.`);
  }
  if (trustedLine.length > TRUSTED_LINE_MAX || !startsWith(trustedLine, TRUSTED_PREFIX)) {
    throw new MinisignError('MINISIGN_TRUSTED_COMMENT_INVALID', `The third line of a .minisig file is "${TRUSTED_PREFIX}..." of at most ${TRUSTED_LINE_MAX + 1} bytes.`);
  }
  const trustedCommentBytes = stripCr(trustedLine).slice(TRUSTED_PREFIX.length);
  // minisign stops the comment at the first CR or NUL (C strings); a comment that still has one
  // would be verified by minisign over fewer bytes than drover shows: refuse the ambiguity.
  if (trustedCommentBytes.includes(0x0d) || trustedCommentBytes.includes(0x00)) {
    throw new MinisignError('MINISIGN_TRUSTED_COMMENT_INVALID', 'The trusted comment contains a carriage return or NUL byte. Re-sign the file.');
  }
  const globalSignature = fromBase64(latin1(stripCr(globalLine)));
  if (globalSignature?.length !== SIGNATURE_LENGTH) {
    throw new MinisignError('MINISIGN_SIGNATURE_MALFORMED', `The global signature line is not base64 of ${SIGNATURE_LENGTH} bytes. Check that the .minisig file was not edited.`);
  }
  return {
    algorithm,
    prehashed: algorithm === ALG_PREHASHED,
    keyId: sigStruct.slice(2, 2 + MINISIGN_KEY_ID_LENGTH),
    signature: sigStruct.slice(2 + MINISIGN_KEY_ID_LENGTH),
    untrustedComment: new TextDecoder().decode(stripCr(untrustedLine).subarray(UNTRUSTED_PREFIX.length)),
    trustedComment: new TextDecoder().decode(trustedCommentBytes),
    trustedCommentBytes,
    globalSignature,
  };
}

/**
 * Signs a file (its bytes, or its BLAKE2b-512 digest for the default prehashed mode) and returns
 * the `.minisig` text that `minisign -V` accepts.
 *
 * @example
 * ```ts
 * const minisig = signMinisign(key, fileBytes, { fileName: 'agent.tar.gz' });
 * ```
 */
export function signMinisign(privateKey: Ed25519Signer, message: MinisignMessage, options: MinisignSignOptions = {}): string {
  const prehashed = options.prehashed ?? true;
  const keyId = options.keyId ?? defaultMinisignKeyId(privateKey.publicKey);
  checkKeyId(keyId);
  const untrustedComment = options.untrustedComment ?? `signature from drover key ${formatMinisignKeyId(keyId)}`;
  checkComment(untrustedComment, MINISIGN_UNTRUSTED_COMMENT_MAX_BYTES, 'untrusted');
  const trustedComment = options.trustedComment ?? defaultTrustedComment(options, prehashed);
  checkComment(trustedComment, MINISIGN_TRUSTED_COMMENT_MAX_BYTES, 'trusted');

  const signed = signedBytes(message, prehashed);
  const signature = privateKey.sign(signed);
  const sigStruct = new Uint8Array(SIGNATURE_STRUCT_LENGTH);
  sigStruct.set(utf8(prehashed ? ALG_PREHASHED : ALG_LEGACY), 0);
  sigStruct.set(keyId, 2);
  sigStruct.set(signature, 2 + MINISIGN_KEY_ID_LENGTH);
  const globalSignature = privateKey.sign(Buffer.concat([signature, utf8(trustedComment)]));
  return `${UNTRUSTED_PREFIX}${untrustedComment}\n${toBase64(sigStruct)}\n${TRUSTED_PREFIX}${trustedComment}\n${toBase64(globalSignature)}\n`;
}

/**
 * Verifies a `.minisig` signature over a file. Returns the trusted comment only once the file
 * signature and the global signature (which covers the comment) both hold; throws MinisignError
 * otherwise (MINISIGN_KEY_MISMATCH, MINISIGN_SIGNATURE_INVALID, MINISIGN_TRUSTED_COMMENT_INVALID,
 * and the parse codes).
 *
 * @example
 * ```ts
 * const { trustedComment } = verifyMinisign(readFileSync('minisign.pub'), readFileSync('f.minisig'), readFileSync('f'));
 * ```
 */
export function verifyMinisign(
  publicKey: MinisignPublicKeyInput,
  signature: string | Uint8Array | MinisignSignature,
  message: MinisignMessage,
  options: MinisignVerifyOptions = {},
): MinisignVerified {
  const { key, sig } = checkBeforeMessage(publicKey, signature, options);
  return checkMessage(key, sig, message);
}

function checkMessage(key: MinisignPublicKey, sig: MinisignSignature, message: MinisignMessage): MinisignVerified {
  // forgery: the file (or its digest) must carry this key's signature.
  if (!key.publicKey.verify(signedBytes(message, sig.prehashed), sig.signature)) {
    throw new MinisignError('MINISIGN_SIGNATURE_INVALID', 'The signature does not match the file: the file was modified or signed by another key. Do not use it.');
  }
  // comment substitution: the trusted comment (timestamp, file name) must be the signer's.
  if (!key.publicKey.verify(Buffer.concat([sig.signature, sig.trustedCommentBytes]), sig.globalSignature)) {
    throw new MinisignError('MINISIGN_TRUSTED_COMMENT_INVALID', 'The global signature does not cover this trusted comment and signature: the .minisig file was tampered with. Do not use the file.');
  }
  return {
    trustedComment: sig.trustedComment,
    trustedCommentBytes: sig.trustedCommentBytes,
    prehashed: sig.prehashed,
    keyId: sig.keyId,
    keyIdHex: formatMinisignKeyId(sig.keyId),
  };
}

/**
 * {@link signMinisign} over a stream of chunks (e.g. `fs.createReadStream(path)`). Prehashed mode
 * hashes as it reads, in constant memory; legacy mode holds the file and refuses one above
 * `maxLegacyBytes` with MINISIGN_ALGORITHM_UNSUPPORTED.
 */
export async function signMinisignStream(
  privateKey: Ed25519Signer,
  source: AsyncIterable<Uint8Array>,
  options: MinisignSignOptions & MinisignStreamOptions = {},
): Promise<string> {
  const prehashed = options.prehashed ?? true;
  const message = await readMessage(source, prehashed, options.maxLegacyBytes);
  return signMinisign(privateKey, message, options);
}

/**
 * {@link verifyMinisign} over a stream of chunks (e.g. `fs.createReadStream(path)`). The
 * signature is parsed and its key id checked before the file is read, so a wrong key fails fast;
 * the checks then run in minisign's order (file signature, then trusted comment).
 *
 * @example
 * ```ts
 * const result = await verifyMinisignStream(pubText, sigText, createReadStream(path));
 * ```
 */
export async function verifyMinisignStream(
  publicKey: MinisignPublicKeyInput,
  signature: string | Uint8Array | MinisignSignature,
  source: AsyncIterable<Uint8Array>,
  options: MinisignVerifyOptions & MinisignStreamOptions = {},
): Promise<MinisignVerified> {
  const { key, sig } = checkBeforeMessage(publicKey, signature, options);
  const message = await readMessage(source, sig.prehashed, options.maxLegacyBytes);
  return checkMessage(key, sig, message);
}

function checkBeforeMessage(
  publicKeyInput: MinisignPublicKeyInput,
  signature: string | Uint8Array | MinisignSignature,
  options: MinisignVerifyOptions,
): { key: MinisignPublicKey; sig: MinisignSignature } {
  const key = toMinisignPublicKey(publicKeyInput);
  const sig = typeof signature === 'string' || signature instanceof Uint8Array ? parseMinisignSignature(signature) : signature;
  // downgrade: a verifier that demands prehashed signatures (minisign -H) refuses legacy ones.
  if (!sig.prehashed && options.allowLegacy === false) {
    throw new MinisignError('MINISIGN_ALGORITHM_UNSUPPORTED', 'The signature is a legacy (non-prehashed "Ed") signature and only prehashed ones are accepted. Re-sign without --legacy.');
  }
  // wrong key: minisign refuses a signature whose key id is not the public key's, before any math.
  if (!Buffer.from(sig.keyId).equals(key.keyId)) {
    throw new MinisignError(
      'MINISIGN_KEY_MISMATCH',
      `The signature was made by key ${formatMinisignKeyId(sig.keyId)} but the public key is ${formatMinisignKeyId(key.keyId)}. Verify with the signer's public key.`,
    );
  }
  return { key, sig };
}

function toMinisignPublicKey(input: MinisignPublicKeyInput): MinisignPublicKey {
  if (typeof input === 'string' || input instanceof Uint8Array) return parseMinisignPublicKey(input);
  if (input instanceof Ed25519PublicKey) return { keyId: defaultMinisignKeyId(input), publicKey: input };
  checkKeyId(input.keyId);
  return input;
}

function signedBytes(message: MinisignMessage, prehashed: boolean): Uint8Array {
  if (message instanceof Uint8Array) return prehashed ? minisignPrehash(message) : message;
  if (!prehashed) {
    throw new MinisignError('MINISIGN_ALGORITHM_UNSUPPORTED', 'A legacy ("Ed") signature covers the whole file, not its digest. Pass the file\'s bytes, or use the prehashed mode.');
  }
  if (message.prehash.length !== MINISIGN_PREHASH_LENGTH) {
    throw new TypeError(`A minisign prehash is BLAKE2b-512: ${MINISIGN_PREHASH_LENGTH} bytes, got ${message.prehash.length}.`);
  }
  return message.prehash;
}

async function readMessage(source: AsyncIterable<Uint8Array>, prehashed: boolean, maxLegacyBytes = MINISIGN_LEGACY_MAX_BYTES): Promise<MinisignMessage> {
  if (prehashed) {
    const hash = createHash('blake2b512');
    for await (const chunk of source) hash.update(asChunk(chunk));
    return { prehash: new Uint8Array(hash.digest()) };
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += asChunk(chunk).length;
    // memory exhaustion: a legacy signature needs the whole file in memory; cap it.
    if (total > maxLegacyBytes) {
      throw new MinisignError(
        'MINISIGN_ALGORITHM_UNSUPPORTED',
        `Legacy ("Ed") minisign signatures need the whole file in memory; drover handles them for files up to ${maxLegacyBytes} bytes. Sign with the prehashed mode (the default) instead.`,
      );
    }
    // A copy: a source may reuse one buffer for every chunk (readFileChunks does), and keeping
    // its views would sign or verify the last chunk repeated instead of the file.
    chunks.push(Uint8Array.from(chunk));
  }
  return new Uint8Array(Buffer.concat(chunks));
}

function asChunk(chunk: unknown): Uint8Array {
  // A stream opened with an encoding yields strings, which would hash different bytes.
  if (!(chunk instanceof Uint8Array)) throw new TypeError('The file stream must yield bytes; open it without an encoding.');
  return chunk;
}

function defaultTrustedComment(options: MinisignSignOptions, prehashed: boolean): string {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  // A file name may hold control characters; they must not break the one-line comment.
  // eslint-disable-next-line no-control-regex
  const file = options.fileName === undefined ? '' : `\tfile:${options.fileName.replace(/[\u0000-\u001f\u007f]/g, '_')}`;
  return `timestamp:${timestamp}${file}${prehashed ? '\thashed' : ''}`;
}

function checkComment(comment: string, maxBytes: number, which: 'trusted' | 'untrusted'): void {
  const code = which === 'trusted' ? 'MINISIGN_TRUSTED_COMMENT_INVALID' : 'MINISIGN_SIGNATURE_MALFORMED';
  // A newline would end the line early and let the rest pose as another field; minisign asserts the same.
  if (/[\r\n\0]/.test(comment)) {
    throw new MinisignError(code, `The ${which} comment must be one line without carriage returns or NUL bytes.`);
  }
  if (utf8(comment).length > maxBytes) {
    throw new MinisignError(code, `The ${which} comment is longer than minisign's limit of ${maxBytes} bytes. Shorten it.`);
  }
}

function checkKeyId(keyId: Uint8Array): void {
  if (keyId.length !== MINISIGN_KEY_ID_LENGTH) {
    throw new MinisignError('MINISIGN_KEY_INVALID', `A minisign key id is ${MINISIGN_KEY_ID_LENGTH} bytes, got ${keyId.length}.`);
  }
}

function splitLines(bytes: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i += 1) {
    if (bytes[i] === 0x0a) {
      lines.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  lines.push(bytes.subarray(start));
  return lines;
}

function trimTrailingEmpty(lines: Uint8Array[]): Uint8Array[] {
  let end = lines.length;
  while (end > 0 && stripCr(lines[end - 1] ?? new Uint8Array()).length === 0) end -= 1;
  return lines.slice(0, end);
}

// minisign reads lines with fgets and trims CR/LF, so a file saved with CRLF endings still verifies.
function stripCr(line: Uint8Array): Uint8Array {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, line.length - 1) : line;
}

function startsWith(line: Uint8Array, prefix: string): boolean {
  return latin1(line.subarray(0, prefix.length)) === prefix;
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
