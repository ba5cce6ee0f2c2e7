import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  Ed25519PublicKey,
  RELEASE_PAYLOAD_TYPE,
  createReleasePayload,
  parseEnvelope,
  parseTrustPolicy,
  signRelease,
  trustPolicyDocument,
  verifyArtifactStream,
  verifyEnvelope,
  verifyRelease,
} from '@drover/protocol';
import { readFileChunks } from '@drover/protocol/internal';
import type { TrustPolicy } from '@drover/protocol';
import type { Command } from '../cli.js';
import { optionalString, parseDurationSeconds, requireString, stringList } from '../cli.js';
import { CliError } from '../errors.js';
import { readInput, writeFileAtomic } from '../fs-atomic.js';
import { openSigningKeys } from '../signing-keys.js';

async function hashFile(path: string): Promise<{ size: number; sha256: string }> {
  const info = await stat(path).catch((error: unknown) => {
    throw new CliError('FILE_NOT_FOUND', `Artifact ${path} does not exist. Check the path.`, { cause: error });
  });
  if (!info.isFile()) throw new CliError('USAGE_ERROR', `Artifact ${path} is not a regular file.`);
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of readFileChunks(path)) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { size, sha256: hash.digest('hex') };
}

export const releaseSignCommand: Command = {
  usage: '--key KEY [--key KEY2 ...] --artifact A --version V --platform P [--channel C] [--expires-in 90d] [--changelog-file FILE] [--commit-sha SHA] FILE',
  description:
    'Pass several --key options to sign with several keys (a threshold policy, or a key rotation overlap); each may be a\n' +
    'file, a pkcs11: URI or an awskms: name, so the keys of a k-of-n policy can sit in different tokens and services.',
  options: {
    key: {
      type: 'string',
      multiple: true,
      arg: 'KEY',
      help: "Private key file (PKCS#8 PEM from `drover keygen`), or a key in an HSM: 'pkcs11:token=T;object=O?pin-source=file:PIN' (PIN also from DROVER_PKCS11_PIN, module from module-path= or DROVER_PKCS11_MODULE), or a key in AWS KMS: awskms:KEY_ID, awskms:alias/NAME or awskms:ARN (region from the ARN or AWS_REGION).",
    },
    artifact: { type: 'string', arg: 'A', help: 'Artifact name: agent or daemon.' },
    version: { type: 'string', arg: 'V', help: 'Semantic version (1.2.3) or commit SHA.' },
    platform: { type: 'string', arg: 'P', help: 'Target platform, e.g. linux-x64.' },
    channel: { type: 'string', arg: 'C', help: 'Release channel (default: stable).' },
    'expires-in': { type: 'string', arg: 'DURATION', help: 'How long the release stays installable: 90d, 12h, 30m (default: 90d).' },
    'changelog-file': { type: 'string', arg: 'FILE', aliases: ['changelog'], help: 'Release notes, one entry a line.' },
    'commit-sha': { type: 'string', arg: 'SHA', aliases: ['commit'], help: 'The commit the artifact was built from.' },
    'min-daemon-version': { type: 'string', arg: 'V', help: 'Lowest droverd version that may install this release.' },
    out: { type: 'string', arg: 'PATH', help: 'Where to write the envelope (default: FILE.release.json).' },
  },
  arguments: ['<FILE>'],
  async run({ values, positionals, io }) {
    const file = positionals[0] ?? '';
    const keyPaths = stringList(values, 'key');
    if (keyPaths.length === 0) throw new CliError('USAGE_ERROR', '--key is required (repeat it to sign with several keys).');
    const changelogFile = optionalString(values, 'changelog-file');
    const changelog = changelogFile === undefined ? undefined : (await readInput(changelogFile, 'Changelog file')).toString('utf8').trimEnd();
    const expiresIn = optionalString(values, 'expires-in');
    const digest = await hashFile(file);
    const commitSha = optionalString(values, 'commit-sha');
    const channel = optionalString(values, 'channel');
    const minDaemonVersion = optionalString(values, 'min-daemon-version');
    const payload = createReleasePayload({
      artifact: requireString(values, 'artifact'),
      version: requireString(values, 'version'),
      platform: requireString(values, 'platform'),
      file: { name: basename(file), ...digest },
      ...(channel === undefined ? {} : { channel }),
      ...(commitSha === undefined ? {} : { commitSha }),
      ...(changelog === undefined ? {} : { changelog }),
      ...(minDaemonVersion === undefined ? {} : { minDaemonVersion }),
      ...(expiresIn === undefined ? {} : { expiresInSeconds: parseDurationSeconds(expiresIn, 'expires-in') }),
    });
    // Keys are opened last, once the inputs are known good, and closed before anything is written:
    // a key that cannot sign (a wrong PIN, a missing object, a removed token) leaves no envelope.
    const opened = await openSigningKeys(keyPaths, io.env);
    let envelope: ReturnType<typeof signRelease>;
    try {
      envelope = signRelease(payload, opened.keys);
    } finally {
      opened.close();
    }
    const out = optionalString(values, 'out') ?? `${file}.release.json`;
    await writeFileAtomic(out, `${JSON.stringify(envelope, null, 2)}\n`);
    return {
      data: { envelope: out, manifest: payload, keyids: envelope.signatures.map((s) => s.keyid) },
      text: [
        `Signed ${payload.artifact} ${payload.version} for ${payload.platform} (${payload.file.size} bytes, sha256 ${payload.file.sha256})`,
        `  keys:    ${envelope.signatures.map((s) => s.keyid).join(', ')}`,
        `  expires: ${payload.expiresAt}`,
        `  wrote:   ${out}`,
      ].join('\n'),
    };
  },
};

async function loadPolicy(trustPath: string | undefined, pubPaths: string[], threshold: string | undefined): Promise<TrustPolicy> {
  if ((trustPath === undefined) === (pubPaths.length === 0)) {
    throw new CliError('USAGE_ERROR', 'Pass either --trust TRUST.json or one or more --pub NAME.pub.');
  }
  if (trustPath !== undefined) {
    const text = (await readInput(trustPath, 'Trust policy')).toString('utf8');
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (error) {
      throw new CliError('USAGE_ERROR', `Trust policy ${trustPath} is not JSON. Create one with \`drover trust create\`.`, { cause: error });
    }
    return parseTrustPolicy(doc);
  }
  const keys = await Promise.all(pubPaths.map(async (path) => Ed25519PublicKey.from(await readInput(path, 'Public key'))));
  return parseTrustPolicy(trustPolicyDocument(keys, threshold === undefined ? 1 : parseThreshold(threshold)));
}

/** What an (unverified) payload says it is; empty strings when unreadable, which then fail verification. */
function claimedTarget(payload: string): { artifact: string; platform: string } {
  try {
    const value = JSON.parse(Buffer.from(payload, 'base64').toString('utf8')) as Record<string, unknown>;
    return { artifact: typeof value['artifact'] === 'string' ? value['artifact'] : '', platform: typeof value['platform'] === 'string' ? value['platform'] : '' };
  } catch {
    return { artifact: '', platform: '' };
  }
}

function parseThreshold(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new CliError('USAGE_ERROR', `--threshold takes a whole number of at least 1; got "${text}".`);
  return value;
}

export const releaseVerifyCommand: Command = {
  usage: '(--trust TRUST.json | --pub NAME.pub ...) [--release FILE.release.json] [--platform P] [--artifact A] [--running-version V] FILE',
  description: 'Checks the signatures (threshold), artifact, platform, expiry and, with --running-version, that the release is an upgrade;\nthen streams FILE, reading at most size + 1 bytes, and checks its size and SHA-256.',
  options: {
    trust: { type: 'string', arg: 'TRUST.json', help: 'Trust policy: keys and the number of them that must sign.' },
    pub: { type: 'string', multiple: true, arg: 'NAME.pub', help: 'A trusted public key (instead of --trust).' },
    threshold: { type: 'string', arg: 'K', help: 'With --pub: how many of the keys must sign (default: 1).' },
    release: { type: 'string', arg: 'FILE.release.json', aliases: ['envelope'], help: 'The signed release envelope (default: FILE.release.json).' },
    platform: { type: 'string', arg: 'P', help: 'Refuse unless the release is for this platform.' },
    artifact: { type: 'string', arg: 'A', help: 'Refuse unless the release is of this artifact.' },
    'running-version': { type: 'string', arg: 'V', help: 'Refuse unless the release is above this version.' },
  },
  arguments: ['<FILE>'],
  async run({ values, positionals }) {
    const file = positionals[0] ?? '';
    const policy = await loadPolicy(optionalString(values, 'trust'), stringList(values, 'pub'), optionalString(values, 'threshold'));
    const envelopePath = optionalString(values, 'release') ?? `${file}.release.json`;
    const envelope = parseEnvelope(await readInput(envelopePath, 'Release envelope'));
    // Without --artifact/--platform, the release's own claims are used: the signature still binds
    // them, and the output says what was verified.
    const claimed = claimedTarget(envelope.payload);
    const manifest = verifyRelease(envelope, policy, {
      artifact: optionalString(values, 'artifact') ?? claimed.artifact,
      platform: optionalString(values, 'platform') ?? claimed.platform,
      runningVersion: optionalString(values, 'running-version'),
    });
    // endless data: read at most size + 1 bytes of the file.
    await stat(file).catch((error: unknown) => {
      throw new CliError('FILE_NOT_FOUND', `Artifact ${file} does not exist. Check the path.`, { cause: error });
    });
    await verifyArtifactStream(readFileChunks(file, { limit: manifest.file.size + 1 }), manifest.file);
    // Only the distinct trusted keys whose signatures verified: a trusted key id next to a broken
    // signature vouches for nothing.
    const signers = verifyEnvelope(envelope, policy, RELEASE_PAYLOAD_TYPE).keyids;
    return {
      data: { verified: true, manifest, signers },
      text: `VERIFIED ${manifest.artifact} ${manifest.version} for ${manifest.platform} (sha256 ${manifest.file.sha256}, signed by ${signers.join(', ')}, expires ${manifest.expiresAt})`,
    };
  },
};

export const trustCreateCommand: Command = {
  usage: '--pub NAME.pub [--pub ...] [--threshold K] --out TRUST.json',
  options: {
    pub: { type: 'string', multiple: true, arg: 'NAME.pub', help: 'A public key to trust.' },
    threshold: { type: 'string', arg: 'K', help: 'How many distinct trusted keys must sign a release (default: 1).' },
    out: { type: 'string', arg: 'TRUST.json', help: 'Where to write the policy.' },
  },
  async run({ values }) {
    const pubPaths = stringList(values, 'pub');
    if (pubPaths.length === 0) throw new CliError('USAGE_ERROR', '--pub is required (repeat it for several keys).');
    const threshold = optionalString(values, 'threshold');
    const keys = await Promise.all(pubPaths.map(async (path) => Ed25519PublicKey.from(await readInput(path, 'Public key'))));
    const doc = trustPolicyDocument(keys, threshold === undefined ? 1 : parseThreshold(threshold));
    parseTrustPolicy(doc);
    const out = requireString(values, 'out');
    await writeFileAtomic(out, `${JSON.stringify(doc, null, 2)}\n`);
    return { data: doc, text: `Wrote ${out}: ${doc.threshold} of ${doc.keys.length} key(s) must sign (${doc.keys.map((k) => k.keyid).join(', ')})` };
  },
};
