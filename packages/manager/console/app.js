// The drover web console: Preact + htm, bundled by scripts/build-console.mjs into dist/console/.
// It reads the operator API with the session cookie, sends the session's CSRF token on every
// action, and re-reads what it shows whenever the deployment event stream (SSE) says something moved.
import { h, render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);
const BASE = location.pathname.replace(/\/ui(\/.*)?$/, '');
const PAGE_SIZE = 100;
let csrfToken = '';

async function api(path, { method = 'GET', body } = {}) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-drover-csrf'] = csrfToken;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  if (res.status === 204) return undefined;
  const json = await res.json().catch(() => ({}));
  // The manager answers a refusal as {"error":{"code","message"}}: show its code and what to do.
  const refusal = json.error ?? json;
  if (!res.ok) throw new Error(`${refusal.code ?? res.status}: ${refusal.message ?? res.statusText}`);
  return json;
}

// One counter that every page watches: it moves on each event of the stream (and on a slow timer,
// for check-ins, which the stream does not carry).
let bumpLive = () => undefined;
function useLiveTick() {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const bump = () => setTick((t) => t + 1);
    bumpLive = bump;
    const events = new EventSource(`${BASE}/manager/v1/updates/events`, { withCredentials: true });
    events.addEventListener('deployment', bump);
    events.addEventListener('status', bump);
    const timer = setInterval(bump, 10_000);
    return () => {
      events.close();
      clearInterval(timer);
    };
  }, []);
  return tick;
}

function useLoad(load, deps) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  useEffect(() => {
    let live = true;
    load().then((data) => live && setState({ data, error: undefined }), (error) => live && setState((s) => ({ data: s.data, error: error.message })));
    return () => {
      live = false;
    };
  }, deps);
  return state;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');
const duration = (seconds) => (seconds >= 3600 ? `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min` : seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`);
const text = (v) => (v === null || v === undefined || v === '' ? '–' : typeof v === 'object' ? JSON.stringify(v) : String(v));
const updateState = (u) => (u && typeof u === 'object' ? u.state ?? u.step ?? u.status : u);

function Table({ columns, rows, rowKey }) {
  return html`<table><thead><tr>${columns.map((c) => html`<th>${c.label}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr key=${rowKey(r)}>${columns.map((c) => html`<td>${c.render ? c.render(r) : text(r[c.key])}</td>`)}</tr>`)}</tbody></table>`;
}

// The filters GET /v1/agents takes (its ListAgentsQuery): the search is debounced, the selects are not.
const GROUPS = ['explorer', 'early_adopter', 'general'];
const HEALTH_STATUSES = ['healthy', 'degraded', 'starting'];
const SEARCH_DEBOUNCE_MS = 300;
const SEARCH_MAX_CHARS = 128;

function useDebounced(value, ms) {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

function Select({ label, value, options, onChange }) {
  return html`<select aria-label=${label} name=${label} value=${value} onChange=${(e) => onChange(e.currentTarget.value)}>
    <option value="">any ${label}</option>
    ${options.map((o) => html`<option value=${o}>${o}</option>`)}
  </select>`;
}

// The server filters and pages (keyset, by agent id); a new filter starts again at its first page.
function Fleet({ tick }) {
  const [search, setSearch] = useState('');
  const [group, setGroup] = useState('');
  const [health, setHealth] = useState('');
  const filter = { q: useDebounced(search.trim(), SEARCH_DEBOUNCE_MS), group, health };
  const filterKey = JSON.stringify(filter);
  const filtered = Object.values(filter).some((v) => v);
  const [paging, setPaging] = useState({ filterKey, cursors: [''] });
  const cursors = paging.filterKey === filterKey ? paging.cursors : [''];
  const setCursors = (next) => setPaging({ filterKey, cursors: next });
  const after = cursors[cursors.length - 1];
  const query = new URLSearchParams({ limit: String(PAGE_SIZE), ...(after ? { after } : {}) });
  for (const [k, v] of Object.entries(filter)) if (v) query.set(k, v);
  const { data, error } = useLoad(() => api(`/v1/agents?${query}`), [query.toString(), tick]);
  const agents = data?.agents ?? [];
  const columns = [
    { label: 'host', render: (a) => html`<a href="#/host/${encodeURIComponent(a.agentId)}">${a.hostname}</a>` },
    { label: 'agent', key: 'agentVersion' },
    { label: 'daemon', key: 'daemonVersion' },
    { label: 'state', render: (a) => (a.revokedAt ? 'removed' : text(updateState(a.update) ?? 'idle')) },
    { label: 'group', render: (a) => text(a.group) },
    { label: 'health', render: (a) => text(a.health?.status ?? a.health) },
    { label: 'last check-in', render: (a) => when(a.lastCheckinAt) },
    { label: 'pending command', render: (a) => (a.pendingCommand ? `${a.pendingCommand.type}${a.pendingCommand.deploymentId ? ` (${a.pendingCommand.deploymentId})` : ''}, sent ${a.pendingCommand.deliveredCount}×` : '–') },
  ];
  // `total` is what the filters take (the whole fleet without one).
  const hosts = data?.total === undefined ? '' : filtered ? `, ${data.total} matching host${data.total === 1 ? '' : 's'}` : `, ${data.total} hosts`;
  return html`<section>
    <h1>Fleet</h1>
    <div class="filters">
      <input type="search" aria-label="search" placeholder="search id, hostname, version" maxlength=${SEARCH_MAX_CHARS} value=${search} onInput=${(e) => setSearch(e.currentTarget.value)} />
      <${Select} label="group" value=${group} options=${GROUPS} onChange=${setGroup} />
      <${Select} label="health" value=${health} options=${HEALTH_STATUSES} onChange=${setHealth} />
    </div>
    <button disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>previous</button>
    <button disabled=${data?.next == null} onClick=${() => setCursors([...cursors, data.next])}>next</button>
    <span class="count"> page ${cursors.length}${data?.total === undefined ? '' : ` of ${Math.max(1, Math.ceil(data.total / PAGE_SIZE))}`}, ${agents.length} shown${hosts}</span>
    ${error && html`<p class="error">${error}</p>`}
    ${data && data.total === 0 && !filtered && html`<p class="empty">No hosts yet: enroll one with <code>droverd enroll</code> and an enrollment token.</p>`}
    ${data && data.total === 0 && filtered && html`<p class="empty">No host matches these filters.</p>`}
    <${Table} columns=${columns} rows=${agents} rowKey=${(a) => a.agentId} />
  </section>`;
}

const AUDIT_COLUMNS = [
  { label: 'seq', key: 'seq' },
  { label: 'time', render: (r) => when(r.ts) },
  { label: 'event', key: 'event' },
  { label: 'actor', key: 'actor' },
  { label: 'host', render: (r) => (r.agentId ? html`<a href="#/host/${encodeURIComponent(r.agentId)}">${r.agentId}</a>` : '–') },
  { label: 'deployment', key: 'deploymentId' },
  { label: 'outcome', key: 'outcome' },
  { label: 'details', render: (r) => html`<code class="details" title=${JSON.stringify(r.details)}>${JSON.stringify(r.details)}</code>` },
];

// Newest first; `next` of a page is the `before` of the following one.
function AuditRecords({ filter, tick, limit = 50 }) {
  const [befores, setBefores] = useState(['']);
  useEffect(() => setBefores(['']), [JSON.stringify(filter)]);
  const before = befores[befores.length - 1];
  const query = new URLSearchParams({ limit: String(limit), ...(before ? { before } : {}) });
  for (const [k, v] of Object.entries(filter)) if (v) query.set(k, v);
  const { data, error } = useLoad(() => api(`/manager/v1/audit?${query}`), [query.toString(), tick]);
  return html`<div class="audit-records">
    ${error && html`<p class="error">${error}</p>`}
    ${data && data.records.length === 0 && html`<p class="empty">No audit records${before ? ' before this page' : ''}.</p>`}
    ${data && data.records.length > 0 && html`<${Table} columns=${AUDIT_COLUMNS} rows=${data.records} rowKey=${(r) => r.seq} />`}
    <button disabled=${befores.length < 2} onClick=${() => setBefores(befores.slice(0, -1))}>newer</button>
    <button disabled=${data?.next == null} onClick=${() => setBefores([...befores, String(data.next)])}>older</button>
  </div>`;
}

function Host({ id, tick }) {
  const { data, error } = useLoad(() => api(`/v1/agents/${encodeURIComponent(id)}`), [id, tick]);
  const agent = data?.agent;
  const update = agent?.update;
  const commands = [...(data?.commands ?? [])].reverse();
  return html`<section class="host">
    <h1>Host ${agent?.hostname ?? id}</h1>
    ${error && html`<p class="error">${error}</p>`}
    ${agent &&
    html`<dl class="facts">
      <dt>agent id</dt><dd><code>${agent.agentId}</code></dd>
      <dt>platform</dt><dd>${agent.platform.endsWith(agent.arch) ? agent.platform : `${agent.platform} ${agent.arch}`}</dd>
      <dt>agent version</dt><dd>${agent.agentVersion}</dd>
      <dt>daemon version</dt><dd>${agent.daemonVersion}</dd>
      <dt>health</dt><dd>${text(agent.health?.status)}${agent.health?.busy ? ' (busy)' : ''}</dd>
      <dt>canary group</dt><dd>${text(data.rollout?.group)}</dd>
      <dt>push URL</dt><dd>${text(data.rollout?.pushUrl)}</dd>
      <dt>enrolled</dt><dd>${when(agent.enrolledAt)}</dd>
      <dt>last check-in</dt><dd>${when(agent.lastCheckinAt)}</dd>
      ${agent.revokedAt && html`<dt>removed</dt><dd>${when(agent.revokedAt)}</dd>`}
    </dl>
    <h2>Current update step</h2>
    <p class="current-step">${update ? html`<strong>${update.step}</strong> (command <code>${update.commandId}</code>)` : 'idle: no update in progress'}</p>
    <h2>Update history</h2>
    ${commands.length === 0 ? html`<p class="empty">No commands sent to this host.</p>` : html`<${Table}
      columns=${[
        { label: 'created', render: (c) => when(c.createdAt) },
        { label: 'type', key: 'type' },
        { label: 'deployment', key: 'deploymentId' },
        { label: 'delivered', render: (c) => `${c.deliveredCount}×` },
        { label: 'acked', render: (c) => when(c.ackedAt) },
        { label: 'outcome', render: (c) => text(c.outcome ?? 'pending') },
        { label: 'code', render: (c) => text(c.outcomeDetail?.code) },
      ]}
      rows=${commands}
      rowKey=${(c) => c.id}
    />`}`}
    <h2>Audit records</h2>
    <${AuditRecords} filter=${{ agent_id: id }} tick=${tick} limit=${20} />
  </section>`;
}

function Releases({ tick }) {
  const [artifact, setArtifact] = useState('agent');
  const { data, error } = useLoad(() => api(`/v1/releases?artifact=${encodeURIComponent(artifact)}`), [artifact, tick]);
  const columns = [
    { label: 'artifact', key: 'artifact' },
    { label: 'channel', key: 'channel' },
    { label: 'version', key: 'version' },
    { label: 'platform', key: 'platform' },
    { label: 'state', key: 'state' },
    { label: 'size', render: (r) => `${r.file.size} B` },
    { label: 'sha256', render: (r) => html`<code title=${r.file.sha256}>${r.file.sha256.slice(0, 16)}…</code>` },
    { label: 'signers', render: (r) => r.signers.join(', ') },
    { label: 'expires', key: 'expiresAt' },
  ];
  return html`<section>
    <h1>Releases</h1>
    <select value=${artifact} onChange=${(e) => setArtifact(e.currentTarget.value)}><option>agent</option><option>daemon</option></select>
    ${error && html`<p class="error">${error}</p>`}
    <${Table} columns=${columns} rows=${data?.releases ?? []} rowKey=${(r) => `${r.artifact}/${r.version}/${r.platform}/${r.channel}`} />
  </section>`;
}

const ACTIONS = ['pause', 'resume', 'promote', 'abort', 'rollback'];

function ConfirmDialog({ ask, onDone }) {
  if (ask === undefined) return null;
  return html`<dialog open>
    <p>${ask.action} rollout ${ask.deploymentId}?</p>
    <button data-confirm onClick=${() => onDone(true)}>${ask.action}</button>
    <button onClick=${() => onDone(false)}>cancel</button>
  </dialog>`;
}

function Countdown({ until }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const left = Math.max(0, Math.round((Date.parse(until) - now) / 1000));
  return html`<span class="soak">soak: ${duration(left)} left</span>`;
}

// Why a target stands where it does, in words.
function targetReason(t) {
  if (t.state === 'deferred') return `busy: the agent deferred the update${t.deferred_until ? ` until ${when(t.deferred_until)}` : '; its daemon retries'}`;
  if (t.error) return `${t.error.code}: ${t.error.message}`;
  if (t.state === 'rolled_back') return t.message ?? 'rolled back';
  return t.message ?? '';
}

const END_STATES = new Set(['succeeded', 'failed', 'skipped', 'rolled_back']);

function PhaseProgress({ d, targets }) {
  const names = d.phaseNames ?? [...new Set(targets.map((t) => t.phase ?? 'all'))];
  return html`<ol class="phases">${names.map((name, i) => {
    const mine = targets.filter((t) => (t.phase ?? 'all') === name);
    const done = mine.filter((t) => END_STATES.has(t.state)).length;
    const failed = mine.filter((t) => t.state === 'failed' || t.state === 'rolled_back').length;
    const current = i + 1 === d.phase;
    return html`<li class=${current ? 'current' : ''} data-phase=${name}>
      ${name}: <progress max=${mine.length || 1} value=${done}></progress> ${done}/${mine.length} done${failed ? `, ${failed} failed or rolled back` : ''}${current ? ` (${text(d.phaseState)})` : ''}
    </li>`;
  })}</ol>`;
}

function Rollout({ d, tick, act }) {
  const { data, error } = useLoad(() => api(`/manager/v1/updates/status?deployment_id=${encodeURIComponent(d.deploymentId)}`), [d.deploymentId, tick]);
  const targets = data?.agents ?? [];
  return html`<div class="rollout" data-deployment=${d.deploymentId}>
    <h2>${d.artifact} ${d.version} <span class="status" data-status=${d.status}>${d.status}</span> <small>${d.deploymentId}, ${d.strategy}</small></h2>
    <p>phase ${d.phase}/${d.phases} (${text(d.phaseState)}) ${d.phaseState === 'soaking' && d.soakUntil ? html`<${Countdown} until=${d.soakUntil} />` : ''} ${text(d.message)}</p>
    ${error && html`<p class="error">${error}</p>`}
    <${PhaseProgress} d=${d} targets=${targets} />
    ${ACTIONS.map((a) => html`<button data-action=${a} onClick=${() => act(d.deploymentId, a)}>${a}</button>`)}
    ${targets.length > 0 &&
    html`<${Table} columns=${[
      { label: 'agent', render: (t) => html`<a href="#/host/${encodeURIComponent(t.agent_id)}">${t.agent_id}</a>` },
      { label: 'phase', key: 'phase' },
      { label: 'state', render: (t) => html`<span class="target-state" data-state=${t.state}>${t.state}</span>` },
      { label: 'from → to', render: (t) => `${t.from_version ?? '?'} → ${t.to_version}` },
      { label: 'reason', render: (t) => html`<span class="reason">${targetReason(t)}</span>` },
      { label: 'updated', render: (t) => when(t.updated_at) },
    ]} rows=${targets} rowKey=${(t) => t.agent_id} />`}
  </div>`;
}

function Rollouts({ tick }) {
  const [ask, setAsk] = useState(undefined);
  const [message, setMessage] = useState('');
  const { data, error } = useLoad(() => api('/v1/deployments?limit=20'), [tick]);
  const done = async (confirmed) => {
    const current = ask;
    setAsk(undefined);
    if (!confirmed || current === undefined) return;
    try {
      await api(`/manager/v1/updates/${encodeURIComponent(current.deploymentId)}/${current.action}`, { method: 'POST', body: {} });
      setMessage(`${current.action}: sent`);
    } catch (e) {
      setMessage(e.message);
    }
    // Show the new state now; the event stream keeps it moving.
    bumpLive();
  };
  return html`<section>
    <h1>Rollouts</h1>
    ${error && html`<p class="error">${error}</p>`}
    ${data && data.deployments.length === 0 && html`<p class="empty">No rollouts yet: <code>drover rollout start</code> starts one.</p>`}
    <p class="message">${message}</p>
    <${ConfirmDialog} ask=${ask} onDone=${done} />
    ${(data?.deployments ?? []).map((d) => html`<${Rollout} key=${d.deploymentId} d=${d} tick=${tick} act=${(deploymentId, action) => setAsk({ deploymentId, action })} />`)}
  </section>`;
}

function Verdict() {
  const [run, setRun] = useState(0);
  const { data, error } = useLoad(() => api('/manager/v1/audit/verify'), [run]);
  return html`<div class="verdict">
    ${error && html`<p class="error">${error}</p>`}
    ${!data && !error && html`<p>Verifying the chain…</p>`}
    ${data?.ok === true &&
    html`<p class="verdict-ok" data-verdict="ok">Chain verified: ${data.count} records, up to seq ${data.lastSeq} (last hash <code title=${data.lastHash}>${data.lastHash.slice(0, 16)}…</code>), checked ${when(data.checkedAt)}.</p>`}
    ${data?.ok === false &&
    html`<p class="verdict-broken" data-verdict="broken">Chain BROKEN at seq ${data.seq} (record ${data.line}): <strong>${data.reason}</strong>: ${data.message} ${data.count} records before it verified; checked ${when(data.checkedAt)}.</p>`}
    <button onClick=${() => setRun(run + 1)}>verify again</button>
  </div>`;
}

function Audit({ tick }) {
  const [filter, setFilter] = useState({});
  const apply = (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    setFilter({ agent_id: form.agent_id.value.trim(), actor: form.actor.value.trim(), event: form.event.value.trim() });
  };
  return html`<section>
    <h1>Audit</h1>
    <${Verdict} />
    <form class="filters" onSubmit=${apply}>
      <input name="agent_id" placeholder="host (agent id)" />
      <input name="actor" placeholder="actor, e.g. system" />
      <input name="event" placeholder="event, e.g. deployment." />
      <button type="submit">filter</button>
    </form>
    <${AuditRecords} filter=${filter} tick=${tick} />
  </section>`;
}

function Login({ onLogin }) {
  const [error, setError] = useState('');
  // Single sign-on when the manager has an OIDC issuer: /ui/login sends the browser to it.
  const { data: auth } = useLoad(() => api('/manager/v1/auth/config'), []);
  const submit = async (e) => {
    e.preventDefault();
    try {
      onLogin(await api('/ui/session', { method: 'POST', body: { token: e.currentTarget.token.value.trim() } }));
    } catch (err) {
      setError(err.message);
    }
  };
  return html`<form class="login" onSubmit=${submit}>
    <h1>drover console</h1>
    ${auth?.oidc && html`<p><a class="button sso" href="${BASE}/ui/login">Sign in with SSO</a> <small>(${auth.oidc.issuer})</small></p>`}
    <label>Operator token (secrets/admin.token)<input name="token" type="password" autocomplete="off" required /></label>
    <button type="submit">Log in</button>
    ${error && html`<p class="error">${error}</p>`}
  </form>`;
}

function useHash() {
  const [hash, setHash] = useState(location.hash || '#/fleet');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/fleet');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function Console({ session, onLogout }) {
  const tick = useLiveTick();
  const hash = useHash();
  const [, page, arg] = hash.split('/');
  const pages = { fleet: 'Fleet', releases: 'Releases', rollouts: 'Rollouts', audit: 'Audit' };
  const body =
    page === 'host' ? html`<${Host} id=${decodeURIComponent(arg ?? '')} tick=${tick} />`
    : page === 'releases' ? html`<${Releases} tick=${tick} />`
    : page === 'rollouts' ? html`<${Rollouts} tick=${tick} />`
    : page === 'audit' ? html`<${Audit} tick=${tick} />`
    : html`<${Fleet} tick=${tick} />`;
  return html`<nav>${Object.entries(pages).map(([p, label]) => html`<a class=${p === page ? 'active' : ''} href="#/${p}">${label}</a>`)}
      <span class="who">${session.operator}</span><button onClick=${onLogout}>Log out</button></nav>${body}`;
}

function App() {
  const [session, setSession] = useState(null);
  const [checked, setChecked] = useState(false);
  const open = (s) => {
    csrfToken = s?.csrfToken ?? '';
    setSession(s);
  };
  useEffect(() => {
    api('/ui/session').then(open, () => open(null)).finally(() => setChecked(true));
  }, []);
  if (!checked) return html`<p>Loading…</p>`;
  if (session === null) return html`<${Login} onLogin=${open} />`;
  return html`<${Console} session=${session} onLogout=${() => api('/ui/session', { method: 'DELETE' }).finally(() => open(null))} />`;
}

render(html`<${App} />`, document.getElementById('app'));
