import { describe, expect, it } from 'vitest';
import { parseShutdownRequest } from './shutdown-request.js';

function codeOf(body: string | Uint8Array | undefined): string {
  const parsed = parseShutdownRequest(body);
  if (parsed.ok) return 'OK';
  return (JSON.parse(parsed.response.body) as { error: { code: string } }).error.code;
}

describe('parseShutdownRequest', () => {
  it('accepts the CIRIS body, with or without force, and ignores unknown fields', () => {
    expect(parseShutdownRequest('{"reason":"update","confirm":true}')).toEqual({ ok: true, request: { reason: 'update', force: false } });
    expect(parseShutdownRequest(new TextEncoder().encode('{"reason":"u","force":true,"confirm":true,"extra":[1]}'))).toEqual({
      ok: true,
      request: { reason: 'u', force: true },
    });
  });

  it('replaces control characters in the reason with spaces', () => {
    const parsed = parseShutdownRequest(JSON.stringify({ reason: 'a\r\nb\u0085c\u2029d\u007f', confirm: true }));
    expect(parsed).toEqual({ ok: true, request: { reason: 'a  b c d ', force: false } });
  });

  it('does not read confirm or reason from a __proto__ key (prototype tricks)', () => {
    expect(codeOf('{"__proto__":{"confirm":true},"reason":"x"}')).toBe('CONFIRM_REQUIRED');
    expect(codeOf('{"__proto__":{"reason":"x"},"confirm":true}')).toBe('BODY_INVALID');
  });

  it.each([
    [undefined, 'BODY_MALFORMED'],
    ['   ', 'BODY_MALFORMED'],
    ['{', 'BODY_MALFORMED'],
    [new Uint8Array([0xc3, 0x28]), 'BODY_MALFORMED'],
    ['[1]', 'BODY_INVALID'],
    ['{"reason":["x"],"confirm":true}', 'BODY_INVALID'],
    ['{"reason":"x","confirm":1}', 'BODY_INVALID'],
    ['{"reason":"x","force":0,"confirm":true}', 'BODY_INVALID'],
    ['{"reason":"x","confirm":null}', 'BODY_INVALID'],
    ['{"reason":"x","confirm":false}', 'CONFIRM_REQUIRED'],
    ['{"reason":"x"}', 'CONFIRM_REQUIRED'],
  ])('refuses %j with %s', (body, code) => {
    expect(codeOf(body)).toBe(code);
  });

  it('survives deeply nested JSON', () => {
    expect(codeOf('['.repeat(8000) + ']'.repeat(8000))).toBe('BODY_INVALID');
  });
});
