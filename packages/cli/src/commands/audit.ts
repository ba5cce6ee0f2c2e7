import { stat } from 'node:fs/promises';
import { parseAuditSigners, verifyAuditLogLines } from '@drover/protocol';
import { AUDIT_LINE_MAX_LENGTH, readFileChunks } from '@drover/protocol/internal';
import type { AuditLogLine } from '@drover/protocol';
import type { Command } from '../cli.js';
import { flag, requireString } from '../cli.js';
import { CliError } from '../errors.js';
import { readInput } from '../fs-atomic.js';

// A line's UTF-8 is at most 3 bytes per UTF-16 code unit; past this the verifier refuses it
// anyway, so reading stops instead of buffering a file that has no newline at all.
const MAX_LINE_BYTES = 3 * AUDIT_LINE_MAX_LENGTH + 1;

/**
 * The lines of the first `size` bytes of a file, as bytes, split on "\n" only. Not node:readline:
 * it also splits on "\r" and drops it (a log edited to CRLF would verify), and decoding to text
 * here would turn invalid UTF-8 into U+FFFD (an edited byte could pass); the verifier decodes
 * strictly instead.
 */
async function* logLines(path: string, size: number): AsyncGenerator<AuditLogLine> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of readFileChunks(path, { limit: size })) {
    let start = 0;
    for (let end = chunk.indexOf(0x0a); end !== -1; end = chunk.indexOf(0x0a, start)) {
      // Copies: readFileChunks reuses its buffer, and the verifier holds one line of look-ahead.
      yield Buffer.concat([...pending, chunk.subarray(start, end)]);
      pending = [];
      pendingBytes = 0;
      start = end + 1;
    }
    if (start < chunk.length) {
      pending.push(Buffer.from(chunk.subarray(start)));
      pendingBytes += chunk.length - start;
      if (pendingBytes > MAX_LINE_BYTES) {
        yield Buffer.concat(pending);
        return;
      }
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending);
}

async function lastByte(path: string, size: number): Promise<number | undefined> {
  if (size === 0) return undefined;
  for await (const chunk of readFileChunks(path, { start: size - 1, limit: 1 })) return chunk[0];
  return undefined;
}

export const auditVerifyCommand: Command = {
  usage: '--signers SIGNERS.json [--allow-empty] LOG',
  description:
    'Prints `VERIFIED <n> records` (exit 0), or `BROKEN at seq <n>: <REASON>: <what is wrong>` for the first\n' +
    'broken record (exit 1). REASON is one of MALFORMED, NOT_CANONICAL, SEQ_OUT_OF_ORDER, PREV_MISMATCH,\n' +
    'HASH_MISMATCH, UNKNOWN_SIGNER, SIGNATURE_INVALID, EMPTY. Records cut off the end of a log cannot be\n' +
    'detected from the log alone: compare the printed last seq and hash with a copy kept elsewhere.',
  options: {
    signers: { type: 'string', arg: 'FILE', help: 'signers.json: {"signers":[{"kid","algorithm":"ed25519","publicKey"}]}.' },
    'allow-empty': { type: 'boolean', help: 'Accept a log with no records (default: an empty log is reported as EMPTY).' },
  },
  arguments: ['<LOG>'],
  async run({ values, positionals }) {
    const signers = parseAuditSigners((await readInput(requireString(values, 'signers'), 'Signers file')).toString('utf8'));
    const path = positionals[0] ?? '';
    const info = await stat(path).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError('FILE_NOT_FOUND', `Audit log ${path} does not exist. Check the path.`, { cause: error });
      throw error;
    });
    if (!info.isFile()) throw new CliError('USAGE_ERROR', `Audit log ${path} is not a regular file.`);
    // Verify the file as it is now: a manager may still be appending, and a line it is writing
    // at this moment would otherwise show up as a partial record.
    const size = info.size;
    const result = await verifyAuditLogLines(logLines(path, size), signers, {
      allowEmpty: flag(values, 'allow-empty'),
      finalLineTerminated: size === 0 || (await lastByte(path, size)) === 0x0a,
    });
    if (result.ok) {
      return {
        data: { file: path, ...result },
        text: `VERIFIED ${result.count} records\nlast record: seq ${result.lastSeq}, hash ${result.lastHash}`,
      };
    }
    return {
      data: { file: path, ...result },
      text: `BROKEN at seq ${result.seq}: ${result.reason}: ${result.message}`,
      exitCode: 1,
    };
  },
};
