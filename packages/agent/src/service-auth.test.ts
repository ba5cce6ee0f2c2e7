import { tokenId } from '@drover/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { TOKEN, adapters, call, makeAgent, shutdownCall } from '../test/harness.js';
import type { Running } from '../test/harness.js';

// secret: a token never appears in a log line; a refused one is named by its id only.
describe.each(adapters)('failed auth is logged by token id, never the token ($name)', ({ start }) => {
  let server: Running | undefined;
  afterEach(async () => {
    await server?.close();
  });

  it('logs tokenId of each wrong token and no token text at all', async () => {
    const t = makeAgent();
    server = await start(t.agent);
    const wrong = ['wrong-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', `${TOKEN}x`, TOKEN.slice(0, -2), `${TOKEN.slice(0, 20)}zzzzzzzzzzzzzzzzzzzzzzz`];
    for (const token of wrong) {
      const reply = await call(server.port, shutdownCall({ reason: 'r', confirm: true }, { authorization: `Bearer service:${token}` }));
      expect(reply.status).toBe(401);
      expect(reply.text).not.toContain(token);
    }
    // The right token, and tokens presented the wrong way, are not logged either.
    expect((await call(server.port, shutdownCall({ reason: 'r', confirm: false }))).status).toBe(400);
    expect((await call(server.port, shutdownCall({ reason: 'r', confirm: true }, { authorization: `Bearer ${TOKEN}` }))).status).toBe(401);
    expect((await call(server.port, shutdownCall({ reason: 'r', confirm: true }, { authorization: `Basic ${TOKEN}` }))).status).toBe(401);

    const refused = t.lines.filter((l) => l.obj.event === 'auth_refused');
    expect(refused.map((l) => l.obj.tokenId).filter((id) => id !== undefined)).toEqual(wrong.map((token) => tokenId(token)));
    expect(refused.every((l) => l.level === 'warn' && l.obj.component === 'drover:agent')).toBe(true);
    const captured = JSON.stringify(t.lines);
    for (const secret of [TOKEN, ...wrong]) expect(captured).not.toContain(secret);
    // Not even a long piece of the right token (a prefix-sharing wrong token must not echo it).
    expect(captured).not.toContain(TOKEN.slice(0, 20));
  });
});
