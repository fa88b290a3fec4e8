// callrouter admin console. Plain JavaScript, no build step: every screen
// calls the admin API (/admin/v1) with the session cookie; changes carry
// the session's CSRF token. Text from the server is only ever set as
// textContent, never parsed as HTML.
'use strict';

const S = { me: null, live: null, flash: '' };

// h builds an element: h('a', {href: '#/'}, 'text', child, ...).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const main = () => document.getElementById('main');
// put replaces el's children with kids, leaving out the empty ones.
function put(el, ...kids) { el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false)); }
function show(...nodes) { put(main(), ...nodes); }
const canChange = () => S.me && S.me.scope === 'admin';
const enc = encodeURIComponent;
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '—');
const pill = (text, cls) => h('span', { class: 'pill ' + (cls || text) }, text);

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// api calls the admin API (or the console's own endpoints when path starts
// with /console). A 401 sends the user back to sign-in.
async function api(method, path, body) {
  const url = path.startsWith('/console/') ? path : '/admin/v1' + path;
  const opt = { method, credentials: 'same-origin', headers: {} };
  if (method !== 'GET') {
    opt.headers['X-CSRF-Token'] = S.me ? S.me.csrf : '';
    if (body !== undefined) {
      opt.headers['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(body);
    }
  }
  const r = await fetch(url, opt);
  if (r.status === 204) return null;
  let data = null;
  try { data = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const e = (data && data.error) || { code: 'http_' + r.status, message: r.statusText };
    if (r.status === 401 && !path.startsWith('/console/api/session')) { S.me = null; renderSignIn(e.message); }
    throw new APIError(r.status, e.code, e.message);
  }
  return data;
}

// list fetches a list; the API answers null for an empty one.
async function list(path) { return (await api('GET', path)) || []; }

// fieldOf returns the field an API error message names: "route_budget_ms: must be…".
function fieldOf(message) {
  const m = /^(?:Settings\.)?([a-z_][a-z0-9_]*)(\[|\.|:)/i.exec(message || '');
  return m ? m[1] : '';
}

function errBox(e) { return h('div', { class: 'err', role: 'alert' }, e instanceof Error ? e.message : String(e)); }

// ---- sign-in ------------------------------------------------------------

function renderSignIn(message) {
  closeLive();
  document.getElementById('who').textContent = '';
  document.getElementById('signout').hidden = true;
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', placeholder: 'cra_…', required: true });
  const out = h('div');
  const form = h('form', { class: 'card signin', id: 'signin', onsubmit: async (ev) => {
    ev.preventDefault();
    out.replaceChildren();
    try {
      S.me = await api('POST', '/console/api/session', { token: input.value });
      input.value = '';
      afterSignIn();
    } catch (e) { out.replaceChildren(errBox(e)); }
  } },
  h('h1', {}, 'Sign in'),
  h('p', { class: 'muted' }, 'Use an admin token: a read-scope token can look, an admin-scope token can change.'),
  h('label', { for: 'token' }, 'Admin token'), input,
  h('button', { type: 'submit' }, 'Sign in'), out,
  message ? h('p', { class: 'muted' }, message) : null);
  show(form);
}

function afterSignIn() {
  document.getElementById('who').textContent = S.me.actor + ' · ' + S.me.scope + ' scope';
  document.getElementById('signout').hidden = false;
  route();
}

async function signOut() {
  try { await api('DELETE', '/console/api/session'); } catch (_) { /* signed out anyway */ }
  S.me = null;
  location.hash = '#/';
  renderSignIn('Signed out.');
}

// ---- routing ------------------------------------------------------------

function route() {
  closeLive();
  if (!S.me) { renderSignIn(); return; }
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 't' && parts[1]) { renderTenant(parts[1], parts[2] || 'settings'); return; }
  renderTenants();
}

// ---- tenants ------------------------------------------------------------

async function renderTenants() {
  show(h('h1', {}, 'Tenants'), h('p', { class: 'muted' }, 'Loading…'));
  let tenants;
  try { tenants = await list('/tenants'); } catch (e) { show(h('h1', {}, 'Tenants'), errBox(e)); return; }
  const body = h('tbody');
  const table = h('table', { id: 'tenants' }, h('thead', {}, h('tr', {},
    ['Tenant', 'Name', 'Ready', 'Integration', 'Last sync', 'Backlog', 'Failed', 'Last error'].map((c) => h('th', {}, c)))), body);
  for (const t of tenants) {
    const row = h('tr', { 'data-tenant': t.id }, h('td', {}, h('a', { href: '#/t/' + enc(t.id) }, t.id)), h('td', {}, t.name),
      h('td', { colspan: 6, class: 'muted' }, '…'));
    body.append(row);
    api('GET', '/tenants/' + enc(t.id) + '/status').then((st) => {
      const integ = st.integration || {};
      row.replaceChildren(row.children[0], row.children[1],
        h('td', {}, st.cache.ready ? pill('ready', 'ok') : pill('warming', 'warn')),
        h('td', {}, pill(integ.state || 'not_configured'), integ.crm ? ' ' + integ.crm : ''),
        h('td', {}, fmtTime(integ.last_sync_at)),
        h('td', { class: 'num' }, st.events.waiting),
        h('td', { class: 'num' }, st.events.failed),
        h('td', { class: 'muted' }, integ.last_error || ''));
    }).catch((e) => row.replaceChildren(row.children[0], row.children[1], h('td', { colspan: 6 }, errBox(e))));
  }
  const out = h('div');
  const idIn = h('input', { name: 'id', placeholder: 'acme', required: true });
  const nameIn = h('input', { name: 'name', placeholder: 'Acme Ltd' });
  const create = h('form', { class: 'row card', id: 'create-tenant', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const t = await api('POST', '/tenants', { id: idIn.value.trim(), name: nameIn.value.trim() });
      out.replaceChildren(secretBox(t.id, t.webhook_secret, 'Tenant created.'),
        h('p', {}, h('a', { href: '#/t/' + enc(t.id) }, 'Set up ' + t.id + ' →')));
    } catch (e) { out.replaceChildren(errBox(e)); }
  } }, h('label', {}, 'Id', idIn), h('label', {}, 'Name', nameIn),
  h('button', { type: 'submit', disabled: !canChange() }, 'Create tenant'));
  const flash = S.flash ? h('div', { class: 'ok-msg', id: 'flash' }, S.flash) : null;
  S.flash = '';
  show(h('h1', {}, 'Tenants'), flash, tenants.length ? table : h('p', { class: 'muted' }, 'No tenants yet.'),
    h('h2', {}, 'New tenant'), create, out);
}

// secretBox shows a webhook secret and the URLs built from it, once.
function secretBox(tenant, secret, title) {
  const base = location.origin;
  const k = '?key=' + enc(secret);
  return h('div', { class: 'card', id: 'secret-once' }, h('strong', {}, title),
    h('p', {}, 'Copy these now: the secret is not shown again.'),
    h('div', { class: 'kv' },
      h('dt', {}, 'Webhook secret'), h('dd', { class: 'secret', id: 'new-secret' }, secret),
      h('dt', {}, 'Route URL (webhook number)'), h('dd', { class: 'secret', id: 'new-route-url' }, base + '/pbx/' + enc(tenant) + '/route' + k),
      h('dt', {}, 'Call events URL'), h('dd', { class: 'secret' }, base + '/pbx/' + enc(tenant) + '/events' + k),
      h('dt', {}, 'CRM webhook URL'), h('dd', { class: 'secret' }, base + '/crm/' + enc(tenant) + '/webhook' + k)));
}

// ---- one tenant -----------------------------------------------------------

const TABS = [['settings', 'Settings'], ['employees', 'Employees'], ['stop-list', 'Stop list'], ['integration', 'Integration'],
  ['calls', 'Calls'], ['report', 'Routing report'], ['explain', 'Explain'], ['audit', 'Audit log'], ['secret', 'Webhook secret'],
  ['delete', 'Delete']];

function renderTenant(id, tab) {
  const nav = h('nav', { class: 'tabs' }, TABS.map(([k, label]) =>
    h('a', { href: '#/t/' + enc(id) + '/' + k, class: k === tab ? 'on' : '', 'data-tab': k }, label)));
  const pane = h('div', { id: 'pane' });
  show(h('h1', {}, h('a', { href: '#/' }, 'Tenants'), ' / ', id), nav, pane);
  const screens = { settings: screenSettings, employees: screenEmployees, 'stop-list': screenStops, integration: screenIntegration,
    calls: screenCalls, report: screenReport, explain: screenExplain, audit: screenAudit, secret: screenSecret, delete: screenDelete };
  (screens[tab] || screenSettings)(id, pane).catch((e) => put(pane, errBox(e)));
}

const tpath = (id, rest) => '/tenants/' + enc(id) + (rest || '');

// Settings: one field per setting the API shows, its message beside it.
async function screenSettings(id, pane) {
  const t = await api('GET', tpath(id));
  const skip = new Set(['id', 'created_at', 'updated_at', 'default_owner']);
  const inputs = {};
  const errs = {};
  const form = h('form', { class: 'grid card', id: 'settings' });
  for (const [k, v] of Object.entries(t)) {
    if (skip.has(k)) continue;
    let input;
    if (typeof v === 'boolean') input = h('input', { type: 'checkbox', name: k, checked: v });
    else if (typeof v === 'number') input = h('input', { type: 'number', name: k, value: v });
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) input = h('input', { name: k, value: v.join(','), 'data-kind': 'list', size: 40 });
    else if (v === null || typeof v === 'object') input = h('textarea', { name: k, 'data-kind': 'json' }, v === null ? '' : JSON.stringify(v, null, 2));
    else input = h('input', { name: k, value: v, size: 40 });
    inputs[k] = input;
    errs[k] = h('div', { class: 'field-error', 'data-error-for': k });
    form.append(h('label', { for: 'f-' + k }, k), input, errs[k]);
    input.id = 'f-' + k;
    if (!canChange()) input.disabled = true;
  }
  const out = h('div');
  form.append(h('span'), h('div', {}, h('button', { type: 'submit', disabled: !canChange() }, 'Save settings')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    Object.values(errs).forEach((e) => { e.textContent = ''; });
    out.replaceChildren();
    const patch = {};
    try {
      for (const [k, input] of Object.entries(inputs)) {
        if (input.type === 'checkbox') patch[k] = input.checked;
        else if (input.type === 'number') patch[k] = input.value === '' ? 0 : Number(input.value);
        else if (input.dataset.kind === 'list') patch[k] = input.value.split(',').map((s) => s.trim()).filter(Boolean);
        else if (input.dataset.kind === 'json') {
          try { patch[k] = JSON.parse(input.value || 'null'); } catch (_) { throw new APIError(400, 'invalid', k + ': not valid JSON'); }
        } else patch[k] = input.value;
      }
      await api('PATCH', tpath(id), patch);
      out.replaceChildren(h('div', { class: 'ok-msg' }, 'Saved.'));
    } catch (e) {
      const f = fieldOf(e.message);
      if (errs[f]) errs[f].textContent = e.message; else out.replaceChildren(errBox(e));
    }
  });
  put(pane, form, out);
}

// Employees: the mapping to CRM users, and the senior manager.
async function screenEmployees(id, pane) {
  const [emps, owner] = await Promise.all([list(tpath(id, '/employees')), api('GET', tpath(id, '/default-owner'))]);
  let users = [];
  let usersErr = null;
  try { users = await list(tpath(id, '/crm-users')); } catch (e) { usersErr = e; }
  const rows = emps.map((e) => h('tr', { 'data-employee': e.crm_user_id },
    h('td', {}, e.crm_user_id, e.crm_user_id === owner.crm_user_id ? [' ', pill('senior manager', 'ok')] : null),
    h('td', {}, e.name), h('td', {}, e.sip), h('td', {}, e.phone), h('td', {}, e.email),
    h('td', {}, h('button', { type: 'button', class: 'secondary', disabled: !canChange(), onclick: async () => {
      try { await api('DELETE', tpath(id, '/employees/' + enc(e.crm_user_id))); screenEmployees(id, pane); } catch (err) { pane.prepend(errBox(err)); }
    } }, 'Remove'))));
  const table = h('table', { id: 'employees' }, h('thead', {}, h('tr', {}, ['CRM user', 'Name', 'SIP login', 'Phone', 'E-mail', ''].map((c) => h('th', {}, c)))), h('tbody', {}, rows));

  const known = new Map();
  users.forEach((u) => known.set(u.id, u));
  const userSel = users.length
    ? h('select', { name: 'crm_user_id', id: 'map-user' }, h('option', { value: '' }, '— CRM user —'),
      users.map((u) => h('option', { value: u.id }, (u.name || u.id) + (u.active === false ? ' (inactive)' : '') + ' · ' + u.id)))
    : h('input', { name: 'crm_user_id', id: 'map-user', placeholder: 'CRM user id' });
  const sip = h('input', { name: 'sip', id: 'map-sip', placeholder: 'SIP login' });
  const ph = h('input', { name: 'phone', id: 'map-phone', placeholder: 'or phone' });
  const nm = h('input', { name: 'name', id: 'map-name', placeholder: 'name' });
  userSel.addEventListener('change', () => {
    const u = known.get(userSel.value);
    if (u) { nm.value = u.name || ''; if (u.extension && !sip.value) sip.value = u.extension; }
  });
  const mapOut = h('div');
  const mapForm = h('form', { class: 'row card', id: 'map-employee', onsubmit: async (ev) => {
    ev.preventDefault();
    mapOut.replaceChildren();
    const uid = userSel.value.trim();
    if (!uid) { mapOut.replaceChildren(errBox('crm_user_id: choose a CRM user')); return; }
    const u = known.get(uid) || {};
    try {
      await api('PUT', tpath(id, '/employees/' + enc(uid)), { sip: sip.value.trim(), phone: ph.value.trim(), name: nm.value.trim(), email: u.email || '' });
      screenEmployees(id, pane);
    } catch (e) { mapOut.replaceChildren(errBox(e)); }
  } }, h('label', {}, 'CRM user', userSel), h('label', {}, 'SIP login', sip), h('label', {}, 'Phone', ph), h('label', {}, 'Name', nm),
  h('button', { type: 'submit', disabled: !canChange() }, 'Map employee'));

  const ownerSel = h('select', { name: 'default_owner', id: 'owner-select' }, h('option', { value: '' }, '— none —'));
  const ids = new Set();
  for (const e of emps) { ids.add(e.crm_user_id); ownerSel.append(h('option', { value: e.crm_user_id }, (e.name || e.crm_user_id) + ' · ' + e.crm_user_id)); }
  for (const u of users) if (!ids.has(u.id)) ownerSel.append(h('option', { value: u.id }, (u.name || u.id) + ' · ' + u.id + ' (not mapped)'));
  ownerSel.value = owner.crm_user_id || '';
  const ownerOut = h('div');
  const ownerForm = h('form', { class: 'row card', id: 'default-owner', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const d = await api('PUT', tpath(id, '/default-owner'), { crm_user_id: ownerSel.value });
      ownerOut.replaceChildren(h('div', { class: 'ok-msg' }, d.crm_user_id ? 'Senior manager: ' + d.crm_user_id + (d.target ? ' (rings ' + d.target + ')' : ' (not mapped: no forward)') : 'Senior manager cleared.'));
      setTimeout(() => screenEmployees(id, pane), 600);
    } catch (e) { ownerOut.replaceChildren(errBox(e)); }
  } }, h('label', {}, 'Senior manager (default owner)', ownerSel), h('button', { type: 'submit', disabled: !canChange() }, 'Save'),
  h('span', { class: 'muted', id: 'owner-target' }, owner.target ? 'rings ' + owner.target : owner.crm_user_id ? 'not mapped to an employee' : ''));

  put(pane, h('h2', {}, 'Employees ↔ CRM users'), emps.length ? table : h('p', { class: 'muted' }, 'No employee mapped yet.'),
    h('h2', {}, 'Map an employee'), usersErr ? h('p', { class: 'muted' }, 'CRM users unavailable (' + usersErr.message + '); enter the CRM user id.') : null,
    mapForm, mapOut, h('h2', {}, 'Senior manager'),
    h('p', { class: 'muted' }, 'Gets the calls of unknown callers (on_miss), of unmapped owners (on_unmapped), and the leads and tasks of missed calls.'),
    ownerForm, ownerOut);
}

async function screenStops(id, pane) {
  const stops = await list(tpath(id, '/stop-list'));
  const rows = stops.map((s) => h('tr', {}, h('td', {}, s.number), h('td', {}, s.kind || ''), h('td', {}, s.note), h('td', {}, fmtTime(s.created_at)),
    h('td', {}, h('button', { type: 'button', class: 'secondary', disabled: !canChange(), onclick: async () => {
      try { await api('DELETE', tpath(id, '/stop-list/' + enc(s.number))); screenStops(id, pane); } catch (e) { pane.prepend(errBox(e)); }
    } }, 'Remove'))));
  const num = h('input', { name: 'number', placeholder: 'SIP login or number', required: true });
  const note = h('input', { name: 'note', placeholder: 'note' });
  const out = h('div');
  const form = h('form', { class: 'row card', id: 'add-stop', onsubmit: async (ev) => {
    ev.preventDefault();
    try { await api('PUT', tpath(id, '/stop-list/' + enc(num.value.trim())), { note: note.value }); screenStops(id, pane); } catch (e) { out.replaceChildren(errBox(e)); }
  } }, h('label', {}, 'Number', num), h('label', {}, 'Note', note), h('button', { type: 'submit', disabled: !canChange() }, 'Add'));
  put(pane, h('p', { class: 'muted' }, 'Calls to or from these numbers create nothing in the CRM: the project\'s own lines, SIP logins and FMC numbers.'),
    h('table', { id: 'stops' }, h('thead', {}, h('tr', {}, ['Number', 'Kind', 'Note', 'Added', ''].map((c) => h('th', {}, c)))), h('tbody', {}, rows)),
    h('h2', {}, 'Add a number'), form, out);
}

async function screenIntegration(id, pane) {
  let cur = null;
  try { cur = await api('GET', tpath(id, '/integration')); } catch (e) { if (e.status !== 404) throw e; }
  const out = h('div');
  const info = cur
    ? h('div', { class: 'card kv', id: 'integration' },
      h('dt', {}, 'CRM'), h('dd', {}, cur.crm), h('dt', {}, 'Base URL'), h('dd', {}, cur.base_url),
      h('dt', {}, 'State'), h('dd', {}, pill(cur.state)), h('dt', {}, 'Sync'), h('dd', {}, cur.phase + ', ' + cur.synced + ' entities'),
      h('dt', {}, 'Last sync'), h('dd', {}, fmtTime(cur.last_sync_at)), h('dt', {}, 'Last success'), h('dd', {}, fmtTime(cur.last_success_at)),
      h('dt', {}, 'Last error'), h('dd', {}, cur.last_error || '—'))
    : h('p', { class: 'muted', id: 'integration' }, 'No CRM connected: the phone index is filled by contacts import only.');
  const resend = h('input', { type: 'checkbox', id: 'resend', name: 'resend' });
  const act = async (path, body) => {
    try {
      const v = await api('POST', tpath(id, path), body);
      const ev = v.events ? ' Waiting events: ' + JSON.stringify(v.events) : '';
      out.replaceChildren(h('div', { class: 'ok-msg' }, 'Integration ' + v.state + '.' + ev));
      setTimeout(() => screenIntegration(id, pane).then(() => pane.append(out)), 800);
    } catch (e) { out.replaceChildren(errBox(e)); }
  };
  const controls = cur ? h('div', { class: 'card row' },
    h('label', {}, h('span', {}, resend, ' send the last 3 days after re-activation')),
    h('button', { type: 'button', id: 'activate', disabled: !canChange(), onclick: () => act('/integration/activate', { resend: resend.checked }) }, 'Activate'),
    h('button', { type: 'button', id: 'deactivate', class: 'secondary', disabled: !canChange(), onclick: () => act('/integration/deactivate') }, 'Deactivate')) : null;
  const crmSel = h('select', { name: 'crm' }, ['amocrm', 'zoho', 'retailcrm', 'uspacy'].map((c) => h('option', { value: c }, c)));
  if (cur) crmSel.value = cur.crm;
  const base = h('input', { name: 'base_url', size: 40, placeholder: 'https://example.amocrm.ru', value: cur ? cur.base_url : '' });
  const creds = h('textarea', { name: 'credentials', placeholder: '{"access_token": "…"}' });
  const connect = h('form', { class: 'grid card', id: 'connect', onsubmit: async (ev) => {
    ev.preventDefault();
    let c;
    try { c = JSON.parse(creds.value); } catch (_) { out.replaceChildren(errBox('credentials: not valid JSON')); return; }
    try {
      await api('PUT', tpath(id, '/integration'), { crm: crmSel.value, base_url: base.value.trim(), credentials: c });
      creds.value = '';
      screenIntegration(id, pane);
    } catch (e) { out.replaceChildren(errBox(e)); }
  } }, h('label', {}, 'CRM'), crmSel, h('label', {}, 'Base URL'), base, h('label', {}, 'Credentials (JSON)'), creds,
  h('span'), h('div', {}, h('button', { type: 'submit', disabled: !canChange() }, cur ? 'Reconnect' : 'Connect')));
  put(pane, info, controls, out, h('h2', {}, cur ? 'Replace the connection' : 'Connect a CRM'),
    h('p', { class: 'muted' }, 'Credentials are stored encrypted and never shown again.'), connect);
}

// ---- calls: live board, events, rejected bodies ---------------------------

function closeLive() { if (S.live) { S.live.close(); S.live = null; } }

async function screenCalls(id, pane) {
  const emps = await list(tpath(id, '/employees'));
  const callsBody = h('tbody');
  const mgrBody = h('tbody');
  const stamp = h('span', { class: 'muted', id: 'live-state' }, 'connecting…');
  const renderBoard = (snap) => {
    callsBody.replaceChildren(...(snap.calls.length ? snap.calls.map((c) => h('tr', { 'data-call': c.id, 'data-state': c.state },
      h('td', {}, pill(c.state)), h('td', {}, c.direction === 'out' ? '→ ' : '← ', c.caller || '—'),
      h('td', {}, c.manager_name || c.manager || '—'), h('td', {}, fmtTime(c.started)), h('td', { class: 'muted' }, c.id)))
      : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No calls in the last minutes.'))]));
    const busy = new Map();
    for (const c of snap.calls) if ((c.state === 'talking' || c.state === 'ringing') && c.manager) busy.set(c.manager, c);
    const missed = new Map();
    for (const c of snap.calls) if (c.state === 'missed' && c.manager) missed.set(c.manager, (missed.get(c.manager) || 0) + 1);
    mgrBody.replaceChildren(...emps.map((e) => {
      const c = busy.get(e.sip) || busy.get(e.phone);
      const m = (missed.get(e.sip) || 0) + (missed.get(e.phone) || 0);
      return h('tr', { 'data-manager': e.crm_user_id }, h('td', {}, e.name || e.crm_user_id), h('td', {}, e.sip || e.phone),
        h('td', {}, c ? pill(c.state) : pill('free', 'ok')), h('td', { class: 'num' }, m || ''));
    }));
    stamp.textContent = 'live · updated ' + new Date(snap.at).toLocaleTimeString();
  };
  closeLive();
  const es = new EventSource('/console/api/live/' + enc(id));
  S.live = es;
  es.addEventListener('board', (m) => renderBoard(JSON.parse(m.data)));
  es.onerror = () => { stamp.textContent = 'reconnecting…'; };

  const board = h('div', { class: 'board' },
    h('div', {}, h('h2', {}, 'Calls ', stamp), h('table', { id: 'live-calls' }, h('thead', {}, h('tr', {}, ['State', 'Client', 'Manager', 'Started', 'Call id'].map((c) => h('th', {}, c)))), callsBody)),
    h('div', {}, h('h2', {}, 'Managers'), h('table', { id: 'live-managers' }, h('thead', {}, h('tr', {}, ['Manager', 'Line', 'Now', 'Missed'].map((c) => h('th', {}, c)))), mgrBody)));

  const stateSel = h('select', { name: 'state' }, ['', 'failed', 'waiting', 'done', 'dropped'].map((s) => h('option', { value: s }, s || 'any state')));
  const caller = h('input', { name: 'caller', placeholder: 'caller number' });
  const evBody = h('tbody');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Older');
  let before = '';
  const load = async (append) => {
    const q = new URLSearchParams({ limit: '50' });
    if (stateSel.value) q.set('state', stateSel.value);
    if (caller.value.trim()) q.set('caller', caller.value.trim());
    if (append && before) q.set('before', before);
    try {
      const evs = await list(tpath(id, '/events?' + q));
      const rows = evs.map((e) => h('tr', { 'data-event': e.id }, h('td', {}, pill(e.state)), h('td', {}, e.event), h('td', {}, e.fields.caller || e.fields.dst || ''),
        h('td', {}, e.fields.employee_number || ''), h('td', { class: 'num' }, e.attempts), h('td', {}, fmtTime(e.received_at)), h('td', {}, e.note)));
      if (append) evBody.append(...rows); else evBody.replaceChildren(...rows);
      if (evs.length) before = evs[evs.length - 1].received_at;
      more.hidden = evs.length < 50;
    } catch (e) { evBody.replaceChildren(h('tr', {}, h('td', { colspan: 7 }, errBox(e)))); }
  };
  more.addEventListener('click', () => load(true));
  const search = h('form', { class: 'row', id: 'event-search', onsubmit: (ev) => { ev.preventDefault(); before = ''; load(false); } },
    h('label', {}, 'State', stateSel), h('label', {}, 'Caller', caller), h('button', { type: 'submit' }, 'Search'));
  const rejBody = h('tbody');
  list(tpath(id, '/events/rejected?limit=20')).then((rs) => rejBody.replaceChildren(...rs.map((r) =>
    h('tr', {}, h('td', {}, fmtTime(r.received_at)), h('td', {}, r.reason), h('td', {}, h('pre', {}, r.body.slice(0, 2000))))))).catch((e) => rejBody.replaceChildren(h('tr', {}, h('td', {}, errBox(e)))));
  put(pane, board, h('h2', {}, 'Call events'), h('p', { class: 'muted' }, 'Failed and waiting events come first.'), search,
    h('table', { id: 'events' }, h('thead', {}, h('tr', {}, ['State', 'Event', 'Client', 'Manager', 'Attempts', 'Received', 'What it did'].map((c) => h('th', {}, c)))), evBody), more,
    h('h2', {}, 'Rejected bodies'), h('table', { id: 'rejected' }, h('thead', {}, h('tr', {}, ['Received', 'Reason', 'Body'].map((c) => h('th', {}, c)))), rejBody));
  load(false);
}

// ---- routing report -------------------------------------------------------

// Routing report: per day and manager routed to, how many of the routed
// calls that manager answered, how many fell through and who took them.
async function screenReport(id, pane) {
  const days = h('select', { name: 'days', id: 'report-days' }, [1, 7, 30, 90].map((d) => h('option', { value: d }, d === 1 ? 'today' : d + ' days')));
  days.value = '7';
  const out = h('div', { id: 'report-out' });
  const load = async () => {
    out.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    try {
      const r = await api('GET', tpath(id, '/report?days=' + enc(days.value)));
      const rows = r.rows.map((x) => h('tr', { 'data-day': x.day, 'data-manager': x.manager },
        h('td', {}, x.day),
        h('td', {}, x.manager ? (x.name || x.manager) : h('span', { class: 'muted' }, 'no forward'), x.target ? h('span', { class: 'muted' }, ' · ' + x.target) : null),
        h('td', { class: 'num', 'data-col': 'routed' }, x.routed),
        h('td', { class: 'num', 'data-col': 'answered' }, x.manager ? x.answered : '—'),
        h('td', { class: 'num', 'data-col': 'fell_through' }, x.fell_through),
        h('td', { class: 'num', 'data-col': 'missed' }, x.missed),
        h('td', { class: 'num', 'data-col': 'unknown' }, x.unknown || ''),
        h('td', { 'data-col': 'instead' }, x.answered_instead.map((w) => (w.name || w.manager || w.employee) + ' ×' + w.calls).join(', '))));
      out.replaceChildren(rows.length
        ? h('table', { id: 'report' }, h('thead', {}, h('tr', {}, ['Day', 'Routed to', 'Routed', 'They answered', 'Fell through', 'Missed', 'No outcome yet', 'Answered instead']
          .map((c) => h('th', {}, c)))), h('tbody', {}, rows))
        : h('p', { class: 'muted', id: 'report-empty' }, 'No routed calls with a call id in these days.'),
      h('p', { class: 'muted' }, 'Days in ' + r.time_zone + '. Only route requests that carry the call\'s id (uniqueid, call_id or uuid) are counted.'));
    } catch (e) { out.replaceChildren(errBox(e)); }
  };
  days.addEventListener('change', load);
  put(pane, h('p', { class: 'muted' }, 'Each route decision is joined with the call\'s outcome from its call events: answered by the manager it was routed to, or fell through (missed, or answered by someone else).'),
    h('div', { class: 'row card' }, h('label', {}, 'Period', days)), out);
  await load();
}

// Delete: the tenant goes with everything kept for it, once its id is
// typed in again.
async function screenDelete(id, pane) {
  const confirm = h('input', { name: 'confirm', id: 'delete-confirm', autocomplete: 'off', placeholder: id, size: 30 });
  const btn = h('button', { type: 'submit', class: 'danger', id: 'delete-tenant', disabled: true }, 'Delete tenant');
  const out = h('div');
  confirm.addEventListener('input', () => { btn.disabled = !canChange() || confirm.value !== id; });
  const form = h('form', { class: 'card', id: 'delete', onsubmit: async (ev) => {
    ev.preventDefault();
    if (confirm.value !== id) return;
    try {
      await api('DELETE', tpath(id) + '?confirm=' + enc(confirm.value));
      S.flash = 'Tenant ' + id + ' deleted.';
      location.hash = '#/';
    } catch (e) { out.replaceChildren(errBox(e)); }
  } },
  h('p', {}, 'Deleting ', h('strong', {}, id), ' removes its phone index, call events, routing report, settings, employees, stop list, CRM and Ringostat credentials on every instance. The audit log keeps a record of the deletion. This cannot be undone.'),
  canChange() ? null : h('p', { class: 'muted' }, 'Your token has read scope: it cannot delete.'),
  h('label', { for: 'delete-confirm' }, 'Type the tenant id to confirm'), confirm, btn);
  put(pane, form, out);
}

// ---- explain, audit -------------------------------------------------

async function screenExplain(id, pane) {
  const num = h('input', { name: 'caller', id: 'explain-caller', placeholder: '+380 50 123 4567', required: true, size: 30 });
  const out = h('div', { id: 'explain-out' });
  const form = h('form', { class: 'row card', id: 'explain', onsubmit: async (ev) => {
    ev.preventDefault();
    out.replaceChildren(h('p', { class: 'muted' }, 'Explaining…'));
    try { out.replaceChildren(renderExplain(await api('GET', tpath(id, '/explain?caller=' + enc(num.value.trim()))))); } catch (e) { out.replaceChildren(errBox(e)); }
  } }, h('label', {}, 'Caller number', num), h('button', { type: 'submit' }, 'Explain'));
  put(pane, h('p', { class: 'muted' }, 'What the route endpoint would answer for this caller now, and why.'), form, out);
}

function renderExplain(x) {
  const rows = (x.rows || []).map((r) => h('tr', { class: r.chosen ? 'chosen' : '' }, h('td', {}, r.kind), h('td', {}, r.entity_id), h('td', {}, r.phone),
    h('td', {}, r.owner_crm_user_id || '—'), h('td', {}, r.open ? 'open' : 'closed'), h('td', {}, r.chosen ? pill('chosen', 'ok') : r.verdict)));
  const a = x.answer || {};
  return h('div', {},
    h('div', { class: 'card kv' },
      h('dt', {}, 'Caller as given'), h('dd', {}, x.caller),
      h('dt', {}, 'Normalized'), h('dd', { id: 'explain-normalized' }, x.normalized || '— (' + (x.normalize_error || 'not a phone number') + ')'),
      h('dt', {}, 'Suffix key'), h('dd', {}, x.suffix || '—'),
      h('dt', {}, 'Rows read from'), h('dd', {}, x.source || '—'),
      h('dt', {}, 'Owner order'), h('dd', {}, (x.owner_order || []).join(' → ')),
      h('dt', {}, 'Owner chosen'), h('dd', { id: 'explain-owner' }, x.owner ? x.owner.owner_crm_user_id + ' (' + x.owner.kind + ' ' + x.owner.entity_id + ')' : '—'),
      h('dt', {}, 'Employee'), h('dd', {}, x.employee ? (x.employee.name || x.employee.crm_user_id) + ' · ' + (x.employee.sip || x.employee.phone) : '—'),
      h('dt', {}, 'Why'), h('dd', { id: 'explain-why' }, x.why),
      h('dt', {}, 'Reason'), h('dd', { id: 'explain-reason' }, pill(x.reason, x.target ? 'ok' : 'warn')),
      h('dt', {}, 'Route answer now'), h('dd', { class: 'answer', id: 'explain-answer' }, (a.status || '') + ' ' + (a.content_type || '') + '  ' + (a.body || '(empty body)'))),
    h('h2', {}, 'Index rows with this suffix'),
    rows.length ? h('table', { id: 'explain-rows' }, h('thead', {}, h('tr', {}, ['Kind', 'Entity', 'Phone', 'Responsible', 'Open', 'Verdict'].map((c) => h('th', {}, c)))), h('tbody', {}, rows))
      : h('p', { class: 'muted' }, 'No index row has this number.'));
}

async function screenAudit(id, pane) {
  const entries = await list(tpath(id, '/audit?limit=200'));
  put(pane, h('table', { id: 'audit' }, h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'Detail'].map((c) => h('th', {}, c)))),
    h('tbody', {}, entries.map((e) => h('tr', {}, h('td', {}, fmtTime(e.at)), h('td', {}, e.actor), h('td', {}, e.action), h('td', {}, h('pre', {}, e.detail)))))));
}

async function screenSecret(id, pane) {
  const grace = h('input', { type: 'number', name: 'grace_seconds', value: 86400, min: 0 });
  const out = h('div');
  put(pane, h('p', { class: 'muted' }, 'A new webhook secret replaces the current one; the old one keeps working for the grace period so the PBX and CRM webhooks can be moved over.'),
    h('form', { class: 'row card', id: 'rotate', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await api('POST', tpath(id, '/secret/rotate'), { grace_seconds: Number(grace.value) });
        out.replaceChildren(secretBox(id, r.webhook_secret, 'New webhook secret.' + (r.previous_valid_until ? ' The old one works until ' + fmtTime(r.previous_valid_until) + '.' : '')));
      } catch (e) { out.replaceChildren(errBox(e)); }
    } }, h('label', {}, 'Old secret keeps working for (seconds)', grace), h('button', { type: 'submit', disabled: !canChange() }, 'Rotate secret')), out);
}

// ---- start ------------------------------------------------------------------

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', async () => {
  document.getElementById('signout').addEventListener('click', signOut);
  try {
    S.me = await api('GET', '/console/api/session');
    afterSignIn();
  } catch (_) { renderSignIn(); }
});
