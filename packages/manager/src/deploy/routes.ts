import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DeploymentActionParamsSchema, DeploymentActionRequestSchema, DeploymentStatusQuerySchema, UpdateNotificationSchema } from '@drover/protocol';
import { managerLimits } from '../config.js';
import { eventView, summaryOf } from './status.js';
import type { ManagerCore } from '../server/core.js';
import { operatorAccess } from '../http/operator-auth.js';
import { ChangelogQuerySchema, DeploymentEventsQuerySchema, ListDeploymentsQuerySchema } from '../http/operator-schemas.js';
import type { DeploymentListItem } from '../http/operator-schemas.js';

// The deploy API (CIRIS-compatible): CI notifies a release with the deploy token; people watch
// (viewer) and steer (operator) deployments, and so does the admin token. Every token is checked
// (http/operator-auth.ts) and audited by its id.

const SSE_POLL_MS = 250; // milliseconds between two looks at the store for new events
const SSE_HEARTBEAT_MS = 15_000; // milliseconds between keep-alive comments on a quiet stream
const SSE_BATCH = 500; // events sent per look

const notifyBodyMaxBytes = 256 * 1024; // bytes: a notification with a release envelope and a long changelog

/** POST /manager/v1/updates/notify, GET .../status, .../latest/changelog, .../events and the actions. */
export const deployRoutes: FastifyPluginAsyncTypebox<{ core: ManagerCore }> = (app, { core }) => {
  const { allow, operatorOf } = operatorAccess(core.context);
  // Watching: any role, and CI (which waits for its deployment).
  const watcher = allow({ role: 'viewer', deploy: true });

  app.post(
    '/manager/v1/updates/notify',
    {
      bodyLimit: notifyBodyMaxBytes,
      // Starting a rollout is an operator's; a notification that carries a release also publishes it: an admin's.
      ...allow({ role: 'operator', deploy: true }, (request) => ((request.body as { release?: unknown } | undefined)?.release === undefined ? undefined : { role: 'admin', deploy: true })),
      schema: { body: UpdateNotificationSchema },
    },
    async (request) => core.notifyUpdate(request.body, operatorOf(request)),
  );

  app.get('/manager/v1/updates/status', { ...watcher, schema: { querystring: DeploymentStatusQuerySchema } }, async (request, reply) =>
    reply.header('cache-control', 'no-store').send(await core.deploymentStatus(request.query.deployment_id)),
  );

  // Every deployment, newest first (`drover rollout list`); not part of the CIRIS API.
  app.get('/v1/deployments', { ...watcher, schema: { querystring: ListDeploymentsQuerySchema } }, async (request, reply) => {
    const limit = Math.min(Number(request.query.limit ?? '20'), 1000);
    const deployments = await core.context.store.listDeployments({ active: request.query.active === 'true', limit });
    const items: DeploymentListItem[] = deployments.map((d) => ({
      deploymentId: d.id,
      artifact: d.artifact,
      version: d.version,
      strategy: d.strategy,
      status: d.status,
      phase: Math.min(d.phaseIndex + 1, d.phases.length),
      phases: d.phases.length,
      phaseNames: d.phases.map((phase) => phase.name),
      phaseState: d.phaseState,
      soakUntil: d.phaseState === 'soaking' ? (d.soakUntil?.toISOString() ?? null) : null,
      message: d.message,
      createdBy: d.createdBy,
      createdAt: d.createdAt.toISOString(),
      completedAt: d.completedAt?.toISOString() ?? null,
    }));
    return reply.header('cache-control', 'no-store').send({ deployments: items });
  });

  app.get('/manager/v1/updates/latest/changelog', { ...watcher, schema: { querystring: ChangelogQuerySchema } }, async (request) =>
    core.latestChangelog(request.query.artifact),
  );

  app.post(
    '/manager/v1/updates/:deployment_id/:action',
    { bodyLimit: managerLimits.adminBodyMaxBytes, ...allow({ role: 'operator' }), schema: { params: DeploymentActionParamsSchema, body: DeploymentActionRequestSchema } },
    async (request) => core.deploymentAction(request.params.deployment_id, request.params.action, operatorOf(request), request.body.reason),
  );
  // An action with no body at all is fine: it means {}.
  app.addHook('preValidation', (request, _reply, done) => {
    if (request.method === 'POST' && request.body === undefined && /^\/manager\/v1\/updates\/[^/]+\/[a-z]+$/.test(request.url.split('?')[0] ?? '')) request.body = {};
    done();
  });

  // Server-sent events: `deployment` events (one per timeline entry, id = its sequence number, so a
  // reconnecting watcher sends Last-Event-ID and misses nothing) and a `status` summary whenever
  // something happened. Read from the store, so a watcher sees the same stream across replicas
  // and restarts.
  app.get('/manager/v1/updates/events', { ...watcher, schema: { querystring: DeploymentEventsQuerySchema } }, async (request, reply) => {
    const deploymentId = request.query.deployment_id;
    const lastId = Number(request.headers['last-event-id']);
    let after = Number.isSafeInteger(lastId) && lastId > 0 ? lastId : 0;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write('retry: 2000\n\n');
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    let lastWrite = Date.now();
    const finish = (): void => {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      if (!res.writableEnded) res.end();
    };
    request.raw.on('close', finish);
    const summary = async (): Promise<void> => {
      const deployment = deploymentId === undefined ? (await core.context.store.listDeployments({ limit: 1 }))[0] : await core.context.store.getDeployment(deploymentId);
      if (deployment === undefined) return;
      const counts = await core.context.store.countTargets(deployment.id);
      res.write(`event: status\ndata: ${JSON.stringify(summaryOf(deployment, counts))}\n\n`);
    };
    const poll = async (): Promise<void> => {
      if (closed) return;
      if (core.closing) {
        finish();
        return;
      }
      try {
        const events = await core.context.store.listDeploymentEvents(deploymentId, after, SSE_BATCH);
        for (const event of events) {
          res.write(`id: ${event.seq}\nevent: deployment\ndata: ${JSON.stringify({ deployment_id: event.deploymentId, ...eventView(event) })}\n\n`);
          after = event.seq;
        }
        if (events.length > 0) {
          await summary();
          lastWrite = Date.now();
        } else if (Date.now() - lastWrite >= SSE_HEARTBEAT_MS) {
          res.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
      } catch (error) {
        request.log.warn({ event: 'sse.failed', err: error }, 'event stream stopped');
        finish();
        return;
      }
      timer = setTimeout(() => void poll(), SSE_POLL_MS);
    };
    await summary();
    await poll();
  });
  return Promise.resolve();
};
