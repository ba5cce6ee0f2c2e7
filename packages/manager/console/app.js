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
function useLiveTick() {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const bump = () => setTick((t) => t + 1);
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

const text = (v) => (v === null || v === undefined || v === '' ? '–' : typeof v === 'object' ? JSON.stringify(v) : String(v));
const updateState = (u) => (u && typeof u === 'object' ? u.state ?? u.step ?? u.status : u);

function Table({ columns, rows, rowKey }) {
  return html`<table><thead><tr>${columns.map((c) => html`<th>${c.label}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr key=${rowKey(r)}>${columns.map((c) => html`<td>${c.render ? c.render(r) : text(r[c.key])}</td>`)}</tr>`)}</tbody></table>`;
}

function Fleet({ tick }) {
  const [cursors, setCursors] = useState(['']);
  const [filter, setFilter] = useState('');
  const after = cursors[cursors.length - 1];
  const { data, error } = useLoad(() => api(`/v1/agents?limit=${PAGE_SIZE}${after ? `&after=${encodeURIComponent(after)}` : ''}`), [after, tick]);
  const agents = data?.agents ?? [];
  const needle = filter.toLowerCase();
  const shown = needle ? agents.filter((a) => JSON.stringify(a).toLowerCase().includes(needle)) : agents;
  const columns = [
    { label: 'host', render: (a) => html`<a href="#/host/${encodeURIComponent(a.agentId)}">${a.hostname}</a>` },
    { label: 'agent', key: 'agentVersion' },
    { label: 'daemon', key: 'daemonVersion' },
    { label: 'state', render: (a) => (a.revokedAt ? 'removed' : text(updateState(a.update))) },
    { label: 'group', render: (a) => text(a.group ?? a.rollout?.group) },
    { label: 'health', render: (a) => text(a.health?.status ?? a.health) },
    { label: 'last check-in', key: 'lastCheckinAt' },
    { label: 'pending command', render: (a) => text(a.update?.command?.version ?? a.pendingCommand) },
  ];
  return html`<section>
    <h1>Fleet</h1>
    <input placeholder="filter this page" value=${filter} onInput=${(e) => setFilter(e.currentTarget.value)} />
    <button disabled=${cursors.length < 2} onClick=${() => setCursors(cursors.slice(0, -1))}>previous</button>
    <button disabled=${agents.length < PAGE_SIZE} onClick=${() => setCursors([...cursors, agents[agents.length - 1].agentId])}>next</button>
    <span> page ${cursors.length}, ${shown.length} shown</span>
    ${error && html`<p class="error">${error}</p>`}
    <${Table} columns=${columns} rows=${shown} rowKey=${(a) => a.agentId} />
  </section>`;
}

function Host({ id, tick }) {
  const { data, error } = useLoad(() => api(`/v1/agents/${encodeURIComponent(id)}`), [id, tick]);
  return html`<section>
    <h1>Host ${data?.hostname ?? id}</h1>
    ${error && html`<p class="error">${error}</p>`}
    ${data && html`<table>${Object.entries(data).map(([k, v]) => html`<tr><th>${k}</th><td><pre>${typeof v === 'object' && v !== null ? JSON.stringify(v, null, 2) : text(v)}</pre></td></tr>`)}</table>`}
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

function Rollout({ d, tick, act }) {
  const { data } = useLoad(() => api(`/manager/v1/updates/status?deployment_id=${encodeURIComponent(d.deploymentId)}`), [d.deploymentId, tick]);
  const targets = data?.targets ?? data?.agents ?? [];
  return html`<div class="rollout" data-deployment=${d.deploymentId}>
    <h2>${d.deploymentId}: ${d.artifact} ${d.version} <span class="status">${d.status}</span></h2>
    <p>phase ${d.phase}/${d.phases} (${text(d.phaseState)}) ${text(d.message)}</p>
    ${ACTIONS.map((a) => html`<button data-action=${a} onClick=${() => act(d.deploymentId, a)}>${a}</button>`)}
    ${targets.length > 0 &&
    html`<${Table} columns=${[
      { label: 'agent', render: (t) => text(t.agentId ?? t.hostname) },
      { label: 'state', render: (t) => text(t.state ?? t.status) },
      { label: 'reason', render: (t) => text(t.reason ?? t.code ?? t.message) },
    ]} rows=${targets} rowKey=${(t) => t.agentId ?? JSON.stringify(t)} />`}
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
  };
  return html`<section>
    <h1>Rollouts</h1>
    ${error && html`<p class="error">${error}</p>`}
    <p class="message">${message}</p>
    <${ConfirmDialog} ask=${ask} onDone=${done} />
    ${(data?.deployments ?? []).map((d) => html`<${Rollout} key=${d.deploymentId} d=${d} tick=${tick} act=${(deploymentId, action) => setAsk({ deploymentId, action })} />`)}
  </section>`;
}

function Audit() {
  return html`<section>
    <h1>Audit</h1>
    <p>The manager has no audit read API yet; run <code>drover audit verify</code> on the manager's audit log.</p>
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
    : page === 'audit' ? html`<${Audit} />`
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
