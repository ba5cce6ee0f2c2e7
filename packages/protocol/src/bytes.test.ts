import { describe, expect, it } from 'vitest';
import { fromBase64, fromBase64Url, fromHex, toBase64, toBase64Url } from './bytes.js';

describe('strict decoders', () => {
  it('decode only canonical base64', () => {
    expect(fromBase64('AAE=')).toEqual(new Uint8Array([0, 1]));
    for (const text of ['AAE', 'AAE==', 'AAF=', 'A AE=', 'AAE=\n']) expect(fromBase64(text)).toBeUndefined();
  });

  it('decode base64url with or without exact padding, and nothing else', () => {
    expect(fromBase64Url('AAE')).toEqual(new Uint8Array([0, 1]));
    expect(fromBase64Url('AAE=')).toEqual(new Uint8Array([0, 1]));
    expect(fromBase64Url('AA==')).toEqual(new Uint8Array([0]));
    for (const text of ['AA=', 'AAE==', 'AAF', 'A+E', 'A/E', 'A', '=']) expect(fromBase64Url(text)).toBeUndefined();
  });

  it('round-trip', () => {
    const bytes = new Uint8Array([251, 255, 0, 62, 63]);
    expect(fromBase64(toBase64(bytes))).toEqual(bytes);
    expect(fromBase64Url(toBase64Url(bytes))).toEqual(bytes);
    expect(fromHex('00ff')).toEqual(new Uint8Array([0, 255]));
    expect(fromHex('0g')).toBeUndefined();
  });
});
