import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromBase64, toBase64, utf8 } from './bytes.js';
import { Ed25519PrivateKey, tweetnaclEd25519 } from './ed25519.js';
import { MinisignError } from './errors.js';
import { readFileChunks } from './file-chunks.js';
import {
  MINISIGN_TRUSTED_COMMENT_MAX_BYTES,
  defaultMinisignKeyId,
  encodeMinisignPublicKey,
  formatMinisignKeyId,
  minisignPrehash,
  parseMinisignPublicKey,
  parseMinisignSignature,
  signMinisign,
  signMinisignStream,
  verifyMinisign,
  verifyMinisignStream,
} from './minisign.js';

// Made by the real minisign 0.11: `minisign -G -W`, then `minisign -Sm msg.txt -t 'drover fixture prehashed'`
// and `minisign -Slm msg.txt -t 'drover fixture legacy'`. They pin the format independently of this code.
const fixture = {
  message: utf8('drover minisign fixture\n'),
  publicKey: 'untrusted comment: minisign public key AB0AF8E984DD44CD\nRWTNRN2E6fgKq/2lQJsn/yb9DWHPmj3UjckPI1OzpnK383JOl6v0u894\n',
  prehashed:
    'untrusted comment: signature from minisign secret key\n' +
    'RUTNRN2E6fgKq1is6LCRSnfNqCbXSr5Q5RVP6Q+EpvfWexc4XRe7CEATKlzS6suPj1hkw1fw3K45Ov8NcrEYoxJm/vsDonwKjQg=\n' +
    'trusted comment: drover fixture prehashed\n' +
    '7+QKFOVoBNqt+ZsNM5o8thBu+ymJq7QQUqcycFx28hU6/Rsf+SW3EFHd0YbqRe1WFbkp9fGkl0d3cg2stqlSCQ==\n',
  legacy:
    'untrusted comment: signature from minisign secret key\n' +
    'RWTNRN2E6fgKq+eN67NNru0sBVHoRx9QqI1eLYLpSKY4tA6j2SzrjH274Wi376bOrzPTHZZu2vW4fBimspbfFFlDIf8dadhmRwk=\n' +
    'trusted comment: drover fixture legacy\n' +
    'Klg2yP7kaOXzdOE9Ei4etBEuy0LtQpaynPw2zW0HU3wxA3lYMCh4F/kAtYPGhoWwHCwV0L6RmQhiKk28soVDCw==\n',
};

const key = new Ed25519PrivateKey(new Uint8Array(32).fill(7));
const otherKey = new Ed25519PrivateKey(new Uint8Array(32).fill(9));
const file = utf8('agent v1.2.3 artifact bytes\n');

function expectMinisignError(action: () => unknown, code: string): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(MinisignError);
  expect((caught as MinisignError).code).toBe(code);
}

async function expectMinisignRejection(promise: Promise<unknown>, code: string): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(MinisignError);
  expect((error as MinisignError).code).toBe(code);
}

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const copy = new Uint8Array(bytes);
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
}

function lines(text: string): string[] {
  return text.split('\n');
}

function chunks(bytes: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

describe('minisign files made by the real minisign', () => {
  it('reads the public key and its key id as minisign prints it', () => {
    const parsed = parseMinisignPublicKey(fixture.publicKey);
    expect(formatMinisignKeyId(parsed.keyId)).toBe('AB0AF8E984DD44CD');
    // The bare base64 line (what `minisign -P` takes) is the same key.
    const bare = parseMinisignPublicKey(lines(fixture.publicKey)[1] ?? '');
    expect(bare.publicKey.equals(parsed.publicKey)).toBe(true);
    // Re-encoding gives back minisign's own file, byte for byte.
    expect(encodeMinisignPublicKey(parsed.publicKey, parsed.keyId)).toBe(fixture.publicKey);
  });

  it('verifies prehashed and legacy signatures and returns the trusted comment', () => {
    const prehashed = verifyMinisign(fixture.publicKey, fixture.prehashed, fixture.message);
    expect(prehashed).toMatchObject({ trustedComment: 'drover fixture prehashed', prehashed: true, keyIdHex: 'AB0AF8E984DD44CD' });
    const legacy = verifyMinisign(fixture.publicKey, fixture.legacy, fixture.message);
    expect(legacy).toMatchObject({ trustedComment: 'drover fixture legacy', prehashed: false });
  });

  it('refuses the fixture with one byte of the file flipped', () => {
    expectMinisignError(() => verifyMinisign(fixture.publicKey, fixture.prehashed, flip(fixture.message, 3)), 'MINISIGN_SIGNATURE_INVALID');
    expectMinisignError(() => verifyMinisign(fixture.publicKey, fixture.legacy, flip(fixture.message, 3)), 'MINISIGN_SIGNATURE_INVALID');
  });

  it('refuses legacy signatures when only prehashed ones are allowed (minisign -H)', () => {
    expectMinisignError(() => verifyMinisign(fixture.publicKey, fixture.legacy, fixture.message, { allowLegacy: false }), 'MINISIGN_ALGORITHM_UNSUPPORTED');
    expect(verifyMinisign(fixture.publicKey, fixture.prehashed, fixture.message, { allowLegacy: false }).prehashed).toBe(true);
  });

  it('accepts CRLF line endings, as minisign does', () => {
    const crlf = (text: string): string => text.replace(/\n/g, '\r\n');
    expect(verifyMinisign(crlf(fixture.publicKey), crlf(fixture.prehashed), fixture.message).trustedComment).toBe('drover fixture prehashed');
  });
});

describe('drover-made minisign signatures', () => {
  it('round-trips in prehashed (default) and legacy mode', () => {
    const pub = encodeMinisignPublicKey(key.publicKey);
    const prehashed = signMinisign(key, file, { trustedComment: 'release 1.2.3' });
    expect(parseMinisignSignature(prehashed).algorithm).toBe('ED');
    expect(verifyMinisign(pub, prehashed, file)).toMatchObject({ trustedComment: 'release 1.2.3', prehashed: true });
    const legacy = signMinisign(key, file, { prehashed: false, trustedComment: 'release 1.2.3' });
    expect(parseMinisignSignature(legacy).algorithm).toBe('Ed');
    expect(verifyMinisign(pub, legacy, file)).toMatchObject({ trustedComment: 'release 1.2.3', prehashed: false });
  });

  it('signs with pure Ed25519 over BLAKE2b-512 of the file, checked by the second implementation', () => {
    const sig = parseMinisignSignature(signMinisign(key, file));
    expect(sig.algorithm).toBe('ED');
    expect(tweetnaclEd25519.verify(key.publicKey.raw, minisignPrehash(file), sig.signature)).toBe(true);
    const global = Buffer.concat([sig.signature, sig.trustedCommentBytes]);
    expect(tweetnaclEd25519.verify(key.publicKey.raw, global, sig.globalSignature)).toBe(true);
  });

  it('writes minisign-shaped files with the derived key id and default comments', () => {
    const keyId = defaultMinisignKeyId(key.publicKey);
    expect(Buffer.from(keyId).toString('hex')).toBe(createHash('sha256').update(key.publicKey.raw).digest('hex').slice(0, 16));
    expect(toBase64(keyId)).toBe(toBase64(fromBase64(lines(encodeMinisignPublicKey(key.publicKey))[1] ?? '')?.subarray(2, 10) ?? new Uint8Array()));
    expect(lines(encodeMinisignPublicKey(key.publicKey))[0]).toBe(`untrusted comment: minisign public key ${formatMinisignKeyId(keyId)}`);
    const text = signMinisign(key, file, { fileName: 'agent.tar.gz', timestamp: 1700000000 });
    expect(lines(text)).toEqual([
      `untrusted comment: signature from drover key ${formatMinisignKeyId(keyId)}`,
      expect.stringMatching(/^[A-Za-z0-9+/]{99}=$/) as unknown as string,
      'trusted comment: timestamp:1700000000\tfile:agent.tar.gz\thashed',
      expect.stringMatching(/^[A-Za-z0-9+/]{86}==$/) as unknown as string,
      '',
    ]);
    expect(lines(signMinisign(key, file, { prehashed: false, timestamp: 1 }))[2]).toBe('trusted comment: timestamp:1');
    // A control character in a file name cannot split the comment line.
    expect(lines(signMinisign(key, file, { fileName: 'a\nb', timestamp: 1 }))[2]).toBe('trusted comment: timestamp:1\tfile:a_b\thashed');
  });

  it('verifies against a drover public key with the derived key id', () => {
    expect(verifyMinisign(key.publicKey, signMinisign(key, file), file).prehashed).toBe(true);
  });

  it('accepts a digest computed elsewhere for prehashed signatures only', () => {
    const text = signMinisign(key, { prehash: minisignPrehash(file) });
    expect(verifyMinisign(key.publicKey, text, file).prehashed).toBe(true);
    expect(verifyMinisign(key.publicKey, text, { prehash: minisignPrehash(file) }).prehashed).toBe(true);
    expectMinisignError(() => signMinisign(key, { prehash: minisignPrehash(file) }, { prehashed: false }), 'MINISIGN_ALGORITHM_UNSUPPORTED');
    const legacy = signMinisign(key, file, { prehashed: false });
    expectMinisignError(() => verifyMinisign(key.publicKey, legacy, { prehash: minisignPrehash(file) }), 'MINISIGN_ALGORITHM_UNSUPPORTED');
  });

  it('refuses a wrong key: another key id, or the same key id with another key', () => {
    const text = signMinisign(key, file);
    expectMinisignError(() => verifyMinisign(otherKey.publicKey, text, file), 'MINISIGN_KEY_MISMATCH');
    const impostor = { keyId: defaultMinisignKeyId(key.publicKey), publicKey: otherKey.publicKey };
    expectMinisignError(() => verifyMinisign(impostor, text, file), 'MINISIGN_SIGNATURE_INVALID');
  });

  it('refuses a tampered trusted comment', () => {
    const text = signMinisign(key, file, { trustedComment: 'timestamp:1700000000\tfile:agent-1.2.3.tar.gz' });
    const tampered = text.replace('agent-1.2.3', 'agent-9.9.9');
    expect(tampered).not.toBe(text);
    expectMinisignError(() => verifyMinisign(key.publicKey, tampered, file), 'MINISIGN_TRUSTED_COMMENT_INVALID');
  });

  it('refuses any single flipped bit in the file', () => {
    const text = signMinisign(key, file);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: file.length - 1 }), fc.integer({ min: 0, max: 7 }), (index, bit) => {
        const copy = new Uint8Array(file);
        copy[index] = (copy[index] ?? 0) ^ (1 << bit);
        expectMinisignError(() => verifyMinisign(key.publicKey, text, copy), 'MINISIGN_SIGNATURE_INVALID');
      }),
    );
  });

  it('refuses comments minisign cannot represent', () => {
    expectMinisignError(() => signMinisign(key, file, { trustedComment: 'a\nb' }), 'MINISIGN_TRUSTED_COMMENT_INVALID');
    expectMinisignError(() => signMinisign(key, file, { trustedComment: 'a\rb' }), 'MINISIGN_TRUSTED_COMMENT_INVALID');
    expectMinisignError(() => signMinisign(key, file, { trustedComment: 'x'.repeat(MINISIGN_TRUSTED_COMMENT_MAX_BYTES + 1) }), 'MINISIGN_TRUSTED_COMMENT_INVALID');
    expectMinisignError(() => signMinisign(key, file, { untrustedComment: 'a\nb' }), 'MINISIGN_SIGNATURE_MALFORMED');
    // The longest comment minisign accepts round-trips.
    const longest = 'x'.repeat(MINISIGN_TRUSTED_COMMENT_MAX_BYTES);
    expect(verifyMinisign(key.publicKey, signMinisign(key, file, { trustedComment: longest }), file).trustedComment).toBe(longest);
  });
});

describe('malformed minisign input', () => {
  const good = signMinisign(key, file, { trustedComment: 'ok' });
  const [untrusted = '', sigLine = '', trusted = '', globalLine = ''] = lines(good);
  const join = (...parts: string[]): string => `${parts.join('\n')}\n`;

  it.each([
    ['missing lines', join(untrusted, sigLine, trusted), 'MINISIGN_SIGNATURE_MALFORMED'],
    ['content after the global signature', join(untrusted, sigLine, trusted, globalLine, 'extra'), 'MINISIGN_SIGNATURE_MALFORMED'],
    ['no untrusted comment prefix', join('comment: x', sigLine, trusted, globalLine), 'MINISIGN_SIGNATURE_MALFORMED'],
    ['untrusted comment too long', join(`untrusted comment: ${'x'.repeat(1004)}`, sigLine, trusted, globalLine), 'MINISIGN_SIGNATURE_MALFORMED'],
    ['signature not base64', join(untrusted, `${sigLine.slice(0, -4)}!!!=`, trusted, globalLine), 'MINISIGN_SIGNATURE_MALFORMED'],
    ['signature truncated', join(untrusted, sigLine.slice(0, -4), trusted, globalLine), 'MINISIGN_SIGNATURE_MALFORMED'],
    ['unknown algorithm', join(untrusted, toBase64(new Uint8Array([0x58, 0x78, ...(fromBase64(sigLine) ?? new Uint8Array()).subarray(2)])), trusted, globalLine), 'MINISIGN_ALGORITHM_UNSUPPORTED'],
    ['no trusted comment prefix', join(untrusted, sigLine, 'comment: ok', globalLine), 'MINISIGN_TRUSTED_COMMENT_INVALID'],
    ['trusted comment with an inner CR', join(untrusted, sigLine, 'trusted comment: o\rk', globalLine), 'MINISIGN_TRUSTED_COMMENT_INVALID'],
    ['trusted comment too long', join(untrusted, sigLine, `trusted comment: ${'x'.repeat(8174)}`, globalLine), 'MINISIGN_TRUSTED_COMMENT_INVALID'],
    ['global signature not base64', join(untrusted, sigLine, trusted, 'AAAA'), 'MINISIGN_SIGNATURE_MALFORMED'],
    ['empty file', '', 'MINISIGN_SIGNATURE_MALFORMED'],
  ])('refuses a signature with %s', (_name, text, code) => {
    expectMinisignError(() => parseMinisignSignature(text), code);
    expectMinisignError(() => verifyMinisign(key.publicKey, text, file), code);
  });

  const pub = encodeMinisignPublicKey(key.publicKey);
  const [pubComment = '', pubLine = ''] = lines(pub);

  it.each([
    ['empty text', '', 'MINISIGN_KEY_INVALID'],
    ['a PEM key', key.publicKey.toPem(), 'MINISIGN_KEY_INVALID'],
    ['no comment prefix', `comment\n${pubLine}\n`, 'MINISIGN_KEY_INVALID'],
    ['a truncated key', `${pubComment}\n${pubLine.slice(0, -4)}\n`, 'MINISIGN_KEY_INVALID'],
    ['three lines', `${pubComment}\n${pubLine}\n${pubLine}\n`, 'MINISIGN_KEY_INVALID'],
    ['another algorithm', `${pubComment}\n${toBase64(new Uint8Array([0x45, 0x44, ...(fromBase64(pubLine) ?? new Uint8Array()).subarray(2)]))}\n`, 'MINISIGN_ALGORITHM_UNSUPPORTED'],
  ])('refuses a public key with %s', (_name, text, code) => {
    expectMinisignError(() => parseMinisignPublicKey(text), code);
  });

  it('refuses a key id of the wrong length', () => {
    expectMinisignError(() => encodeMinisignPublicKey(key.publicKey, new Uint8Array(7)), 'MINISIGN_KEY_INVALID');
    expectMinisignError(() => signMinisign(key, file, { keyId: new Uint8Array(9) }), 'MINISIGN_KEY_INVALID');
  });
});

describe('streaming', () => {
  const big = new Uint8Array(300_000).map((_, i) => (i * 31) & 0xff);

  it('signs and verifies a stream the same way as the bytes', async () => {
    const text = await signMinisignStream(key, chunks(big, 65_536), { trustedComment: 'stream' });
    expect(verifyMinisign(key.publicKey, text, big).trustedComment).toBe('stream');
    expect((await verifyMinisignStream(key.publicKey, text, chunks(big, 1000))).prehashed).toBe(true);
    await expectMinisignRejection(verifyMinisignStream(key.publicKey, text, chunks(flip(big, 123_456), 4096)), 'MINISIGN_SIGNATURE_INVALID');
    const legacy = await signMinisignStream(key, chunks(big, 65_536), { prehashed: false });
    expect((await verifyMinisignStream(key.publicKey, legacy, chunks(big, 7777))).prehashed).toBe(false);
  });

  it('refuses a legacy file above the size limit instead of buffering it', async () => {
    await expectMinisignRejection(signMinisignStream(key, chunks(big, 65_536), { prehashed: false, maxLegacyBytes: 100_000 }), 'MINISIGN_ALGORITHM_UNSUPPORTED');
    const legacy = signMinisign(key, big, { prehashed: false });
    await expectMinisignRejection(verifyMinisignStream(key.publicKey, legacy, chunks(big, 65_536), { maxLegacyBytes: 100_000 }), 'MINISIGN_ALGORITHM_UNSUPPORTED');
  });

  // readFileChunks (this package's own file reader) hands out views of ONE reused buffer. A legacy
  // signature buffers the chunks: without a copy every view showed the last read, so drover signed
  // and checked other bytes than the file's, and an edit to any earlier chunk went unnoticed.
  it('legacy mode copies chunks from a source that reuses its buffer (readFileChunks)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drover-minisign-'));
    try {
      const path = join(dir, 'artifact');
      const bytes = new Uint8Array(randomBytes(10_000)); // no period: every chunk differs
      await writeFile(path, bytes);
      const reused = (): AsyncGenerator<Uint8Array> => readFileChunks(path, { chunkBytes: 1024 });
      // A legacy signature made the ordinary way (or by minisign -l) verifies from the file.
      const legacy = signMinisign(key, bytes, { prehashed: false });
      expect((await verifyMinisignStream(key.publicKey, legacy, reused())).prehashed).toBe(false);
      // What drover signs from the file is a signature over the file's bytes.
      const streamed = await signMinisignStream(key, reused(), { prehashed: false, trustedComment: 't' });
      expect(verifyMinisign(key.publicKey, streamed, bytes).prehashed).toBe(false);
      // And a byte changed in the first chunk is refused.
      await writeFile(path, flip(bytes, 10));
      await expectMinisignRejection(verifyMinisignStream(key.publicKey, streamed, reused()), 'MINISIGN_SIGNATURE_INVALID');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('checks the key id before reading the stream', async () => {
    let read = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      read = true;
      yield await Promise.resolve(file);
    }
    await expectMinisignRejection(verifyMinisignStream(otherKey.publicKey, signMinisign(key, file), source()), 'MINISIGN_KEY_MISMATCH');
    expect(read).toBe(false);
  });
});
