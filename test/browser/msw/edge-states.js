// Runs in the browser, in test/browser/console-edge.test.ts only: msw's service worker answers the
// console's API calls with one edge state (?scenario=empty|fleet10k|errors|broken-chain), then the
// real console bundle (/ui/app.js, as `npm run build` wrote it) starts against those answers.
import { http, HttpResponse } from 'msw';
import { setupWorker } from 'msw/browser';

const HOSTS = 10_000;
const session = () => HttpResponse.json({ operator: 'operator:edge', role: 'admin', csrfToken: 'edge-csrf', expiresAt: '2099-01-01T00:00:00.000Z' });
const refusal = (status, code, message) => HttpResponse.json({ error: { code, message } }, { status });
const hostId = (n) => `host-${String(n).padStart(5, '0')}`;
const host = (n) => ({
  agentId: hostId(n),
  machineId: 'f'.repeat(64),
  hostname: `edge-${n}`,
  platform: 'linux',
  arch: 'x64',
  agentVersion: n % 10 === 0 ? '1.1.0' : '1.0.0',
  daemonVersion: '0.5.0',
  enrolledAt: '2026-12-01T00:00:00.000Z',
  credentialIssuedAt: '2026-12-01T00:00:00.000Z',
  lastCheckinAt: '2026-12-06T12:00:00.000Z',
  health: { status: 'healthy', busy: false },
  update: null,
  revokedAt: null,
  group: n % 3 === 0 ? 'explorer' : null,
  pendingCommand: null,
});

// A fleet of 10,000 hosts, served as the manager filters and pages it: the hosts `q` (in the id,
// hostname or a version, any case), `group`, `version` and `health` take, by id, `limit` at a time
// after `after`; `total` counts what the filters take.
function fleetPage(url) {
  const param = (name) => url.searchParams.get(name) ?? '';
  const limit = Number(param('limit') || '100');
  const [after, q, group, version, health] = [param('after'), param('q').toLowerCase(), param('group'), param('version'), param('health')];
  const matching = [];
  for (let n = 1; n <= HOSTS; n += 1) {
    const h = host(n);
    if (q && ![h.agentId, h.machineId, h.hostname, h.agentVersion, h.daemonVersion].some((field) => field.toLowerCase().includes(q))) continue;
    if ((group && h.group !== group) || (version && h.agentVersion !== version) || (health && h.health.status !== health)) continue;
    matching.push(h);
  }
  const agents = matching.filter((h) => h.agentId > after).slice(0, limit);
  const last = agents.at(-1);
  return HttpResponse.json({ agents, next: agents.length === limit && last !== undefined ? last.agentId : null, total: matching.length });
}

const scenarios = {
  empty: [
    http.get('/v1/agents', () => HttpResponse.json({ agents: [], next: null, total: 0 })),
    http.get('/v1/deployments', () => HttpResponse.json({ deployments: [] })),
    http.get('/manager/v1/audit', () => HttpResponse.json({ records: [], next: null })),
    http.get('/manager/v1/audit/verify', () => HttpResponse.json({ ok: false, count: 0, seq: 1, line: 1, reason: 'EMPTY', message: 'The audit log has no records.', checkedAt: '2026-12-06T12:00:00.000Z' })),
  ],
  fleet10k: [http.get('/v1/agents', ({ request }) => fleetPage(new URL(request.url)))],
  errors: [
    http.get('/v1/agents', () => refusal(503, 'STORE_UNAVAILABLE', 'The store is unreachable; retry.')),
    http.get('/v1/deployments', () => refusal(500, 'INTERNAL_ERROR', 'Something failed in the manager.')),
    http.get('/manager/v1/audit', () => refusal(403, 'TOKEN_SCOPE_INSUFFICIENT', 'This route needs operator, admin.')),
    http.get('/manager/v1/audit/verify', () => refusal(403, 'TOKEN_SCOPE_INSUFFICIENT', 'This route needs operator, admin.')),
  ],
  'broken-chain': [
    http.get('/manager/v1/audit', () => HttpResponse.json({ records: [], next: null })),
    http.get('/manager/v1/audit/verify', () =>
      HttpResponse.json({ ok: false, count: 6, seq: 7, line: 7, reason: 'HASH_MISMATCH', message: "line 7: the record's content does not match its hash.", checkedAt: '2026-12-06T12:00:00.000Z' }),
    ),
  ],
};

const scenario = new URLSearchParams(location.search).get('scenario') ?? 'empty';
const worker = setupWorker(http.get('/ui/session', session), ...(scenarios[scenario] ?? []));
await worker.start({ quiet: true, onUnhandledRequest: 'bypass' });
document.documentElement.dataset['msw'] = scenario;
await import('/ui/app.js');
