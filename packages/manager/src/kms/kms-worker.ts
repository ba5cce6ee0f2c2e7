// The thread that talks to AWS KMS for a KmsSigner. drover's signers are synchronous (decision
// 0037: every signing function of @drover/protocol takes an Ed25519Signer whose sign() returns the
// signature), and an HTTP call is not: the caller's thread posts a request here and blocks on a
// shared word until this thread, with its own event loop, has the answer (decision 0040).

import { workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { DescribeKeyCommand, GenerateMacCommand, GetPublicKeyCommand, KMSClient, MacAlgorithmSpec, MessageType, SignCommand, SigningAlgorithmSpec, VerifyMacCommand } from '@aws-sdk/client-kms';
import type { KmsReply, KmsRequest, KmsWorkerData } from './protocol.js';

// Started by the bootstrap in ed25519-key.ts, with the same workerData.
const data = workerData as KmsWorkerData;
const port: MessagePort = data.port;
const done = new Int32Array(data.signal);

const client = new KMSClient({
  region: data.region,
  ...(data.endpoint === undefined ? {} : { endpoint: data.endpoint }),
  maxAttempts: data.maxAttempts,
  requestHandler: { connectionTimeout: data.connectTimeoutMs, requestTimeout: data.requestTimeoutMs },
});

async function answer(request: KmsRequest): Promise<KmsReply> {
  try {
    if (request.op === 'publicKey') {
      const out = await client.send(new GetPublicKeyCommand({ KeyId: request.keyId }));
      return {
        id: request.id,
        ok: true,
        op: 'publicKey',
        keyArn: out.KeyId ?? request.keyId,
        keySpec: out.KeySpec ?? '',
        keyUsage: out.KeyUsage ?? '',
        signingAlgorithms: out.SigningAlgorithms ?? [],
        publicKey: out.PublicKey ?? new Uint8Array(0),
      };
    }
    if (request.op === 'describe') {
      const meta = (await client.send(new DescribeKeyCommand({ KeyId: request.keyId }))).KeyMetadata;
      return {
        id: request.id,
        ok: true,
        op: 'describe',
        keyArn: meta?.Arn ?? request.keyId,
        keySpec: meta?.KeySpec ?? '',
        keyUsage: meta?.KeyUsage ?? '',
        enabled: meta?.Enabled ?? false,
        macAlgorithms: meta?.MacAlgorithms ?? [],
        signingAlgorithms: meta?.SigningAlgorithms ?? [],
      };
    }
    if (request.op === 'mac') {
      const out = await client.send(new GenerateMacCommand({ KeyId: request.keyId, Message: request.message, MacAlgorithm: MacAlgorithmSpec.HMAC_SHA_256 }));
      return { id: request.id, ok: true, op: 'mac', mac: out.Mac ?? new Uint8Array(0) };
    }
    if (request.op === 'verifyMac') {
      try {
        const out = await client.send(new VerifyMacCommand({ KeyId: request.keyId, Message: request.message, Mac: request.mac, MacAlgorithm: MacAlgorithmSpec.HMAC_SHA_256 }));
        return { id: request.id, ok: true, op: 'verifyMac', valid: out.MacValid === true };
      } catch (error) {
        // AWS says "wrong MAC" with an error, not with MacValid false.
        if ((error as { name?: unknown }).name === 'KMSInvalidMacException') return { id: request.id, ok: true, op: 'verifyMac', valid: false };
        throw error;
      }
    }
    const algorithm = (request.algorithm ?? SigningAlgorithmSpec.ED25519_SHA_512) as SigningAlgorithmSpec;
    const out = await client.send(new SignCommand({ KeyId: request.keyId, Message: request.message, MessageType: MessageType.RAW, SigningAlgorithm: algorithm }));
    return { id: request.id, ok: true, op: 'sign', signature: out.Signature ?? new Uint8Array(0) };
  } catch (error) {
    // Only the error's name, status and network code cross over: an SDK message may quote the
    // request, and nothing of the credentials may reach a message or a log.
    const e = error as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: unknown } };
    return {
      id: request.id,
      ok: false,
      name: typeof e.name === 'string' ? e.name : 'Error',
      ...(typeof e.code === 'string' ? { code: e.code } : {}),
      ...(typeof e.$metadata?.httpStatusCode === 'number' ? { status: e.$metadata.httpStatusCode } : {}),
    };
  }
}

port.on('message', (request: KmsRequest) => {
  void answer(request).then((reply) => {
    port.postMessage(reply);
    Atomics.add(done, 0, 1);
    Atomics.notify(done, 0);
  });
});
