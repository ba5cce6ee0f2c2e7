import type { Command } from '../cli.js';
import { optionalString, parseDurationSeconds } from '../cli.js';
import { CliError } from '../errors.js';
import { operatorClient, operatorOptions } from '../operator.js';
import { formatTable } from '../table.js';

interface CreatedToken {
  token: string;
  tokenId: string;
  seats: number;
  expiresAt: string;
}

export const enrollTokenCreateCommand: Command = {
  usage: '--manager URL [--token-file FILE] [--seats N] [--expires-in 1h] [--note TEXT]',
  options: {
    ...operatorOptions(),
    seats: { type: 'string', arg: 'N', help: 'How many hosts may enroll with it (default: 1).' },
    'expires-in': { type: 'string', arg: 'DURATION', help: 'How long it stays valid: 30m, 1h, 7d (default: 24h).' },
    note: { type: 'string', arg: 'TEXT', help: 'What it is for; shown in listings and the audit log.' },
  },
  async run({ values, io }) {
    const seatsText = optionalString(values, 'seats');
    const seats = seatsText === undefined ? undefined : Number(seatsText);
    if (seats !== undefined && (!Number.isInteger(seats) || seats < 1)) throw new CliError('USAGE_ERROR', `--seats takes a whole number of at least 1; got "${seatsText ?? ''}".`);
    const expiresIn = optionalString(values, 'expires-in');
    const note = optionalString(values, 'note');
    const client = await operatorClient(values, io);
    // Not retried: a retry after a lost answer would create a second token.
    const created = (await client.json({
      method: 'POST',
      path: '/v1/enrollment-tokens',
      json: { ...(seats === undefined ? {} : { seats }), ...(expiresIn === undefined ? {} : { expiresInSeconds: parseDurationSeconds(expiresIn, 'expires-in') }), ...(note === undefined ? {} : { note }) },
      retry: false,
    })) as CreatedToken;
    return {
      data: created,
      text: [`Enrollment token ${created.tokenId} (${created.seats} seat(s), expires ${created.expiresAt}); shown once, keep it secret:`, `  ${created.token}`].join('\n'),
    };
  },
};

interface TokenRow {
  tokenId: string;
  seats: number;
  used: number;
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
  createdBy: string;
  note: string | null;
}

export const enrollTokenListCommand: Command = {
  usage: '--manager URL [--token-file FILE]',
  options: operatorOptions(),
  async run({ values, io }) {
    const client = await operatorClient(values, io);
    const { tokens } = (await client.json({ method: 'GET', path: '/v1/enrollment-tokens' })) as { tokens: TokenRow[] };
    const now = Date.now();
    const state = (t: TokenRow): string => (t.revokedAt !== null ? 'revoked' : Date.parse(t.expiresAt) <= now ? 'expired' : t.used >= t.seats ? 'used up' : 'valid');
    const rows = tokens.map((t) => [t.tokenId, `${t.used}/${t.seats}`, t.expiresAt, state(t), t.createdBy, t.note ?? '']);
    return { data: { tokens }, text: [...formatTable(['TOKEN ID', 'USED', 'EXPIRES', 'STATE', 'CREATED BY', 'NOTE'], rows), `${tokens.length} token(s); the tokens themselves were shown once, at creation`].join('\n') };
  },
};

export const enrollTokenRevokeCommand: Command = {
  usage: 'TOKEN_ID --manager URL [--token-file FILE]',
  options: operatorOptions(),
  arguments: ['<TOKEN_ID>'],
  async run({ values, positionals, io }) {
    const tokenId = positionals[0] ?? '';
    const client = await operatorClient(values, io);
    await client.json({ method: 'DELETE', path: `/v1/enrollment-tokens/${encodeURIComponent(tokenId)}` });
    return { data: { tokenId, revoked: true }, text: `REVOKED ${tokenId}: no host can enroll with it any more (hosts it enrolled stay enrolled)` };
  },
};
