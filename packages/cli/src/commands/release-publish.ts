import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { parseEnvelope } from '@drover/protocol';
import type { ReleasePayload } from '@drover/protocol';
import type { Command } from '../cli.js';
import { CliError } from '../errors.js';
import { readInput } from '../fs-atomic.js';
import { operatorClient, operatorOptions } from '../operator.js';

interface PublishAnswer {
  status: 'published' | 'awaiting_upload';
  created: boolean;
  uploadUrl: string | null;
  manifest: ReleasePayload;
}

export const releasePublishCommand: Command = {
  usage: '--manager URL [--token-file FILE] FILE [FILE.release.json]',
  description:
    'Two steps: POST /v1/releases with the envelope, then the artifact streamed as the raw body of a PUT to the\n' +
    'upload URL the manager answers with (skipped when the manager already holds those bytes). The manager keeps\n' +
    'the bytes only if their size and SHA-256 match the signed manifest. Token: DROVER_DEPLOY_TOKEN (else DROVER_ADMIN_TOKEN) or --token-file.',
  options: operatorOptions('deploy-or-admin'),
  arguments: ['<FILE>', '[ENVELOPE]'],
  async run({ values, positionals, io }) {
    const file = positionals[0] ?? '';
    const envelopePath = positionals[1] ?? `${file}.release.json`;
    const envelope = parseEnvelope(await readInput(envelopePath, 'Release envelope'));
    const info = await stat(file).catch((error: unknown) => {
      throw new CliError('FILE_NOT_FOUND', `Artifact ${file} does not exist. Check the path.`, { cause: error });
    });
    if (!info.isFile()) throw new CliError('USAGE_ERROR', `Artifact ${file} is not a regular file.`);
    const client = await operatorClient(values, io, 'deploy-or-admin');
    // Registering the same envelope twice is harmless, so this one may be retried.
    const registered = (await client.json({ method: 'POST', path: '/v1/releases', json: { release: envelope }, idempotent: true })) as PublishAnswer;
    const manifest = registered.manifest;
    if (registered.status === 'awaiting_upload') {
      if (info.size !== manifest.file.size) {
        throw new CliError('USAGE_ERROR', `${file} is ${info.size} bytes but the signed manifest says ${manifest.file.size}: this is not the file that was signed.`);
      }
      if (registered.uploadUrl === null) throw new CliError('HTTP_ERROR', 'The manager awaits the artifact but named no upload URL.');
      await client.json({
        method: 'PUT',
        path: registered.uploadUrl,
        fromOrigin: true,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(info.size) },
        // A fresh stream per attempt: the artifact is never held in memory.
        body: () => createReadStream(file),
      });
    }
    return {
      data: { published: true, created: registered.created, manifest },
      text: `PUBLISHED ${manifest.artifact} ${manifest.version} for ${manifest.platform} (${manifest.file.size} bytes, sha256 ${manifest.file.sha256})${registered.status === 'published' ? '; the manager already had these bytes' : ''}`,
    };
  },
};
