import { stat } from 'node:fs/promises';
import { parseAuditHmacKeys, parseAuditSigners, verifyAuditLogLines, withAuditHmacKeys } from '@drover/protocol';
import type { ExternalAuditMacKey } from '@drover/manager';
import type { AuditSignerKeys } from '@drover/protocol';
import type { Command, CommandIo, CommandResult, OptionValues } from '../cli.js';
import { flag, optionalString, stringList } from '../cli.js';
import { CliError } from '../errors.js';
import { readInput } from '../fs-atomic.js';

export const auditVerifyCommand: Command = {
  usage: '[--signers SIGNERS.json] [--hmac-key-file KEYS.json]... [--hmac-kms [KID=]awskms:KEY]... [--hmac-pkcs11 [KID=]pkcs11:URI]... [--allow-empty] LOG | --dir DIR [same options]',
  description:
    'Prints `VERIFIED <n> records` (exit 0), or `BROKEN at seq <n>: <REASON>: <what is wrong>` for the first\n' +
    'broken record (exit 1). REASON is one of MALFORMED, NOT_CANONICAL, SEQ_OUT_OF_ORDER, PREV_MISMATCH,\n' +
    'HASH_MISMATCH, UNKNOWN_SIGNER, ALGORITHM_MISMATCH, MAC_KEY_MISSING, SIGNATURE_INVALID, EMPTY. When it cannot\n' +
    'give a verdict (a log or signers file it cannot read, a KMS or token it cannot reach), it prints the error\n' +
    'and exits 3, so a script tells an outage from a broken chain; a usage error exits 2. Records cut off\n' +
    'the end of a log cannot be detected from the log alone: compare the printed last seq and hash with a copy kept elsewhere.\n' +
    'With --dir, the chain of the manager whose directory is DIR: its log file, or, for a manager on\n' +
    'PostgreSQL (manager.json or DROVER_DATABASE_URL), the one chain its replicas keep in the database;\n' +
    'the signers default to the directory\'s signers.json. Records name their algorithm (ed25519, rsa-sha256,\n' +
    'hmac-sha256); an hmac-sha256 key is secret, so signers.json lists only its kid and --hmac-key-file gives it,\n' +
    'or, for a key whose secret never leaves AWS KMS or a PKCS#11 token, --hmac-kms or --hmac-pkcs11 names it and\n' +
    'the holder checks each MAC (kms:VerifyMac, C_Verify: one call per record of that key).\n' +
    'Without --signers (and --dir), signers.json comes from KERNEL_PUBLIC_KEYS_JSON (the document),\n' +
    'KERNEL_PUBLIC_KEYS_PATH, or KERNEL_PUBLIC_KEYS_URL (https, pinned by KERNEL_PUBLIC_KEYS_URL_SHA256).',
  options: {
    signers: { type: 'string', arg: 'FILE', help: 'signers.json: {"signers":[{"kid","algorithm":"ed25519"|"rsa-sha256"|"hmac-sha256","publicKey"}]}.' },
    'hmac-key-file': {
      type: 'string',
      multiple: true,
      arg: 'FILE',
      help: 'The secrets of hmac-sha256 audit keys: {"keys":[{"kid","key":"<base64>"}]} (keep it 0600). Repeatable.',
    },
    'hmac-kms': {
      type: 'string',
      multiple: true,
      arg: '[KID=]awskms:KEY',
      help: "An HMAC_256 audit key in AWS KMS: its records' MACs are checked by KMS VerifyMac. KID defaults to the kid a manager with that key writes (kms-hmac-...); give it when AUDIT_SIGNER_KID set another. Repeatable.",
    },
    'hmac-pkcs11': {
      type: 'string',
      multiple: true,
      arg: '[KID=]pkcs11:URI',
      help: "An HMAC audit key in a PKCS#11 token (its PIN from pin-source= or DROVER_PKCS11_PIN): the token checks its records' MACs (C_Verify, CKM_SHA256_HMAC). KID defaults to the kid a manager with that key writes (pkcs11-hmac-...). Repeatable.",
    },
    dir: { type: 'string', arg: 'DIR', help: "A manager's directory: verify its audit chain wherever it is kept." },
    'allow-empty': { type: 'boolean', help: 'Accept a log with no records (default: an empty log is reported as EMPTY).' },
  },
  arguments: ['[LOG]'],
  errorExitCode: 3,
  async run({ values, positionals, io }) {
    const dir = optionalString(values, 'dir');
    if (dir !== undefined && positionals.length > 0) throw new CliError('USAGE_ERROR', 'Give either a LOG file or --dir DIR, not both.');
    if (dir === undefined && positionals.length === 0) throw new CliError('USAGE_ERROR', 'Give the audit LOG file to verify, or --dir DIR for a manager\'s chain.');
    const held = await openHeldMacKeys(stringList(values, 'hmac-kms'), stringList(values, 'hmac-pkcs11'), io);
    try {
      const verdict = await verify(dir, positionals[0] ?? '', values, io, held.map((h) => h.key));
      if (held.length === 0) return verdict;
      const checked = (kind: HeldMacKey['kind']): number => held.filter((h) => h.kind === kind).reduce((sum, h) => sum + h.key.checked, 0);
      return { ...verdict, data: { ...(verdict.data as Record<string, unknown>), kmsMacsChecked: checked('kms'), tokenMacsChecked: checked('pkcs11') } };
    } finally {
      for (const { key } of held) key.close();
    }
  },
};

// A kid as signers.json allows it.
const AUDIT_KID = /^[\x21-\x7E]{1,256}$/;

async function verify(dir: string | undefined, log: string, values: OptionValues, io: CommandIo, heldKeys: readonly ExternalAuditMacKey[]): Promise<CommandResult> {
  const env = io.env;
  const allowEmpty = flag(values, 'allow-empty');
  if (dir === undefined) return verifyFile(log, await readVerifierKeys(optionalString(values, 'signers'), values, env, heldKeys, io), allowEmpty);
  const { managerAuditChain } = await import('@drover/manager');
  const chain = await managerAuditChain(dir, env);
  const signers = await readVerifierKeys(optionalString(values, 'signers') ?? chain.signersPath, values, env, heldKeys, io);
  if (chain.kind === 'file') return verifyFile(chain.path, signers, allowEmpty);
  return report({ database: chain.database }, await verifyAuditLogLines(chain.lines(), signers, { allowEmpty, finalLineTerminated: true }));
}

interface HeldMacKey {
  kind: 'kms' | 'pkcs11';
  key: ExternalAuditMacKey;
}

// --hmac-kms [KID=]awskms:KEY and --hmac-pkcs11 [KID=]pkcs11:URI, each opened (an HMAC key, or
// refused) before any record is read.
async function openHeldMacKeys(kms: readonly string[], pkcs11: readonly string[], io: { env: NodeJS.ProcessEnv; stderr(text: string): void }): Promise<HeldMacKey[]> {
  if (kms.length === 0 && pkcs11.length === 0) return [];
  const { openKmsAuditMacKey, openPkcs11AuditMacKey } = await import('@drover/manager');
  const held: HeldMacKey[] = [];
  const given = [...kms.map((text) => ({ kind: 'kms' as const, text })), ...pkcs11.map((text) => ({ kind: 'pkcs11' as const, text }))];
  try {
    for (const { kind, text } of given) {
      // A key name starts with its scheme; anything else is KID=NAME (a kid may hold ":", a name holds "=").
      const at = text.indexOf('=');
      const named = !/^(awskms|pkcs11):/.test(text) && at > 0;
      const kid = named ? text.slice(0, at) : undefined;
      const spec = named ? text.slice(at + 1) : text;
      if (kid !== undefined && !AUDIT_KID.test(kid)) throw new CliError('USAGE_ERROR', `--hmac-${kind}: the kid before "=" must be 1-256 printable ASCII characters without spaces, as in signers.json.`);
      const key = kind === 'kms' ? openKmsAuditMacKey(spec, { env: io.env, kid }) : openPkcs11AuditMacKey(spec, { env: io.env, kid });
      held.push({ kind, key });
      if (held.some((other) => other.key !== key && other.key.kid === key.kid)) throw new CliError('USAGE_ERROR', `Two --hmac-kms / --hmac-pkcs11 keys have the kid ${JSON.stringify(key.kid)}; give each its KID= as signers.json lists it.`);
    }
  } catch (error) {
    for (const { key } of held) key.close();
    throw error;
  }
  for (const { kind, key } of held) {
    io.stderr(`checking the MACs of ${key.kid} (${key.uri}) ${kind === 'kms' ? 'through AWS KMS: one VerifyMac call' : 'in the token: one C_Verify'} per record\n`);
  }
  return held;
}

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

// The signers.json text: --signers, else the seed's KERNEL_PUBLIC_KEYS_JSON (the document itself),
// KERNEL_PUBLIC_KEYS_PATH or KERNEL_PUBLIC_KEYS_URL (https, pinned by KERNEL_PUBLIC_KEYS_URL_SHA256).
async function signersText(signersPath: string | undefined, env: NodeJS.ProcessEnv): Promise<string> {
  if (signersPath !== undefined) return (await readInput(signersPath, 'Signers file')).toString('utf8');
  const inline = env['KERNEL_PUBLIC_KEYS_JSON'];
  if (inline !== undefined && inline.trim() !== '') return inline;
  const path = env['KERNEL_PUBLIC_KEYS_PATH'];
  if (path !== undefined && path.trim() !== '') return (await readInput(path, 'Signers file (KERNEL_PUBLIC_KEYS_PATH)')).toString('utf8');
  const url = env['KERNEL_PUBLIC_KEYS_URL'];
  if (url !== undefined && url.trim() !== '') {
    const { fetchPinned } = await import('@drover/manager');
    return (await fetchPinned(url, env['KERNEL_PUBLIC_KEYS_URL_SHA256'], 'public key set (KERNEL_PUBLIC_KEYS_URL)')).toString('utf8');
  }
  throw new CliError('USAGE_ERROR', 'Give the audit keys with --signers FILE, or KERNEL_PUBLIC_KEYS_JSON, KERNEL_PUBLIC_KEYS_PATH or KERNEL_PUBLIC_KEYS_URL.');
}

// signers.json's public keys, with the HMAC secrets given by --hmac-key-file and the keys held in
// KMS or a token (--hmac-kms, --hmac-pkcs11). signers.json says which kids are trusted: a secret for
// a kid it does not list is left out (with a warning), so a key file holding other keys trusts none of them.
async function readVerifierKeys(signersPath: string | undefined, values: OptionValues, env: NodeJS.ProcessEnv, heldKeys: readonly ExternalAuditMacKey[], io: CommandIo): Promise<AuditSignerKeys> {
  const listed: AuditSignerKeys = parseAuditSigners(await signersText(signersPath, env));
  const onlyListed = <K>(given: Iterable<[string, K]>, source: string): Map<string, K> => {
    const kept = new Map<string, K>();
    for (const [kid, key] of given) {
      if (listed.has(kid)) kept.set(kid, key);
      else io.stderr(`drover: warning: ${source} has kid ${JSON.stringify(kid)}, which signers.json does not list: not trusted, its records stay UNKNOWN_SIGNER\n`);
    }
    return kept;
  };
  let keys = listed;
  for (const path of stringList(values, 'hmac-key-file')) {
    keys = withAuditHmacKeys(keys, onlyListed(parseAuditHmacKeys((await readInput(path, 'HMAC key file')).toString('utf8')), `--hmac-key-file ${path}`));
  }
  if (heldKeys.length > 0) keys = withAuditHmacKeys(keys, onlyListed(heldKeys.map((k) => [k.kid, k.key]), '--hmac-kms / --hmac-pkcs11'));
  return keys;
}

async function verifyFile(path: string, signers: AuditSignerKeys, allowEmpty: boolean): Promise<CommandResult> {
  const info = await stat(path).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError('FILE_NOT_FOUND', `Audit log ${path} does not exist. Check the path.`, { cause: error });
    throw error;
  });
  if (!info.isFile()) throw new CliError('USAGE_ERROR', `Audit log ${path} is not a regular file.`);
  const { verifyAuditLogFile } = await import('@drover/manager');
  const result = await verifyAuditLogFile(path, signers, allowEmpty);
  return report({ file: path }, result);
}
