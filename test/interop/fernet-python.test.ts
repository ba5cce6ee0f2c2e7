// Interop with the reference peer: Python's `cryptography` (what CIRISManager uses to store service
// tokens). Every case crosses the language boundary in at least one direction. Data reaches Python
// as JSON on stdin with payloads in base64; the script itself is a constant, so nothing a test
// generates is ever parsed as code.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { skipWhenMissing } from '../helpers/interop.js';
import { SecretError } from '@drover/protocol';
import { Fernet, deriveCirisEncryptionKey, generateFernetKey } from '@drover/protocol/internal';

const PYTHON_SCRIPT = String.raw`
import base64, json, sys
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

def unb64(text):
    return base64.b64decode(text, validate=True)

def b64(data):
    return base64.b64encode(data).decode("ascii")

def run(req):
    op = req["op"]
    if op == "generate_key":
        return {"key": Fernet.generate_key().decode("ascii")}
    if op == "encrypt":
        f = Fernet(unb64(req["key"]))
        data = unb64(req["data"])
        if "iv" in req:
            # Private, but the only way to fix the IV; cryptography's own tests use it.
            token = f._encrypt_from_parts(data, req["time"], unb64(req["iv"]))
        elif "time" in req:
            token = f.encrypt_at_time(data, req["time"])
        else:
            token = f.encrypt(data)
        return {"token": b64(token)}
    if op == "decrypt":
        f = Fernet(unb64(req["key"]))
        token = unb64(req["token"])
        try:
            if "ttl" in req:
                data = f.decrypt_at_time(token, req["ttl"], req["time"])
            else:
                data = f.decrypt(token)
        except InvalidToken:
            return {"error": "InvalidToken"}
        return {"data": b64(data)}
    if op == "derive":
        # Exactly CIRISManager's ciris_manager/crypto.py TokenEncryption._get_cipher.
        password = unb64(req["password"]).decode("utf-8")
        salt = unb64(req["salt"]).decode("utf-8")
        kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt.encode(), iterations=100000)
        return {"key": base64.urlsafe_b64encode(kdf.derive(password.encode())).decode("ascii")}
    raise ValueError("unknown op " + op)

json.dump([run(req) for req in json.load(sys.stdin)], sys.stdout)
`;

interface PythonPeer {
  executable: string;
  version: string;
}

// The first interpreter that can import cryptography: python3 on PATH (a developer's pyenv or
// venv), then Debian's /usr/bin/python3 with python3-cryptography, which CI installs.
function findPython(): PythonPeer | { reason: string } {
  const reasons: string[] = [];
  for (const executable of ['python3', '/usr/bin/python3']) {
    const probe = spawnSync(executable, ['-c', 'import cryptography; print(cryptography.__version__)'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    if (probe.status === 0) return { executable, version: probe.stdout.trim() };
    const why = probe.error?.message ?? probe.stderr.trim().split('\n').pop() ?? `exit ${String(probe.status)}`;
    reasons.push(`${executable}: ${why}`);
  }
  return { reason: reasons.join('; ') };
}

const found = findPython();
const python = 'executable' in found ? found : undefined;
if (python === undefined && 'reason' in found) {
  console.warn(
    `Skipping the Python Fernet interop suite: no python3 can import cryptography (${found.reason}). ` +
      'Install python3-cryptography (apt) or `pip install cryptography` to run it.',
  );
}

type PythonRequest =
  | { op: 'generate_key' }
  | { op: 'encrypt'; key: string; data: Uint8Array; time?: number; iv?: Uint8Array }
  | { op: 'decrypt'; key: string; token: string; ttl?: number; time?: number }
  | { op: 'derive'; password: string; salt: string };

interface PythonResponse {
  key?: string;
  token?: string;
  data?: string;
  error?: string;
}

const b64 = (data: Uint8Array | string): string =>
  (typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)).toString('base64');

/** Runs a batch of requests in one Python process (startup dominates), in order. */
function py(requests: PythonRequest[]): PythonResponse[] {
  if (python === undefined) throw new Error('no Python peer');
  const wire = requests.map((request) => {
    switch (request.op) {
      case 'generate_key':
        return request;
      case 'encrypt':
        return {
          ...request,
          key: b64(request.key),
          data: b64(request.data),
          ...(request.iv === undefined ? {} : { iv: b64(request.iv) }),
        };
      case 'decrypt':
        return { ...request, key: b64(request.key), token: b64(request.token) };
      case 'derive':
        return { op: request.op, password: b64(request.password), salt: b64(request.salt) };
    }
  });
  const result = spawnSync(python.executable, ['-c', PYTHON_SCRIPT], {
    input: JSON.stringify(wire),
    encoding: 'utf8',
    timeout: 25_000,
  });
  if (result.status !== 0) {
    throw new Error(`python failed (status ${String(result.status)}): ${result.stderr}`, { cause: result.error });
  }
  const responses = JSON.parse(result.stdout) as PythonResponse[];
  expect(responses).toHaveLength(requests.length);
  return responses;
}

function field(response: PythonResponse | undefined, name: 'key' | 'token' | 'data'): string {
  const value = response?.[name];
  if (value === undefined) throw new Error(`python returned no ${name}: ${JSON.stringify(response)}`);
  return value;
}

const fromB64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));
const pyToken = (response: PythonResponse | undefined): string => Buffer.from(field(response, 'token'), 'base64').toString('ascii');

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof SecretError ? error.code : `not a SecretError: ${String(error)}`;
  }
  return undefined;
}

const utf8 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'utf8'));

// Payloads around the AES block boundaries, plus text and binary. Plain Uint8Arrays, so toEqual
// compares them with what drover returns.
const payloads: Uint8Array[] = [
  new Uint8Array(0),
  utf8('hello'),
  new Uint8Array(randomBytes(15)),
  new Uint8Array(randomBytes(16)),
  new Uint8Array(randomBytes(17)),
  utf8('service token ünïcødé 🔑'),
  new Uint8Array(randomBytes(4096)),
];

const T0 = 1_704_067_200; // 2024-01-01T00:00:00Z, in seconds
const date = (seconds: number): Date => new Date(seconds * 1000);

describe.skipIf(skipWhenMissing(python === undefined))(`Fernet interop with Python cryptography ${python?.version ?? ''} (${python?.executable ?? 'none'})`, () => {
  it('drover decrypts what Python encrypts, byte for byte', () => {
    const key = generateFernetKey();
    const tokens = py(payloads.map((data) => ({ op: 'encrypt', key, data })));
    const fernet = new Fernet(key);
    payloads.forEach((data, index) => {
      const token = pyToken(tokens[index]);
      expect(token.startsWith('gAAAAA')).toBe(true);
      expect(fernet.decrypt(token)).toEqual(data);
    });
  });

  it('Python decrypts what drover encrypts, byte for byte', () => {
    const key = generateFernetKey();
    const fernet = new Fernet(key);
    const results = py(payloads.map((data) => ({ op: 'decrypt', key, token: fernet.encrypt(data) })));
    payloads.forEach((data, index) => {
      expect(fromB64(field(results[index], 'data'))).toEqual(data);
    });
  });

  it('drover and Python write the identical token for the same key, time and IV', () => {
    const key = generateFernetKey();
    const iv = new Uint8Array(randomBytes(16));
    const tokens = py(payloads.map((data) => ({ op: 'encrypt', key, data, time: T0, iv })));
    const fernet = new Fernet(key);
    payloads.forEach((data, index) => {
      expect(fernet.encrypt(data, { now: date(T0), iv })).toBe(pyToken(tokens[index]));
    });
  });

  it('a drover-generated key works in Python, and a Python-generated key works in drover', () => {
    const droverKey = generateFernetKey();
    const [generated, pythonEncrypted] = py([
      { op: 'generate_key' },
      { op: 'encrypt', key: droverKey, data: Buffer.from('from python') },
    ]);
    expect(new Fernet(droverKey).decryptText(pyToken(pythonEncrypted))).toBe('from python');

    const pythonKey = field(generated, 'key');
    expect(pythonKey).toMatch(/^[A-Za-z0-9_-]{43}=$/);
    const droverToken = new Fernet(pythonKey).encrypt('from drover');
    const [decrypted, encryptedAgain] = py([
      { op: 'decrypt', key: pythonKey, token: droverToken },
      { op: 'encrypt', key: pythonKey, data: Buffer.from('round two') },
    ]);
    expect(Buffer.from(field(decrypted, 'data'), 'base64').toString('utf8')).toBe('from drover');
    expect(new Fernet(pythonKey).decryptText(pyToken(encryptedAgain))).toBe('round two');
  });

  it('each side refuses a token under the wrong key and a token with a flipped byte', () => {
    const key = generateFernetKey();
    const otherKey = generateFernetKey();
    const droverToken = Buffer.from(new Fernet(key).encrypt('secret'), 'base64url');
    droverToken[30] = (droverToken[30] ?? 0) ^ 1;
    const [pythonToken, wrongKey, tampered] = py([
      { op: 'encrypt', key, data: Buffer.from('secret') },
      { op: 'decrypt', key: otherKey, token: new Fernet(key).encrypt('secret') },
      { op: 'decrypt', key, token: droverToken.toString('base64url') },
    ]);
    expect(wrongKey?.error).toBe('InvalidToken');
    expect(tampered?.error).toBe('InvalidToken');

    const bytes = Buffer.from(pyToken(pythonToken), 'base64url');
    bytes[30] = (bytes[30] ?? 0) ^ 1;
    expect(codeOf(() => new Fernet(key).decrypt(bytes.toString('base64url')))).toBe('FERNET_TOKEN_INVALID');
    expect(codeOf(() => new Fernet(otherKey).decrypt(pyToken(pythonToken)))).toBe('FERNET_TOKEN_INVALID');
  });

  it('with a ttl, Python refuses an old drover token and drover refuses an old Python token', () => {
    const key = generateFernetKey();
    const fernet = new Fernet(key);
    const droverToken = fernet.encrypt('aging', { now: date(T0) });
    const [pythonMade, atLimit, expired, skewOk, skewed] = py([
      { op: 'encrypt', key, data: Buffer.from('aging'), time: T0 },
      { op: 'decrypt', key, token: droverToken, ttl: 60, time: T0 + 60 },
      { op: 'decrypt', key, token: droverToken, ttl: 60, time: T0 + 61 },
      { op: 'decrypt', key, token: droverToken, ttl: 60, time: T0 - 60 },
      { op: 'decrypt', key, token: droverToken, ttl: 60, time: T0 - 61 },
    ]);
    expect(Buffer.from(field(atLimit, 'data'), 'base64').toString('utf8')).toBe('aging');
    expect(expired?.error).toBe('InvalidToken');
    expect(Buffer.from(field(skewOk, 'data'), 'base64').toString('utf8')).toBe('aging');
    expect(skewed?.error).toBe('InvalidToken');

    // The same boundaries on drover's side, for Python's token.
    const pythonToken = pyToken(pythonMade);
    expect(fernet.decryptText(pythonToken, { ttlSeconds: 60, now: date(T0 + 60) })).toBe('aging');
    expect(codeOf(() => fernet.decrypt(pythonToken, { ttlSeconds: 60, now: date(T0 + 61) }))).toBe('FERNET_TOKEN_EXPIRED');
    expect(fernet.decryptText(pythonToken, { ttlSeconds: 60, now: date(T0 - 60) })).toBe('aging');
    expect(codeOf(() => fernet.decrypt(pythonToken, { ttlSeconds: 60, now: date(T0 - 61) }))).toBe('FERNET_TOKEN_INVALID');
  });

  it('deriveCirisEncryptionKey equals CIRISManager\'s PBKDF2 derivation in Python', () => {
    const cases: [string, string][] = [
      ['test-secret-key-for-testing', 'test-salt-sixteen-chars-long'], // CIRISManager's own test values
      ['', 'sixteen-char-salt'],
      ['pässwörd', 'sälz-sixteen-chars'],
      ['密码-パスワード-🔑', '盐-ソルト-🧂-0123456789abcdef'],
      ['a'.repeat(200), 'e'.repeat(64)], // longer than SHA-256's block: HMAC hashes the key first
      ['line\nbreak\0nul', 'tab\tand\u00a0nbsp-salt'],
    ];
    // Random Unicode too (any code point, no lone surrogates: Python's str.encode would refuse those).
    const text = fc.string({ unit: 'binary', minLength: 0, maxLength: 40 });
    cases.push(...fc.sample(fc.tuple(text, text), { numRuns: 12, seed: 20240101 }));
    const results = py(cases.map(([password, salt]) => ({ op: 'derive', password, salt })));
    cases.forEach(([password, salt], index) => {
      expect(deriveCirisEncryptionKey(password, salt), JSON.stringify([password, salt])).toBe(field(results[index], 'key'));
    });
  });

  it('a derived key decrypts what Python encrypted under CIRISManager\'s derived key', () => {
    const [derived] = py([{ op: 'derive', password: 'manager-jwt-secret', salt: 'ciris-salt-0123456789' }]);
    const key = field(derived, 'key');
    const [stored] = py([{ op: 'encrypt', key, data: Buffer.from('agent-service-token') }]);
    const fernet = new Fernet(deriveCirisEncryptionKey('manager-jwt-secret', 'ciris-salt-0123456789'));
    expect(fernet.decryptText(pyToken(stored))).toBe('agent-service-token');
  });
});
