import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readNodeBody, readWebBody } from './body.js';
import { limits } from './config.js';
import { makeAgent, AUTH } from '../test/harness.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('body reading', () => {
  it('stops at the limit and pauses the stream rather than buffering more', async () => {
    const stream = new PassThrough();
    const reading = readNodeBody(stream, undefined);
    stream.write(Buffer.alloc(limits.maxBodyBytes));
    stream.write(Buffer.alloc(1));
    await expect(reading).resolves.toEqual({ bodyTooLarge: true });
    expect(stream.isPaused()).toBe(true);
  });

  it('refuses a declared Content-Length over the limit without reading', async () => {
    const stream = new PassThrough();
    await expect(readNodeBody(stream, String(limits.maxBodyBytes + 1))).resolves.toEqual({ bodyTooLarge: true });
    await expect(readNodeBody(stream, 'abc')).resolves.toEqual({ bodyTooLarge: true });
    const request = new Request('http://127.0.0.1/', { method: 'POST', body: 'x'.repeat(limits.maxBodyBytes + 1) });
    await expect(readWebBody(request)).resolves.toEqual({ bodyTooLarge: true });
  });

  it('gives up on a body that trickles in past bodyReadTimeoutMs (slow loris), and the core answers 408', async () => {
    vi.useFakeTimers();
    const stream = new PassThrough();
    const reading = readNodeBody(stream, '100');
    stream.write('{"reason":');
    await vi.advanceTimersByTimeAsync(limits.bodyReadTimeoutMs + 1);
    const read = await reading;
    expect(read).toEqual({ bodyTimedOut: true });
    vi.useRealTimers();
    const { agent } = makeAgent();
    const response = await agent.handle({ method: 'POST', path: '/v1/system/shutdown', headers: AUTH, ...read });
    expect(response.status).toBe(408);
    expect(JSON.parse(response.body)).toMatchObject({ error: { code: 'REQUEST_TIMEOUT' } });
  });

  it('a Web body that never ends times out too', async () => {
    vi.useFakeTimers();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{'));
      },
    });
    const request = new Request('http://127.0.0.1/', { method: 'POST', body, duplex: 'half' });
    const reading = readWebBody(request);
    await vi.advanceTimersByTimeAsync(limits.bodyReadTimeoutMs + 1);
    await expect(reading).resolves.toEqual({ bodyTimedOut: true });
  });
});
