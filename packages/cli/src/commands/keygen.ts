import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Ed25519PrivateKey, encodeMinisignPublicKey } from '@drover/protocol';
import type { Command } from '../cli.js';
import { flag, optionalString, requireString } from '../cli.js';
import { CliError } from '../errors.js';
import { exists, writeFileAtomic } from '../fs-atomic.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const keygenCommand: Command = {
  usage: '--out DIR [--name NAME] [--force]',
  description:
    'NAME.key is a PKCS#8 PEM private key readable by openssl; keep it secret (a CI secret store, an HSM-backed\n' +
    'file system). NAME.pub (SPKI PEM) goes into trust policies; NAME.minisign.pub verifies with `minisign -V`.',
  options: {
    out: { type: 'string', arg: 'DIR', help: 'Directory to write the key files into (created if missing).' },
    name: { type: 'string', arg: 'NAME', help: 'Base name of the key files (default: drover).' },
    force: { type: 'boolean', help: 'Replace key files that already exist.' },
  },
  async run({ values }) {
    const dir = requireString(values, 'out');
    const name = optionalString(values, 'name') ?? 'drover';
    if (!NAME.test(name)) {
      throw new CliError('USAGE_ERROR', `--name must be 1-64 letters, digits, dots, dashes or underscores; got "${name}".`);
    }
    const force = flag(values, 'force');
    await mkdir(dir, { recursive: true });
    const paths = { privateKey: join(dir, `${name}.key`), publicKey: join(dir, `${name}.pub`), minisignPublicKey: join(dir, `${name}.minisign.pub`) };
    if (!force) {
      for (const path of Object.values(paths)) {
        if (await exists(path)) throw new CliError('FILE_EXISTS', `${path} already exists. Choose another --name, or pass --force to replace it.`);
      }
    }
    const key = Ed25519PrivateKey.generate();
    // The private key is written 0600 from its first byte, never readable by others even briefly.
    await writeFileAtomic(paths.privateKey, key.toPem(), { mode: 0o600, exclusive: !force });
    await writeFileAtomic(paths.publicKey, key.publicKey.toPem(), { exclusive: !force });
    await writeFileAtomic(paths.minisignPublicKey, encodeMinisignPublicKey(key.publicKey), { exclusive: !force });
    return {
      data: { keyid: key.keyid, publicKey: key.publicKey.toBase64(), files: paths },
      text: [`Created key ${key.keyid}`, `  private key (keep secret): ${paths.privateKey}`, `  public key:                ${paths.publicKey}`, `  minisign public key:       ${paths.minisignPublicKey}`].join('\n'),
    };
  },
};
