import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  Ed25519PrivateKey,
  Ed25519PublicKey,
  MINISIGN_LEGACY_MAX_BYTES,
  MinisignError,
  defaultMinisignKeyId,
  encodeMinisignPublicKey,
  formatMinisignKeyId,
  parseMinisignPublicKey,
  signMinisignStream,
  verifyMinisignStream,
} from '@drover/protocol';
import type { MinisignPublicKey } from '@drover/protocol';
import type { Command } from '../cli.js';
import { flag, optionalString, requireString } from '../cli.js';
import { CliError } from '../errors.js';
import { readInput, writeFileAtomic } from '../fs-atomic.js';
import { openSigningKeys } from '../signing-keys.js';
import type { OpenKeys } from '../signing-keys.js';

const SIG_SUFFIX = '.minisig';

export const minisignSignCommand: Command = {
  usage: '--key (NAME.key | pkcs11:URI | awskms:NAME) [--legacy] [--trusted-comment TEXT] [--untrusted-comment TEXT] [--sig OUT] FILE',
  description:
    'The signature is prehashed (BLAKE2b-512, minisign\'s "ED", the default of minisign >= 0.10) and the file is streamed.\n' +
    `--legacy signs the raw file ("Ed") for older verifiers; it holds the file in memory, so it is refused above ${MINISIGN_LEGACY_MAX_BYTES} bytes.\n` +
    'The minisign key id of a drover key is the first 8 bytes of SHA-256 of its public key; `drover minisign pubkey` writes the\n' +
    'matching public key file.',
  options: {
    key: { type: 'string', arg: 'NAME.key', help: 'drover private key (PKCS#8 PEM from `drover keygen`), or a pkcs11: URI of a key in an HSM, or an awskms: name of a key in AWS KMS (not with --legacy beyond 4 KiB: KMS signs at most 4096 bytes).' },
    legacy: { type: 'boolean', help: 'Sign the raw file ("Ed") instead of its BLAKE2b-512 digest.' },
    'trusted-comment': { type: 'string', arg: 'TEXT', help: 'Signed one-line comment (default: timestamp:<unix>\\tfile:<name>[\\thashed]).' },
    'untrusted-comment': { type: 'string', arg: 'TEXT', help: 'Unsigned one-line comment (default: signature from drover key <KEYID>).' },
    sig: { type: 'string', arg: 'OUT', help: 'Where to write the signature (default: FILE.minisig).' },
  },
  arguments: ['<FILE>'],
  async run({ values, positionals, io }) {
    const file = positionals[0] ?? '';
    const keySpec = requireString(values, 'key');
    const prehashed = !flag(values, 'legacy');
    const sigPath = optionalString(values, 'sig') ?? `${file}${SIG_SUFFIX}`;
    const trustedComment = optionalString(values, 'trusted-comment');
    const untrustedComment = optionalString(values, 'untrusted-comment');
    const handle = await openInput(file);
    let minisig: string;
    let opened: OpenKeys | undefined;
    let publicKey: Ed25519PublicKey | undefined;
    try {
      // Fail before reading a file the legacy mode would refuse anyway.
      if (!prehashed && (await handle.stat()).size > MINISIGN_LEGACY_MAX_BYTES) {
        throw new MinisignError(
          'MINISIGN_ALGORITHM_UNSUPPORTED',
          `${file} is larger than ${MINISIGN_LEGACY_MAX_BYTES} bytes, the limit for legacy ("Ed") signatures, which hold the whole file in memory. Sign without --legacy.`,
        );
      }
      opened = await openSigningKeys([keySpec], io.env);
      const [key] = opened.keys;
      if (key === undefined) throw new CliError('USAGE_ERROR', '--key is required.');
      publicKey = key.publicKey;
      minisig = await signMinisignStream(key, handle.createReadStream({ autoClose: false }), {
        prehashed,
        fileName: basename(file),
        ...(trustedComment === undefined ? {} : { trustedComment }),
        ...(untrustedComment === undefined ? {} : { untrustedComment }),
      });
    } finally {
      opened?.close();
      await handle.close();
    }
    // A reader (or a verifier racing the release job) sees the old signature or the new one, never half of one.
    await writeFileAtomic(sigPath, minisig);
    const keyId = formatMinisignKeyId(defaultMinisignKeyId(publicKey));
    return {
      data: { file, signature: sigPath, keyId, prehashed },
      text: `Signed ${file} with key ${keyId} (${prehashed ? 'prehashed' : 'legacy'}): ${sigPath}`,
    };
  },
};

export const minisignVerifyCommand: Command = {
  usage: '--pub PUBKEY_FILE [--sig FILE.minisig] [--prehashed-only] FILE',
  description:
    'PUBKEY_FILE is a minisign public key file (minisign -G, `drover minisign pubkey`) or a drover .pub PEM.\n' +
    'Exit 0 and the trusted comment when the file and the trusted comment are both signed by that key; exit 1 and\n' +
    'the reason (MINISIGN_SIGNATURE_INVALID, MINISIGN_KEY_MISMATCH, ...) otherwise.',
  options: {
    pub: { type: 'string', arg: 'PUBKEY_FILE', help: 'minisign public key file, or a drover public key PEM.' },
    sig: { type: 'string', arg: 'FILE.minisig', help: 'Signature file (default: FILE.minisig).' },
    'prehashed-only': { type: 'boolean', help: 'Refuse legacy ("Ed") signatures, like `minisign -V -H`.' },
  },
  arguments: ['<FILE>'],
  async run({ values, positionals }) {
    const file = positionals[0] ?? '';
    const publicKey = readPublicKey(await readInput(requireString(values, 'pub'), 'Public key'));
    const sigPath = optionalString(values, 'sig') ?? `${file}${SIG_SUFFIX}`;
    const signature = await readInput(sigPath, 'Signature');
    const handle = await openInput(file);
    let result;
    try {
      result = await verifyMinisignStream(publicKey, signature, handle.createReadStream({ autoClose: false }), {
        allowLegacy: !flag(values, 'prehashed-only'),
      });
    } finally {
      await handle.close();
    }
    return {
      data: { verified: true, file, signature: sigPath, keyId: result.keyIdHex, prehashed: result.prehashed, trustedComment: result.trustedComment },
      text: `Signature and comment signature verified\nTrusted comment: ${printable(result.trustedComment)}`,
    };
  },
};

export const minisignPubkeyCommand: Command = {
  usage: '(--pub NAME.pub | --key NAME.key) [--out NAME.minisign.pub]',
  description: 'Prints the key to stdout unless --out is given. The key id is the first 8 bytes of SHA-256 of the public key.',
  options: {
    pub: { type: 'string', arg: 'NAME.pub', help: 'drover public key PEM.' },
    key: { type: 'string', arg: 'NAME.key', help: 'drover private key PEM (only its public half is written).' },
    out: { type: 'string', arg: 'FILE', help: 'Write the minisign public key here (replaced atomically).' },
  },
  async run({ values }) {
    const pubPath = optionalString(values, 'pub');
    const keyPath = optionalString(values, 'key');
    if ((pubPath === undefined) === (keyPath === undefined)) {
      throw new CliError('USAGE_ERROR', 'Pass exactly one of --pub NAME.pub or --key NAME.key.');
    }
    const publicKey =
      pubPath === undefined
        ? Ed25519PrivateKey.from(await readInput(keyPath ?? '', 'Private key')).publicKey
        : Ed25519PublicKey.from(await readInput(pubPath, 'Public key'));
    const text = encodeMinisignPublicKey(publicKey);
    const keyId = formatMinisignKeyId(defaultMinisignKeyId(publicKey));
    const out = optionalString(values, 'out');
    if (out !== undefined) await writeFileAtomic(out, text);
    return {
      data: { keyId, publicKey: text, ...(out === undefined ? {} : { file: out }) },
      text: out === undefined ? text : `Wrote minisign public key ${keyId}: ${out}`,
    };
  },
};

/** A minisign public key file, or a drover PEM (whose minisign key id is derived from the key). */
function readPublicKey(bytes: Buffer): MinisignPublicKey | Ed25519PublicKey {
  const text = bytes.toString('utf8');
  return text.includes('-----BEGIN') ? Ed25519PublicKey.from(text) : parseMinisignPublicKey(bytes);
}

async function openInput(path: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError('FILE_NOT_FOUND', `File ${path} does not exist. Check the path.`, { cause: error });
    throw error;
  }
  if (!(await handle.stat()).isFile()) {
    await handle.close();
    throw new CliError('USAGE_ERROR', `${path} is not a regular file; pass a file.`);
  }
  return handle;
}

// terminal injection: the trusted comment is attacker-chosen until verified and arbitrary text
// after; escape control characters so it cannot move the cursor or forge lines.
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
