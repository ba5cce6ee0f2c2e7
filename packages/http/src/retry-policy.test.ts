import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, defaultRetryPolicy, isNetworkError, isRepeatable, isRetryableStatus, parseRetryAfter, retryDelay } from './retry-policy.js';

describe('the retry policy', () => {
  it('classifies statuses: 408, 429 and 5xx are worth another attempt, nothing else', () => {
    expect([408, 429, 500, 502, 503, 504, 599].every(isRetryableStatus)).toBe(true);
    expect([200, 204, 301, 400, 401, 403, 404, 409, 426].some(isRetryableStatus)).toBe(false);
  });

  it('repeats only idempotent methods, a request with an Idempotency-Key, or one declared idempotent', () => {
    expect(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'].every((method) => isRepeatable(method, {}, undefined))).toBe(true);
    expect(isRepeatable('POST', {}, undefined)).toBe(false);
    expect(isRepeatable('PATCH', undefined, undefined)).toBe(false);
    expect(isRepeatable('POST', { 'Idempotency-Key': 'k' }, undefined)).toBe(true);
    expect(isRepeatable('POST', {}, true)).toBe(true);
    expect(isRepeatable('GET', {}, false)).toBe(false);
  });

  it('knows network errors by their code or their cause\'s', () => {
    expect(isNetworkError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isNetworkError(new Error('x', { cause: Object.assign(new Error('y'), { code: 'UND_ERR_HEADERS_TIMEOUT' }) }))).toBe(true);
    expect(isNetworkError(Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' }))).toBe(false);
    expect(isNetworkError(undefined)).toBe(false);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(['7', '9'])).toBe(7000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  it('jitters backoff within the exponential bound, and honours Retry-After up to the cap, spread by up to half of it', () => {
    fc.assert(
      fc.property(fc.nat(40), fc.double({ min: 0, max: 0.999999, noNaN: true }), fc.option(fc.nat(100_000), { nil: undefined }), (attempt, random, retryAfterS) => {
        const bound = Math.min(defaultRetryPolicy.backoffMaxMs, defaultRetryPolicy.backoffBaseMs * 2 ** attempt);
        const backoff = backoffDelay(attempt, defaultRetryPolicy.backoffBaseMs, defaultRetryPolicy.backoffMaxMs, () => random);
        expect(backoff).toBeGreaterThanOrEqual(0);
        expect(backoff).toBeLessThan(Math.max(1, bound));
        const wait = retryDelay(defaultRetryPolicy, attempt, retryAfterS === undefined ? undefined : String(retryAfterS), () => random);
        if (retryAfterS === undefined) expect(wait).toBe(backoff);
        else {
          const floor = Math.min(retryAfterS * 1000, defaultRetryPolicy.retryAfterMaxMs);
          expect(wait).toBeGreaterThanOrEqual(Math.max(backoff, floor));
          expect(wait).toBe(Math.max(backoff, floor + Math.floor((random * floor) / 2)));
        }
      }),
    );
  });
});
