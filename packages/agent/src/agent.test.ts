import { afterEach, describe, expect, it, vi } from 'vitest';
import { limits } from './config.js';
import { AgentError, createAgent } from './index.js';
import type { AgentOptions, AgentRequest } from './index.js';
import { AUTH, TOKEN, hold, makeAgent, until } from '../test/harness.js';

afterEach(() => {
  vi.useRealTimers();
});

const base = { version: '1.0.0', drainTimeoutMs: 1_000, onShutdown: () => undefined, exit: false } satisfies Partial<AgentOptions>;

function isAgentError(code: string): (error: unknown) => boolean {
  return (error) => error instanceof AgentError && error.code === code;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

function shutdownRequest(body: unknown, headers: AgentRequest['headers'] = AUTH): AgentRequest {
  return { method: 'POST', path: '/v1/system/shutdown', headers, body: JSON.stringify(body) };
}

describe('createAgent: the service token', () => {
  const authorizes = (agent: ReturnType<typeof createAgent>, token: string): boolean =>
    agent.requireServiceToken({ method: 'POST', path: '/x', headers: { authorization: `Bearer service:${token}` } }) === undefined;

  it('reads DROVER_SERVICE_TOKEN first, then CIRIS_SERVICE_TOKEN', () => {
    const both = createAgent({ ...base, env: { DROVER_SERVICE_TOKEN: 'drover-token', CIRIS_SERVICE_TOKEN: 'ciris-token' } });
    expect(authorizes(both, 'drover-token')).toBe(true);
    expect(authorizes(both, 'ciris-token')).toBe(false);
    const ciris = createAgent({ ...base, env: { CIRIS_SERVICE_TOKEN: 'ciris-token' } });
    expect(authorizes(ciris, 'ciris-token')).toBe(true);
    const blankDrover = createAgent({ ...base, env: { DROVER_SERVICE_TOKEN: '  ', CIRIS_SERVICE_TOKEN: 'ciris-token' } });
    expect(authorizes(blankDrover, 'ciris-token')).toBe(true);
  });

  it('an explicit serviceToken wins over the environment', () => {
    const agent = createAgent({ ...base, serviceToken: 'explicit', env: { DROVER_SERVICE_TOKEN: 'from-env' } });
    expect(authorizes(agent, 'explicit')).toBe(true);
    expect(authorizes(agent, 'from-env')).toBe(false);
  });

  it('with no token anywhere, creation fails with SERVICE_TOKEN_MISSING: it never runs open', () => {
    expect(thrown(() => createAgent({ ...base, env: {} }))).toSatisfy(isAgentError('SERVICE_TOKEN_MISSING'));
    expect(thrown(() => createAgent({ ...base, env: { DROVER_SERVICE_TOKEN: '', CIRIS_SERVICE_TOKEN: ' ' } }))).toSatisfy(isAgentError('SERVICE_TOKEN_MISSING'));
    // An explicit but empty token is a mistake in the caller's config, not a cue to look elsewhere.
    expect(thrown(() => createAgent({ ...base, serviceToken: '', env: { DROVER_SERVICE_TOKEN: 'ignored' } }))).toSatisfy(isAgentError('SERVICE_TOKEN_MISSING'));
  });

  it('a token with whitespace inside is refused, and the message does not repeat it', () => {
    const error = thrown(() => createAgent({ ...base, serviceToken: 'abc def-secret' }));
    expect(error).toSatisfy(isAgentError('SERVICE_TOKEN_INVALID'));
    expect((error as Error).message).not.toContain('def-secret');
  });

  it.each([
    ['no version', { version: '' }],
    ['a version with a newline', { version: '1.0\n' }],
    ['a negative drainTimeoutMs', { drainTimeoutMs: -1 }],
    ['a NaN drainTimeoutMs', { drainTimeoutMs: Number.NaN }],
    ['a drainTimeoutMs setTimeout cannot honour', { drainTimeoutMs: 2 ** 31 }],
    ['no onShutdown', { onShutdown: undefined }],
    ['retryAfterSeconds 0', { retryAfterSeconds: 0 }],
    ['an unknown health status', { health: 'fine' }],
  ])('refuses options with %s (AGENT_OPTIONS_INVALID)', (_, override) => {
    const options = { ...base, serviceToken: TOKEN, ...override } as unknown as AgentOptions;
    expect(thrown(() => createAgent(options))).toSatisfy(isAgentError('AGENT_OPTIONS_INVALID'));
  });
});

describe('critical sections', () => {
  it('mark the agent busy while they run and pass the result through', async () => {
    const { agent } = makeAgent();
    expect(agent.busy()).toBe(false);
    let finish = (): void => undefined;
    const running = agent.critical(
      'job',
      () =>
        new Promise<number>((resolve) => {
          finish = () => {
            resolve(42);
          };
        }),
    );
    expect(agent.busy()).toBe(true);
    expect(agent.busyWith()).toEqual(['job']);
    finish();
    await expect(running).resolves.toBe(42);
    expect(agent.busy()).toBe(false);
  });

  it('count concurrent and nested sections; names are distinct, oldest first', async () => {
    const { agent } = makeAgent();
    const a1 = hold(agent, 'a');
    const b = hold(agent, 'b');
    const a2 = hold(agent, 'a');
    expect(agent.busyWith()).toEqual(['a', 'b']);
    a1.release();
    await a1.done;
    expect(agent.busyWith()).toEqual(['b', 'a']);
    b.release();
    a2.release();
    await Promise.all([b.done, a2.done]);
    expect(agent.busy()).toBe(false);

    let innerRelease = (): void => undefined;
    const outer = agent.critical('outer', async () => {
      // A section counts from the moment critical() is called: nothing to wait for.
      const inner = agent.critical('inner', () => new Promise<void>((resolve) => (innerRelease = resolve)));
      expect(agent.busyWith()).toEqual(['outer', 'inner']);
      innerRelease();
      await inner;
      expect(agent.busyWith()).toEqual(['outer']);
    });
    await outer;
    expect(agent.busy()).toBe(false);
  });

  it('a throwing section rejects and is no longer counted', async () => {
    const { agent } = makeAgent();
    await expect(
      agent.critical('sync-throw', () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(agent.critical('async-throw', () => Promise.reject(new Error('bang')))).rejects.toThrow('bang');
    expect(agent.busy()).toBe(false);
  });

  it('refuse a bad name with CRITICAL_SECTION_INVALID', async () => {
    const { agent } = makeAgent();
    await expect(agent.critical('', () => 1)).rejects.toSatisfy(isAgentError('CRITICAL_SECTION_INVALID'));
    await expect(agent.critical('x'.repeat(257), () => 1)).rejects.toSatisfy(isAgentError('CRITICAL_SECTION_INVALID'));
  });

  it('are refused once a shutdown is accepted, except those nested in a section still running', async () => {
    const { agent } = makeAgent({ drainTimeoutMs: 5_000 });
    let step = (): void => undefined;
    const outer = agent.critical('outer', async () => {
      await new Promise<void>((resolve) => (step = resolve));
      // The drain is waiting for this section: its own inner steps must still run.
      return agent.critical('outer-step', () => 'nested ok');
    });
    const stopping = agent.shutdown('test');
    await expect(agent.critical('new', () => 1)).rejects.toSatisfy(isAgentError('AGENT_SHUTTING_DOWN'));
    step();
    await expect(outer).resolves.toBe('nested ok');
    await stopping;
  });
});

describe('shutdown', () => {
  it('agent.shutdown drains, calls onShutdown once (source api) and exits 0; HTTP then answers 409', async () => {
    // The drain's clock is faked: the shutdown must still be waiting for 'flush' a hair before its 5 s drain timeout.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const t = makeAgent({ drainTimeoutMs: 5_000 });
    const section = hold(t.agent, 'flush');
    const first = t.agent.shutdown('SIGTERM\n');
    const second = t.agent.shutdown('again');
    await vi.advanceTimersByTimeAsync(4_900);
    expect(t.shutdowns).toHaveLength(0);
    vi.useRealTimers();
    section.release();
    await Promise.all([first, second]);
    expect(t.shutdowns).toEqual([expect.objectContaining({ reason: 'SIGTERM ', drained: true })]);
    expect(t.exits).toEqual([0]);
    const reply = await t.agent.handle(shutdownRequest({ reason: 'x', confirm: true }));
    expect(reply.status).toBe(409);
  });

  it('exits 1 when onShutdown throws, and logs why', async () => {
    const t = makeAgent({
      onShutdown: () => {
        throw new Error('disk full');
      },
    });
    await t.agent.shutdown('test');
    expect(t.exits).toEqual([1]);
    expect(t.lines.some((l) => l.level === 'error' && l.obj.event === 'shutdown_hook_failed')).toBe(true);
  });

  it('exits 1 when onShutdown outlives onShutdownTimeoutMs', async () => {
    const t = makeAgent({ onShutdownTimeoutMs: 100, onShutdown: () => new Promise<void>(() => undefined) });
    const started = performance.now();
    await t.agent.shutdown('test');
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    expect(t.exits).toEqual([1]);
  });

  it('with exit: false nothing exits, and `closed` resolves after onShutdown', async () => {
    let ran = false;
    const agent = createAgent({ ...base, serviceToken: TOKEN, onShutdown: () => void (ran = true) });
    await agent.shutdown('embedded');
    await agent.closed;
    expect(ran).toBe(true);
    expect(agent.shuttingDown()).toBe(true);
  });

  it('goes ahead on its own when an adapter never reports the 200 sent', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const t = makeAgent();
    const reply = await t.agent.handle(shutdownRequest({ reason: 'x', confirm: true }));
    expect(reply.status).toBe(200);
    expect(reply.sent).toBeTypeOf('function');
    await vi.advanceTimersByTimeAsync(limits.responseFlushFallbackMs - 1);
    expect(t.exits).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await t.agent.closed;
    expect(t.exits).toEqual([0]);
  });

  it('calls onShutdown once even when `sent` is reported twice', async () => {
    const t = makeAgent();
    const reply = await t.agent.handle(shutdownRequest({ reason: 'x', confirm: true }));
    reply.sent?.();
    reply.sent?.();
    // Both reports are in before the shutdown runs: once it has closed, a second onShutdown would be recorded.
    await t.agent.closed;
    expect(t.shutdowns).toHaveLength(1);
    expect(t.exits).toEqual([0]);
  });
});

describe('the core handler', () => {
  it('of ten shutdown requests handled at once, exactly one is accepted (the claim has no await before it)', async () => {
    const t = makeAgent();
    const replies = await Promise.all(Array.from({ length: 10 }, () => t.agent.handle(shutdownRequest({ reason: 'x', confirm: true }))));
    expect(replies.map((r) => r.status).sort()).toEqual([200, ...Array<number>(9).fill(409)]);
    for (const reply of replies) reply.sent?.();
    await until(() => t.exits.length > 0);
    expect(t.shutdowns).toHaveLength(1);
  });

  it('answers 404 and 405 for paths and methods that are not its own, and strips a query string', async () => {
    const { agent } = makeAgent();
    expect((await agent.handle({ method: 'GET', path: '/nope', headers: {} })).status).toBe(404);
    expect((await agent.handle({ method: 'get', path: '/v1/system/health', headers: {} })).status).toBe(405);
    expect((await agent.handle({ method: 'GET', path: '/v1/system/health?verbose=1', headers: {} })).status).toBe(200);
    expect(agent.handles('/v1/system/shutdown?x')).toBe(true);
    expect(agent.handles('/v1/system/shutdown/')).toBe(false);
    expect(agent.handles('/__proto__')).toBe(false);
  });

  it('reports degraded when the health function throws or returns nonsense', async () => {
    const { agent } = makeAgent({
      health: () => {
        throw new Error('db down');
      },
    });
    expect(JSON.parse((await agent.handle({ method: 'GET', path: '/v1/system/health', headers: {} })).body)).toEqual({ status: 'degraded', version: '1.2.3', busy: false });
    agent.setHealth(() => 'fine' as 'healthy');
    expect(agent.health().status).toBe('degraded');
  });

  it('can require the token on the health route', async () => {
    const { agent } = makeAgent({ healthRequiresToken: true });
    expect((await agent.handle({ method: 'GET', path: '/v1/system/health', headers: {} })).status).toBe(401);
    expect((await agent.handle({ method: 'GET', path: '/v1/system/health', headers: AUTH })).status).toBe(200);
  });

  it('a throwing logger does not turn a refusal into a 500', async () => {
    const boom = (): never => {
      throw new Error('logger down');
    };
    const { agent } = makeAgent({ logger: { info: boom, warn: boom, error: boom } });
    expect((await agent.handle(shutdownRequest({ reason: 'x', confirm: true }, {}))).status).toBe(401);
    expect((await agent.handle(shutdownRequest({ reason: 'x' }))).status).toBe(400);
  });

  it('uses retryAfterSeconds in Retry-After', async () => {
    const { agent } = makeAgent({ retryAfterSeconds: 42.5 });
    const section = hold(agent, 'x');
    const reply = await agent.handle(shutdownRequest({ reason: 'x', confirm: true }));
    expect(reply.status).toBe(503);
    expect(reply.headers['retry-after']).toBe('43');
    section.release();
  });
});
