import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Ed25519PrivateKey, encodeMinisignPublicKey } from '@drover/protocol';
import type { Ed25519PublicKey } from '@drover/protocol';
import { shortId } from '@drover/protocol/internal';
import type { Command, CommandResult, OptionValues } from '../cli.js';
import { flag, optionalString, requireString } from '../cli.js';
import { CliError } from '../errors.js';
import { exists, writeFileAtomic } from '../fs-atomic.js';
import { kmsBackend, pkcs11Backend, rsaAuditKeyBackend } from '../signing-keys.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const RSA_BITS = { min: 2048, max: 8192, default: 2048 };

/** The SPKI PEM of a DER SubjectPublicKeyInfo. */
function spkiPem(spki: Uint8Array): string {
  return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({ format: 'pem', type: 'spki' }).toString();
}

export const keygenCommand: Command = {
  usage: "--out DIR [--name NAME] [--force] [--algorithm ed25519|rsa-sha256 [--bits N]] [--pkcs11 'pkcs11:token=T;object=O?pin-source=file:PIN' | --awskms awskms:KEY] | --algorithm hmac-sha256 --pkcs11 URI",
  description:
    'NAME.key is a PKCS#8 PEM private key readable by openssl; keep it secret (a CI secret store, an HSM-backed\n' +
    'file system). NAME.pub (SPKI PEM) goes into trust policies; NAME.minisign.pub verifies with `minisign -V`.\n' +
    'With --pkcs11 the key pair is generated inside the token the URI names (object= is its label) and never leaves it:\n' +
    'only NAME.pub and NAME.minisign.pub are written; sign with --key and the same URI. The PIN comes from pin-source=\n' +
    'or DROVER_PKCS11_PIN, the module from module-path= or DROVER_PKCS11_MODULE (docs/operations.md).\n' +
    'With --awskms the key already exists in AWS KMS (aws kms create-key --key-spec ECC_NIST_EDWARDS25519 --key-usage\n' +
    'SIGN_VERIFY): its public key, as GetPublicKey reports it, is written to NAME.pub and NAME.minisign.pub.\n' +
    '--algorithm rsa-sha256 makes an RSA audit key instead (RSASSA-PKCS1-v1_5 with SHA-256, 2048 bits unless --bits):\n' +
    'it signs audit records (AUDIT_SIGNING_ALG=rsa-sha256), not releases or nonces, so no NAME.minisign.pub is written.\n' +
    'In a file (NAME.key, PKCS#8 PEM), generated in the token with --pkcs11, or read from an RSA_2048+ SIGN_VERIFY key with --awskms.\n' +
    '--algorithm hmac-sha256 --pkcs11 URI makes an HMAC audit key (32 random bytes, not extractable) in the token and\n' +
    'prints the kid its records get; no file is written, as an HMAC key has no public half (AUDIT_SIGNING_ALG=hmac-sha256,\n' +
    'AUDIT_SIGNING_KEY_SOURCE=pkcs11; verify with `drover audit verify --hmac-pkcs11 URI`).',
  options: {
    out: { type: 'string', arg: 'DIR', help: 'Directory to write the key files into (created if missing).' },
    name: { type: 'string', arg: 'NAME', help: 'Base name of the key files (default: drover).' },
    force: { type: 'boolean', help: 'Replace key files that already exist.' },
    pkcs11: { type: 'string', arg: 'URI', help: 'Generate the key inside this PKCS#11 token (RFC 7512 URI) instead of a file.' },
    awskms: { type: 'string', arg: 'NAME', help: 'Write the public key files of this Ed25519 key in AWS KMS (awskms:KEY_ID, awskms:alias/NAME or awskms:ARN).' },
    algorithm: { type: 'string', arg: 'ALG', help: 'ed25519 (default: releases, nonces, audit), rsa-sha256 or hmac-sha256 (--pkcs11 only): audit keys only.' },
    bits: { type: 'string', arg: 'N', help: `With --algorithm rsa-sha256: the modulus length, ${RSA_BITS.min}-${RSA_BITS.max} (default ${RSA_BITS.default}); not with --awskms.` },
  },
  async run({ values, io }) {
    if (optionalString(values, 'algorithm') === 'hmac-sha256') return hmacInToken(values, io.env);
    const dir = requireString(values, 'out');
    const name = optionalString(values, 'name') ?? 'drover';
    if (!NAME.test(name)) {
      throw new CliError('USAGE_ERROR', `--name must be 1-64 letters, digits, dots, dashes or underscores; got "${name}".`);
    }
    const force = flag(values, 'force');
    await mkdir(dir, { recursive: true });
    const uri = optionalString(values, 'pkcs11');
    const kmsName = optionalString(values, 'awskms');
    if (uri !== undefined && kmsName !== undefined) throw new CliError('USAGE_ERROR', 'Pass --pkcs11 or --awskms, not both.');
    const algorithm = optionalString(values, 'algorithm') ?? 'ed25519';
    if (algorithm !== 'ed25519' && algorithm !== 'rsa-sha256') throw new CliError('USAGE_ERROR', `--algorithm is ed25519, rsa-sha256 or hmac-sha256, not "${algorithm}".`);
    const bitsText = optionalString(values, 'bits');
    if (bitsText !== undefined && algorithm !== 'rsa-sha256') throw new CliError('USAGE_ERROR', '--bits goes with --algorithm rsa-sha256 (an Ed25519 key has no length to choose).');
    if (bitsText !== undefined && kmsName !== undefined) throw new CliError('USAGE_ERROR', '--bits cannot go with --awskms: the key exists in KMS with its key spec (RSA_2048, RSA_3072 or RSA_4096).');
    const bits = bitsText === undefined ? RSA_BITS.default : Number(bitsText);
    if (!Number.isSafeInteger(bits) || bits < RSA_BITS.min || bits > RSA_BITS.max || bits % 8 !== 0) {
      throw new CliError('USAGE_ERROR', `--bits must be a multiple of 8 from ${RSA_BITS.min} to ${RSA_BITS.max}; got "${String(bitsText)}".`);
    }
    if (algorithm === 'rsa-sha256') {
      const rsaPaths = { ...(uri === undefined && kmsName === undefined ? { privateKey: join(dir, `${name}.key`) } : {}), publicKey: join(dir, `${name}.pub`) };
      if (!force) {
        for (const path of Object.values(rsaPaths)) {
          if (await exists(path)) throw new CliError('FILE_EXISTS', `${path} already exists. Choose another --name, or pass --force to replace it.`);
        }
      }
      let key: { spki: Uint8Array; bits: number };
      let where: string;
      if (uri !== undefined) {
        key = (await rsaAuditKeyBackend()).generateInToken(uri, io.env, bits);
        where = `in the token: ${uri.split('?')[0] ?? uri}`;
      } else if (kmsName !== undefined) {
        key = (await rsaAuditKeyBackend()).readFromKms(kmsName, io.env);
        where = `held in AWS KMS: ${kmsName}`;
      } else {
        const pair = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
        key = { spki: new Uint8Array(pair.publicKey.export({ format: 'der', type: 'spki' })), bits };
        // The private key is written 0600 from its first byte, never readable by others even briefly.
        await writeFileAtomic(join(dir, `${name}.key`), pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), { mode: 0o600, exclusive: !force });
        where = 'in a file';
      }
      await writeFileAtomic(rsaPaths.publicKey, spkiPem(key.spki), { exclusive: !force });
      const kid = shortId(key.spki);
      return {
        data: { algorithm, kid, bits: key.bits, publicKey: Buffer.from(key.spki).toString('base64'), ...(uri === undefined ? {} : { pkcs11: uri.split('?')[0] ?? uri }), ...(kmsName === undefined ? {} : { awskms: kmsName }), files: rsaPaths },
        text: [
          `${kmsName === undefined ? 'Created' : 'Read'} the RSA-${key.bits} audit key ${kid} ${where}`,
          ...('privateKey' in rsaPaths ? [`  private key (keep secret): ${rsaPaths.privateKey}`] : []),
          `  public key:                ${rsaPaths.publicKey}`,
          'It signs audit records (AUDIT_SIGNING_ALG=rsa-sha256); the manager lists it in signers.json as rsa-sha256.',
        ].join('\n'),
      };
    }
    const paths = { ...(uri === undefined && kmsName === undefined ? { privateKey: join(dir, `${name}.key`) } : {}), publicKey: join(dir, `${name}.pub`), minisignPublicKey: join(dir, `${name}.minisign.pub`) };
    if (!force) {
      for (const path of Object.values(paths)) {
        if (await exists(path)) throw new CliError('FILE_EXISTS', `${path} already exists. Choose another --name, or pass --force to replace it.`);
      }
    }
    const writePublic = async (publicKey: Ed25519PublicKey): Promise<void> => {
      await writeFileAtomic(paths.publicKey, publicKey.toPem(), { exclusive: !force });
      await writeFileAtomic(paths.minisignPublicKey, encodeMinisignPublicKey(publicKey), { exclusive: !force });
    };
    const files = (list: Record<string, string>): string[] => [
      ...(list['privateKey'] === undefined ? [] : [`  private key (keep secret): ${list['privateKey']}`]),
      `  public key:                ${paths.publicKey}`,
      `  minisign public key:       ${paths.minisignPublicKey}`,
    ];
    if (kmsName !== undefined) {
      const key = (await kmsBackend())(kmsName, { env: io.env });
      try {
        await writePublic(key.publicKey);
      } finally {
        key.close();
      }
      return {
        data: { keyid: key.keyid, publicKey: key.publicKey.toBase64(), awskms: key.uri, keyArn: key.keyArn, files: paths },
        text: [`Wrote the public key of ${key.keyid}, held in AWS KMS: ${key.keyArn}`, ...files(paths)].join('\n'),
      };
    }
    if (uri !== undefined) {
      const key = (await pkcs11Backend()).generatePkcs11Key(uri, { env: io.env });
      try {
        await writePublic(key.publicKey);
      } finally {
        key.close();
      }
      return {
        data: { keyid: key.keyid, publicKey: key.publicKey.toBase64(), pkcs11: key.uri, files: paths },
        text: [`Created key ${key.keyid} in the token: ${key.uri}`, ...files(paths)].join('\n'),
      };
    }
    const key = Ed25519PrivateKey.generate();
    // The private key is written 0600 from its first byte, never readable by others even briefly.
    await writeFileAtomic(join(dir, `${name}.key`), key.toPem(), { mode: 0o600, exclusive: !force });
    await writePublic(key.publicKey);
    return {
      data: { keyid: key.keyid, publicKey: key.publicKey.toBase64(), files: paths },
      text: [`Created key ${key.keyid}`, ...files(paths)].join('\n'),
    };
  },
};

// --algorithm hmac-sha256: a secret key made in the token; nothing to write, the kid to print.
async function hmacInToken(values: OptionValues, env: NodeJS.ProcessEnv): Promise<CommandResult> {
  const uri = optionalString(values, 'pkcs11');
  if (uri === undefined) {
    throw new CliError(
      'USAGE_ERROR',
      '--algorithm hmac-sha256 goes with --pkcs11 URI (the key made in the token). For a file, write 32 random bytes yourself: `openssl rand -base64 32 > audit-hmac.key` (mode 0600); in AWS KMS: `aws kms create-key --key-spec HMAC_256 --key-usage GENERATE_VERIFY_MAC`.',
    );
  }
  for (const other of ['awskms', 'bits', 'out', 'name'] as const) {
    if (optionalString(values, other) !== undefined) throw new CliError('USAGE_ERROR', `--${other} does not go with --algorithm hmac-sha256: the key is made in the token and no file is written.`);
  }
  if (flag(values, 'force')) throw new CliError('USAGE_ERROR', '--force does not go with --algorithm hmac-sha256: a token key is never replaced; choose another object= label.');
  const { generatePkcs11HmacKey } = await import('@drover/manager');
  const { kid } = generatePkcs11HmacKey(uri, { env });
  const where = uri.split('?')[0] ?? uri;
  return {
    data: { algorithm: 'hmac-sha256', kid, pkcs11: where, files: {} },
    text: [
      `Created the HMAC-SHA256 audit key ${kid} in the token: ${where}`,
      'No file was written: the secret never leaves the token. It MACs audit records (AUDIT_SIGNING_KEY_SOURCE=pkcs11,',
      'AUDIT_SIGNING_ALG=hmac-sha256); signers.json lists its kid only; verify with `drover audit verify --hmac-pkcs11 URI`.',
    ].join('\n'),
  };
}
