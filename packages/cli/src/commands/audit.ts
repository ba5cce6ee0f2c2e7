import { stat } from 'node:fs/promises';
import { parseAuditSigners, verifyAuditLogLines } from '@drover/protocol';
import type { Command, CommandResult } from '../cli.js';
import { flag, optionalString, requireString } from '../cli.js';
import { CliError } from '../errors.js';
import { readInput } from '../fs-atomic.js';

export const auditVerifyCommand: Command = {
  usage: '--signers SIGNERS.json [--allow-empty] LOG | --dir DIR [--signers SIGNERS.json] [--allow-empty]',
  description:
    'Prints `VERIFIED <n> records` (exit 0), or `BROKEN at seq <n>: <REASON>: <what is wrong>` for the first\n' +
    'broken record (exit 1). REASON is one of MALFORMED, NOT_CANONICAL, SEQ_OUT_OF_ORDER, PREV_MISMATCH,\n' +
    'HASH_MISMATCH, UNKNOWN_SIGNER, SIGNATURE_INVALID, EMPTY. Records cut off the end of a log cannot be\n' +
    'detected from the log alone: compare the printed last seq and hash with a copy kept elsewhere.\n' +
    'With --dir, the chain of the manager whose directory is DIR: its log file, or, for a manager on\n' +
    'PostgreSQL (manager.json or DROVER_DATABASE_URL), the one chain its replicas keep in the database;\n' +
    'the signers default to the directory\'s signers.json.',
  options: {
    signers: { type: 'string', arg: 'FILE', help: 'signers.json: {"signers":[{"kid","algorithm":"ed25519","publicKey"}]}.' },
    dir: { type: 'string', arg: 'DIR', help: "A manager's directory: verify its audit chain wherever it is kept." },
    'allow-empty': { type: 'boolean', help: 'Accept a log with no records (default: an empty log is reported as EMPTY).' },
  },
  arguments: ['[LOG]'],
  async run({ values, positionals, io }) {
    const dir = optionalString(values, 'dir');
    if (dir !== undefined && positionals.length > 0) throw new CliError('USAGE_ERROR', 'Give either a LOG file or --dir DIR, not both.');
    if (dir !== undefined) {
      const { managerAuditChain } = await import('@drover/manager');
      const chain = await managerAuditChain(dir, io.env);
      const signersPath = optionalString(values, 'signers') ?? chain.signersPath;
      if (chain.kind === 'file') return verifyFile(chain.path, signersPath, flag(values, 'allow-empty'));
      const signers = parseAuditSigners((await readInput(signersPath, 'Signers file')).toString('utf8'));
      const result = await verifyAuditLogLines(chain.lines(), signers, { allowEmpty: flag(values, 'allow-empty'), finalLineTerminated: true });
      return report({ database: chain.database }, result);
    }
    if (positionals.length === 0) throw new CliError('USAGE_ERROR', 'Give the audit LOG file to verify, or --dir DIR for a manager\'s chain.');
    return verifyFile(positionals[0] ?? '', requireString(values, 'signers'), flag(values, 'allow-empty'));
  },
};

type VerifyResult = Awaited<ReturnType<typeof verifyAuditLogLines>>;

function report(where: Record<string, string>, result: VerifyResult): CommandResult {
  if (result.ok) {
    return {
      data: { ...where, ...result },
      text: `VERIFIED ${result.count} records\nlast record: seq ${result.lastSeq}, hash ${result.lastHash}`,
    };
  }
  return {
    data: { ...where, ...result },
    text: `BROKEN at seq ${result.seq}: ${result.reason}: ${result.message}`,
    exitCode: 1,
  };
}

async function verifyFile(path: string, signersPath: string, allowEmpty: boolean): Promise<CommandResult> {
  const signersText = (await readInput(signersPath, 'Signers file')).toString('utf8');
  parseAuditSigners(signersText); // a bad signers file is reported before the log is looked at
  const info = await stat(path).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError('FILE_NOT_FOUND', `Audit log ${path} does not exist. Check the path.`, { cause: error });
    throw error;
  });
  if (!info.isFile()) throw new CliError('USAGE_ERROR', `Audit log ${path} is not a regular file.`);
  const { verifyAuditLogFile } = await import('@drover/manager');
  const result = await verifyAuditLogFile(path, signersText, allowEmpty);
  return report({ file: path }, result);
}
