// A small AWS KMS peer for tests: a real HTTP server on 127.0.0.1:0 that speaks KMS's JSON 1.1
// protocol (POST /, X-Amz-Target: TrentService.<Operation>, application/x-amz-json-1.1), checks
// the SigV4 signature of every request against the one access key it knows (an implementation of
// its own on node:crypto, independent of the SDK's signer), signs with real keys it holds, and
// refuses what AWS documents that it refuses, with AWS's error names. What it does not model is
// listed in docs/operations.md ("Release keys in AWS KMS").
//
// Operations: GetPublicKey, Sign, DescribeKey, GenerateMac, VerifyMac. Key specs:
// ECC_NIST_EDWARDS25519 (ED25519_SHA_512, RAW), RSA_2048 (RSASSA_PKCS1_V1_5_SHA_256,
// RSASSA_PSS_SHA_256), ECC_NIST_P256 (ECDSA_SHA_256), HMAC_256 (GENERATE_VERIFY_MAC, HMAC_SHA_256;
// no public key) and SYMMETRIC_DEFAULT (ENCRYPT_DECRYPT, no public key).
import { createHash, createHmac, generateKeyPairSync, randomBytes, randomUUID, sign as cryptoSign, timingSafeEqual, constants } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type KmsPeerKeySpec = 'ECC_NIST_EDWARDS25519' | 'RSA_2048' | 'ECC_NIST_P256' | 'HMAC_256' | 'SYMMETRIC_DEFAULT';

/** A key the peer holds. */
export interface KmsPeerKey {
  keyId: string;
  arn: string;
  spec: KmsPeerKeySpec;
  enabled: boolean;
  /** DER SubjectPublicKeyInfo, as GetPublicKey returns it (empty for a symmetric key). */
  publicKeyDer: Buffer;
  /** The PEM of the public key, for `openssl pkeyutl -verify -pubin -inkey`. */
  publicKeyPem: string;
}

/** One request the peer accepted (signature valid), by operation and KeyId as sent. */
export interface KmsPeerCall {
  operation: string;
  keyId: string;
}

export interface KmsPeer {
  /** `http://127.0.0.1:PORT`, for DROVER_KMS_ENDPOINT / AWS_ENDPOINT_URL_KMS. */
  endpoint: string;
  region: string;
  account: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The environment a drover process needs to talk to this peer (endpoint, region, credentials). */
  env: Record<string, string>;
  /** Makes a key, optionally named by an alias (`alias/NAME`). */
  addKey(spec: KmsPeerKeySpec, options?: { alias?: string; enabled?: boolean }): KmsPeerKey;
  setEnabled(keyId: string, enabled: boolean): void;
  /** Key ids whose use the key policy denies (AccessDeniedException), as AWS does for a principal without kms:Sign. */
  deny: Set<string>;
  /** Requests whose signature checked out, in order. */
  calls: KmsPeerCall[];
  /** A misbehaving service: when true, each signature returned has one bit flipped. */
  corruptSignatures: boolean;
  close(): Promise<void>;
}

interface HeldKey extends KmsPeerKey {
  privateKey?: KeyObject;
  /** An HMAC key's secret: never leaves the peer, as in AWS. */
  macSecret?: Buffer;
}

class KmsRefusal extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const SIGNING_ALGORITHMS: Record<KmsPeerKeySpec, string[]> = {
  ECC_NIST_EDWARDS25519: ['ED25519_SHA_512', 'ED25519_PH_SHA_512'],
  RSA_2048: ['RSASSA_PKCS1_V1_5_SHA_256', 'RSASSA_PSS_SHA_256'],
  ECC_NIST_P256: ['ECDSA_SHA_256'],
  HMAC_256: [],
  SYMMETRIC_DEFAULT: [],
};
// MAC algorithms by key spec; AWS's HMAC_384 and HMAC_512 specs are not modelled.
const MAC_ALGORITHMS: Partial<Record<KmsPeerKeySpec, string[]>> = { HMAC_256: ['HMAC_SHA_256'] };
const ALL_MAC_ALGORITHMS = ['HMAC_SHA_224', 'HMAC_SHA_256', 'HMAC_SHA_384', 'HMAC_SHA_512'];
const MESSAGE_MAX = 4096; // bytes, Sign's limit on Message
const CLOCK_SKEW_MAX = 5 * 60_000; // ms: AWS refuses a request signed further from its clock

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest();

/**
 * Checks a request's SigV4 signature (AWS General Reference, "Create a signed AWS API request"):
 * rebuilds the canonical request and string to sign, derives the signing key from the secret and
 * compares signatures in constant time. Throws the KmsRefusal AWS answers with.
 */
function checkSigV4(request: IncomingMessage, body: Buffer, peer: { region: string; accessKeyId: string; secretAccessKey: string }, now: number): void {
  const authorization = request.headers.authorization;
  if (authorization === undefined) throw new KmsRefusal('MissingAuthenticationTokenException', 'Missing Authentication Token');
  const match = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/.exec(authorization);
  if (match === null) throw new KmsRefusal('IncompleteSignatureException', 'Authorization header requires Credential, SignedHeaders and Signature parameters.');
  const [, accessKeyId = '', date = '', region = '', service = '', signedHeaderList = '', signature = ''] = match;
  if (accessKeyId !== peer.accessKeyId) throw new KmsRefusal('UnrecognizedClientException', 'The security token included in the request is invalid.');
  const amzDate = request.headers['x-amz-date'];
  if (typeof amzDate !== 'string' || !/^\d{8}T\d{6}Z$/.test(amzDate) || !amzDate.startsWith(date)) {
    throw new KmsRefusal('IncompleteSignatureException', 'X-Amz-Date is missing, malformed or not the date of the credential scope.');
  }
  const signedAt = Date.parse(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  if (Math.abs(now - signedAt) > CLOCK_SKEW_MAX) throw new KmsRefusal('InvalidSignatureException', 'Signature expired: the request time is too far from the server time.');
  if (region !== peer.region || service !== 'kms') throw new KmsRefusal('InvalidSignatureException', `Credential should be scoped to a valid region and to the service kms.`);
  const signedHeaders = signedHeaderList.split(';');
  if (!signedHeaders.includes('host') || !signedHeaders.includes('x-amz-date')) throw new KmsRefusal('IncompleteSignatureException', 'The host and x-amz-date headers must be signed.');
  const payloadHash = sha256(body);
  const declared = request.headers['x-amz-content-sha256'];
  if (typeof declared === 'string' && declared !== payloadHash) throw new KmsRefusal('InvalidSignatureException', 'The provided x-amz-content-sha256 header does not match what was computed.');
  const canonicalHeaders = signedHeaders
    .map((name) => {
      const value = request.headers[name];
      const text = Array.isArray(value) ? value.join(',') : (value ?? '');
      return `${name}:${text.trim().replace(/\s+/g, ' ')}\n`;
    })
    .join('');
  const url = new URL(request.url ?? '/', 'http://peer');
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)] as const)
    .sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : 1) : a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = [request.method ?? '', url.pathname, query, canonicalHeaders, signedHeaderList, payloadHash].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${peer.secretAccessKey}`, date), region), service), 'aws4_request');
  const expected = createHmac('sha256', signingKey).update(stringToSign).digest();
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
    throw new KmsRefusal('InvalidSignatureException', 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.');
  }
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > 1024 * 1024) request.destroy(new Error('body too large'));
      else chunks.push(chunk);
    });
    request.on('end', () => { resolve(Buffer.concat(chunks)); });
    request.on('error', reject);
  });
}

/** Starts a KMS peer with fresh credentials; keys are added with `addKey`. */
export async function startKmsPeer(options: { region?: string } = {}): Promise<KmsPeer> {
  const region = options.region ?? 'eu-west-1';
  const account = '111122223333';
  const accessKeyId = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(30).toString('base64');
  const keys = new Map<string, HeldKey>();
  const aliases = new Map<string, string>(); // alias/NAME -> key id
  const deny = new Set<string>();
  const calls: KmsPeerCall[] = [];
  const state = { corruptSignatures: false };

  const findKey = (keyId: unknown): HeldKey => {
    if (typeof keyId !== 'string' || keyId.length === 0 || keyId.length > 2048) throw new KmsRefusal('ValidationException', "1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length between 1 and 2048");
    let id = keyId;
    const arn = /^arn:aws:kms:([^:]+):(\d{12}):(key\/.+|alias\/.+)$/.exec(keyId);
    if (arn !== null) {
      if (arn[1] !== region || arn[2] !== account) throw new KmsRefusal('NotFoundException', `Key '${keyId}' does not exist`);
      id = arn[3]?.startsWith('key/') === true ? arn[3].slice(4) : (arn[3] ?? '');
    }
    if (id.startsWith('alias/')) {
      const target = aliases.get(id);
      if (target === undefined) throw new KmsRefusal('NotFoundException', `Alias arn:aws:kms:${region}:${account}:${id} is not found.`);
      id = target;
    }
    const key = keys.get(id);
    if (key === undefined) throw new KmsRefusal('NotFoundException', `Key 'arn:aws:kms:${region}:${account}:key/${id}' does not exist`);
    if (deny.has(key.keyId)) throw new KmsRefusal('AccessDeniedException', `User: arn:aws:iam::${account}:user/drover-test is not authorized to perform this operation on ${key.arn} because no resource-based policy allows it`);
    return key;
  };
  const usable = (key: HeldKey): void => {
    if (!key.enabled) throw new KmsRefusal('DisabledException', `${key.arn} is disabled.`);
  };
  const usage = (key: HeldKey): string => (key.spec === 'SYMMETRIC_DEFAULT' ? 'ENCRYPT_DECRYPT' : key.spec === 'HMAC_256' ? 'GENERATE_VERIFY_MAC' : 'SIGN_VERIFY');
  const base64Message = (value: unknown, name: string): Buffer => {
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new KmsRefusal('ValidationException', `1 validation error detected: Value at '${name}' failed to satisfy constraint: Member must not be null`);
    const bytes = Buffer.from(value, 'base64');
    if (bytes.length < 1 || bytes.length > MESSAGE_MAX) throw new KmsRefusal('ValidationException', `1 validation error detected: Value at '${name}' failed to satisfy constraint: Member must have length less than or equal to ${MESSAGE_MAX}`);
    return bytes;
  };
  // GenerateMac and VerifyMac: only on a GENERATE_VERIFY_MAC key, with the MAC algorithm its spec has.
  const macKey = (input: Record<string, unknown>): { key: HeldKey; algorithm: string; message: Buffer } => {
    const key = findKey(input['KeyId']);
    const algorithm = input['MacAlgorithm'];
    const message = base64Message(input['Message'], 'message');
    if (typeof algorithm !== 'string' || !ALL_MAC_ALGORITHMS.includes(algorithm)) throw new KmsRefusal('ValidationException', "1 validation error detected: Value at 'macAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [HMAC_SHA_384, HMAC_SHA_256, HMAC_SHA_224, HMAC_SHA_512]");
    usable(key);
    if (key.macSecret === undefined) throw new KmsRefusal('InvalidKeyUsageException', `${key.arn} key usage is ${usage(key)} which is not valid for GenerateMac.`);
    if (MAC_ALGORITHMS[key.spec]?.includes(algorithm) !== true) throw new KmsRefusal('InvalidKeyUsageException', `MAC algorithm ${algorithm} is not compatible with key spec ${key.spec}.`);
    return { key, algorithm, message };
  };

  const operations: Record<string, (input: Record<string, unknown>) => Record<string, unknown>> = {
    DescribeKey(input) {
      const key = findKey(input['KeyId']);
      return {
        KeyMetadata: {
          AWSAccountId: account,
          KeyId: key.keyId,
          Arn: key.arn,
          Enabled: key.enabled,
          KeyState: key.enabled ? 'Enabled' : 'Disabled',
          KeyUsage: usage(key),
          KeySpec: key.spec,
          CustomerMasterKeySpec: key.spec,
          KeyManager: 'CUSTOMER',
          Origin: 'AWS_KMS',
          ...(key.spec === 'SYMMETRIC_DEFAULT'
            ? { EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'] }
            : key.spec === 'HMAC_256'
              ? { MacAlgorithms: MAC_ALGORITHMS[key.spec] }
              : { SigningAlgorithms: SIGNING_ALGORITHMS[key.spec] }),
        },
      };
    },
    GetPublicKey(input) {
      const key = findKey(input['KeyId']);
      usable(key);
      if (key.spec === 'SYMMETRIC_DEFAULT' || key.spec === 'HMAC_256') throw new KmsRefusal('UnsupportedOperationException', `${key.arn} key usage is ${usage(key)} which is not valid for GetPublicKey.`);
      return { KeyId: key.arn, PublicKey: key.publicKeyDer.toString('base64'), KeySpec: key.spec, CustomerMasterKeySpec: key.spec, KeyUsage: 'SIGN_VERIFY', SigningAlgorithms: SIGNING_ALGORITHMS[key.spec] };
    },
    Sign(input) {
      const key = findKey(input['KeyId']);
      const algorithm = input['SigningAlgorithm'];
      const messageType = input['MessageType'] ?? 'RAW';
      if (typeof input['Message'] !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(input['Message'])) throw new KmsRefusal('ValidationException', "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must not be null");
      const message = Buffer.from(input['Message'], 'base64');
      if (message.length < 1 || message.length > MESSAGE_MAX) throw new KmsRefusal('ValidationException', `1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length less than or equal to ${MESSAGE_MAX}`);
      if (typeof algorithm !== 'string' || !Object.values(SIGNING_ALGORITHMS).flat().includes(algorithm)) throw new KmsRefusal('ValidationException', "1 validation error detected: Value at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set");
      if (messageType !== 'RAW' && messageType !== 'DIGEST') throw new KmsRefusal('ValidationException', "1 validation error detected: Value at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]");
      usable(key);
      if (key.spec === 'SYMMETRIC_DEFAULT' || key.spec === 'HMAC_256') throw new KmsRefusal('InvalidKeyUsageException', `${key.arn} key usage is ${usage(key)} which is not valid for signing.`);
      if (!SIGNING_ALGORITHMS[key.spec].includes(algorithm)) throw new KmsRefusal('InvalidKeyUsageException', `Signing algorithm ${algorithm} is not compatible with key spec ${key.spec}.`);
      const privateKey = key.privateKey as KeyObject;
      let signature: Buffer;
      if (algorithm === 'ED25519_SHA_512') {
        if (messageType !== 'RAW') throw new KmsRefusal('ValidationException', 'ED25519_SHA_512 requires the message type RAW.');
        signature = cryptoSign(null, message, privateKey);
      } else if (algorithm === 'ED25519_PH_SHA_512') {
        // HashEdDSA (RFC 8032 Ed25519ph) is not in node:crypto: refused here rather than faked.
        throw new KmsRefusal('ValidationException', 'This peer does not implement ED25519_PH_SHA_512.');
      } else {
        const hash = 'sha256';
        if (messageType === 'DIGEST' && message.length !== 32) throw new KmsRefusal('ValidationException', 'Digest is invalid length for algorithm.');
        const pss = algorithm === 'RSASSA_PSS_SHA_256' ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : {};
        if (messageType === 'DIGEST') throw new KmsRefusal('ValidationException', 'This peer signs RAW messages only.');
        signature = cryptoSign(hash, message, { key: privateKey, ...pss });
      }
      if (state.corruptSignatures) signature[0] = (signature[0] ?? 0) ^ 0x01;
      return { KeyId: key.arn, Signature: signature.toString('base64'), SigningAlgorithm: algorithm };
    },
    GenerateMac(input) {
      const { key, algorithm, message } = macKey(input);
      const mac = createHmac('sha256', key.macSecret as Buffer).update(message).digest();
      if (state.corruptSignatures) mac[0] = (mac[0] ?? 0) ^ 0x01;
      return { KeyId: key.arn, Mac: mac.toString('base64'), MacAlgorithm: algorithm };
    },
    VerifyMac(input) {
      const { key, algorithm, message } = macKey(input);
      const given = base64Message(input['Mac'], 'mac');
      const mac = createHmac('sha256', key.macSecret as Buffer).update(message).digest();
      // AWS answers an invalid MAC with an error, not MacValid: false.
      if (given.length !== mac.length || !timingSafeEqual(given, mac)) throw new KmsRefusal('KMSInvalidMacException', 'The MAC is not valid for the message.');
      return { KeyId: key.arn, MacValid: true, MacAlgorithm: algorithm };
    },
  };

  const answer = (response: ServerResponse, status: number, body: unknown, type?: string): void => {
    const text = JSON.stringify(body);
    response.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': randomUUID(),
      ...(type === undefined ? {} : { 'x-amzn-errortype': type }),
    });
    response.end(text);
  };

  const server = createServer((request, response) => {
    void (async () => {
      try {
        const body = await readBody(request);
        if (request.method !== 'POST' || new URL(request.url ?? '/', 'http://peer').pathname !== '/') throw new KmsRefusal('UnknownOperationException', 'Only POST / is served.', 404);
        checkSigV4(request, body, { region, accessKeyId, secretAccessKey }, Date.now());
        const target = request.headers['x-amz-target'];
        const operation = typeof target === 'string' && target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : '';
        const run = operations[operation];
        if (run === undefined) throw new KmsRefusal('UnknownOperationException', `Unknown operation ${String(target)}.`);
        if (!String(request.headers['content-type']).startsWith('application/x-amz-json-1.1')) throw new KmsRefusal('SerializationException', 'Expected application/x-amz-json-1.1.');
        let input: unknown;
        try {
          input = JSON.parse(body.toString('utf8') || '{}');
        } catch {
          throw new KmsRefusal('SerializationException', 'The request body is not JSON.');
        }
        if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new KmsRefusal('SerializationException', 'The request body is not a JSON object.');
        const record = input as Record<string, unknown>;
        calls.push({ operation, keyId: String(record['KeyId']) });
        answer(response, 200, run(record));
      } catch (error) {
        if (error instanceof KmsRefusal) answer(response, error.status, { __type: error.type, message: error.message }, error.type);
        else answer(response, 500, { __type: 'KMSInternalException', message: 'internal error' }, 'KMSInternalException');
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;

  return {
    endpoint,
    region,
    account,
    accessKeyId,
    secretAccessKey,
    env: { DROVER_KMS_ENDPOINT: endpoint, AWS_REGION: region, AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey },
    deny,
    calls,
    get corruptSignatures() {
      return state.corruptSignatures;
    },
    set corruptSignatures(value: boolean) {
      state.corruptSignatures = value;
    },
    addKey(spec, keyOptions = {}) {
      const keyId = randomUUID();
      let pair: { publicKey: KeyObject; privateKey: KeyObject } | undefined;
      if (spec === 'ECC_NIST_EDWARDS25519') pair = generateKeyPairSync('ed25519');
      else if (spec === 'RSA_2048') pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
      else if (spec === 'ECC_NIST_P256') pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const key: HeldKey = {
        keyId,
        arn: `arn:aws:kms:${region}:${account}:key/${keyId}`,
        spec,
        enabled: keyOptions.enabled ?? true,
        publicKeyDer: pair === undefined ? Buffer.alloc(0) : pair.publicKey.export({ format: 'der', type: 'spki' }),
        publicKeyPem: pair === undefined ? '' : pair.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
        ...(pair === undefined ? {} : { privateKey: pair.privateKey }),
        ...(spec === 'HMAC_256' ? { macSecret: randomBytes(32) } : {}),
      };
      keys.set(keyId, key);
      if (keyOptions.alias !== undefined) aliases.set(keyOptions.alias, keyId);
      // The caller gets what AWS would show of the key: never its private half.
      return { keyId: key.keyId, arn: key.arn, spec: key.spec, enabled: key.enabled, publicKeyDer: key.publicKeyDer, publicKeyPem: key.publicKeyPem };
    },
    setEnabled(keyId, enabled) {
      const key = keys.get(keyId);
      if (key === undefined) throw new Error(`no key ${keyId}`);
      key.enabled = enabled;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => { resolve(); });
      }),
  };
}
