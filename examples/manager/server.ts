// The manager embedded in an application's own Fastify server: the app keeps its routes, drover's
// routes live under a path prefix, and both stop together on SIGTERM. The manager's state is the
// directory `drover manager init --dir DIR` made, read the way `drover manager start` reads it.
// Every line it prints is JSON; see README.md beside it.
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import Fastify from 'fastify';
import { createManagerLogger, managerLimits, managerPlugin } from '@drover/manager';
import { isDroverError } from '@drover/protocol';

const APP_VERSION = '1.0.0';
// The same pattern manager.json's settings.routePrefix must match.
const PREFIX_PATTERN = /^(\/[A-Za-z0-9._~-]+)+$/;

function die(message: string, fields: Record<string, unknown> = {}): never {
  process.stderr.write(`${JSON.stringify({ level: 'error', msg: message, ...fields })}\n`);
  process.exit(1);
}

function port(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return 8080;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65_535) die('PORT must be an integer from 0 to 65535.', { PORT: raw });
  return value;
}

/** The directory's first admin token (manager.json names its file): the app calls the operator API as an operator would. */
async function adminToken(dir: string): Promise<string> {
  const config = JSON.parse(await readFile(join(dir, 'manager.json'), 'utf8')) as { paths: { adminTokens: string } };
  const path = config.paths.adminTokens;
  return (await readFile(isAbsolute(path) ? path : join(dir, path), 'utf8')).split('\n')[0]?.trim() ?? '';
}

async function main(): Promise<void> {
  const dir = process.argv[2] ?? process.env['DROVER_MANAGER_DIR'];
  if (dir === undefined || dir === '') die('No manager directory: pass it as the first argument or DROVER_MANAGER_DIR. Create one with `drover manager init --dir DIR`.');
  const prefix = process.env['DROVER_PREFIX'] ?? '/drover';
  // Under no prefix the plugin's not-found handler would answer the whole app's 404s.
  if (!PREFIX_PATTERN.test(prefix)) die('DROVER_PREFIX must be a path such as /drover (not empty, no trailing slash).', { DROVER_PREFIX: prefix });
  const host = process.env['HOST'] ?? '127.0.0.1';
  const listenPort = port(process.env['PORT']);

  // drover's logger drops query strings (presigned download signatures) and redacts tokens, so the
  // app's request logs use it too.
  const logger = createManagerLogger();
  const app = Fastify({
    loggerInstance: logger,
    // Agent ids, artifact names and versions are up to 128 characters (Fastify's default is 100).
    routerOptions: { maxParamLength: 256 },
    // While stopping, a new request on an open connection still reaches the routes, so drover's
    // answer the manager's own 503 SHUTTING_DOWN rather than Fastify's bare 503.
    return503OnClosing: false,
  });

  // drover's routes under the prefix: the plugin reads the directory (manager.json, keys, tokens,
  // trust policy, the encryption key from the environment, else the key file) as `drover manager
  // start` does, and the URLs it hands out (downloads, uploads) carry the prefix. Closing the app
  // stops the manager too: new requests to it get 503 SHUTTING_DOWN, then it closes.
  await app.register(managerPlugin, { dir, logger, prefix });

  // The application's own routes. The fleet comes from drover's operator API, in-process.
  let stopping = false;
  const token = await adminToken(dir);
  app.get('/', () => ({ app: 'my-app', version: APP_VERSION }));
  app.get('/my/status', async () => {
    const agents = await app.inject({ method: 'GET', url: `${prefix}/v1/agents?limit=1`, headers: { authorization: `Bearer ${token}` } });
    return { app: 'my-app', drover: stopping ? 'stopping' : 'serving', prefix, anyAgentEnrolled: (agents.json<{ total: number }>()).total > 0 };
  });

  let address: string;
  try {
    address = await app.listen({ host, port: listenPort });
  } catch (error) {
    await app.close();
    throw error;
  }
  const bound = app.server.address();
  const boundPort = typeof bound === 'object' && bound !== null ? bound.port : listenPort;
  process.stdout.write(`${JSON.stringify({ event: 'app.listening', port: boundPort, url: address, manager: `${address}${prefix}` })}\n`);

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: 'app.signal', signal }, `received ${signal}: stopping`);
    // In-flight requests get the manager's grace period; after it, open connections are cut.
    const timer = setTimeout(() => {
      app.server.closeAllConnections();
    }, managerLimits.shutdownGraceMs);
    timer.unref();
    app.close().then(
      () => {
        clearTimeout(timer);
        process.exitCode = 0;
      },
      (error: unknown) => {
        logger.error({ event: 'app.stop_failed', err: error }, 'failed to stop cleanly');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  // Config and key errors carry a stable code and say what to do next.
  die(error instanceof Error ? error.message : String(error), isDroverError(error) ? { code: error.code } : {});
});
