// berth's dashboard: polls the host's admin API every 2 s and draws what it
// says (docs/dashboard.md). No framework: DOM calls, fetch and plain SVG.
// Everything from the API is put in the page as text, never as HTML.
'use strict';

const POLL_MS = 2000;
const HISTORY_MS = 10 * 60 * 1000; // samples kept for the charts
const SHIPS_SHOWN = 100; // the first page of ships listed
const TOKEN_KEY = 'berth-token';
const TIERS = ['asleep', 'waking', 'awake', 'frozen', 'sleeping'];

// Usage fields of an account object (its "usage"), in table order: [field,
// kind, format]. A counter is charted as a rate, a gauge as it is.
const USAGE = [
  ['ships', 'gauge', 'count'],
  ['awake', 'gauge', 'count'],
  ['storage_bytes', 'gauge', 'bytes'],
  ['events', 'counter', 'count'],
  ['cpu_seconds', 'counter', 'seconds'],
  ['memory_peak_bytes', 'gauge', 'bytes'],
  ['memory_byte_seconds', 'counter', 'byteseconds'],
  ['wakes', 'counter', 'count'],
  ['requests', 'counter', 'count'],
];
const CHARTED = [
  ['ships', 'ships'],
  ['awake', 'awake ships'],
  ['storage_bytes', 'storage'],
  ['events', 'events / s'],
  ['requests', 'requests / s'],
  ['cpu_seconds', 'CPU seconds / s'],
];

let token = null; // the admin API token, or '' when the host needs none
let samples = []; // {t, tiers, wakes, accounts: {name: {field: value}}}
let timer = null;

// --- Small helpers. ---

function $(sel) {
  return document.querySelector(sel);
}

// Make an element with attributes and children (strings become text).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) {
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function fmtCount(v) {
  return Number.isInteger(v) ? v.toLocaleString('en') : v.toFixed(2);
}

function fmtBytes(v) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (i === 0 ? String(Math.round(v)) : v.toFixed(1)) + ' ' + units[i];
}

function fmt(v, kind) {
  if (typeof v !== 'number') return '-';
  if (kind === 'bytes') return fmtBytes(v);
  if (kind === 'byteseconds') return fmtBytes(v) + '\u00b7s';
  if (kind === 'seconds') return v.toFixed(v < 10 ? 2 : 0);
  return fmtCount(v);
}

// "12 s ago" for a wall-clock time in nanoseconds (0: never).
function ago(ns) {
  if (!ns) return '-';
  const s = Math.max(0, Math.round((Date.now() - ns / 1e6) / 1000));
  if (s < 120) return s + ' s ago';
  if (s < 7200) return Math.round(s / 60) + ' min ago';
  return Math.round(s / 3600) + ' h ago';
}

function say(text, isError) {
  const m = $('#message');
  m.textContent = text;
  m.className = isError ? 'error' : '';
}

// --- The API. ---

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One request to the admin API; its JSON, or an ApiError.
async function api(method, path) {
  const headers = token ? { Authorization: 'Bearer ' + token } : {};
  const r = await fetch(path, { method, headers, cache: 'no-store', signal: AbortSignal.timeout(15000) });
  let body = null;
  try {
    body = await r.json();
  } catch (e) {
    body = null;
  }
  if (!r.ok) {
    const err = body && body.error ? body.error : {};
    if (r.status === 401) askToken(token ? 'The host refused the token: ' + (err.message || r.status) : '');
    throw new ApiError(r.status, err.code || String(r.status), err.message || r.statusText);
  }
  return body;
}

// --- The token: from the URL's fragment, sessionStorage, or the form. ---

function takeFragmentToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    // The fragment never reaches a server; take it out of the address bar
    // and the history all the same.
    history.replaceState(null, '', location.pathname + location.search);
  }
}

function askToken(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  clearTimeout(timer);
  $('#main').hidden = true;
  $('#forget').hidden = true;
  $('#login').hidden = false;
  $('#status').textContent = 'no token';
  if (why) say(why, true);
  $('#token').focus();
}

function start() {
  $('#login').hidden = true;
  $('#main').hidden = false;
  $('#forget').hidden = !token;
  say('');
  poll();
}

// --- Charts: lines over the last ten minutes, in plain SVG. ---

const W = 300;
const H = 90;

// series: [{name, points: [[t ms, value], ...]}]; kind formats the top.
function chart(title, series, kind) {
  const box = el('figure', { class: 'chart', 'data-chart': title });
  box.append(el('figcaption', {}, title));
  const now = Date.now();
  // The time axis spans the samples kept, from 30 s up to ten minutes.
  const oldest = samples.length ? samples[0].t : now;
  const span = Math.min(HISTORY_MS, Math.max(30000, now - oldest));
  let max = 0;
  for (const s of series) for (const [, v] of s.points) max = Math.max(max, v);
  const top = max > 0 ? max * 1.1 : 1;
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' });
  g.append(svg('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'axis' }));
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const pts = s.points.map(([t, v]) => {
      const x = W - ((now - t) / span) * W;
      const y = H - 1 - (v / top) * (H - 4);
      return x.toFixed(1) + ',' + y.toFixed(1);
    });
    if (pts.length === 1) pts.push(pts[0].replace(/^[^,]+/, String(W)));
    g.append(svg('polyline', { points: pts.join(' '), class: 'line s' + (i % 8) }));
  });
  box.append(g);
  const spanText = span < 120000 ? Math.round(span / 1000) + ' s' : Math.round(span / 60000) + ' min';
  const legend = el('div', { class: 'legend' },
    el('span', { class: 'max' }, `last ${spanText}, max ${fmt(max, kind)}`));
  series.forEach((s, i) => {
    const last = s.points.length ? s.points[s.points.length - 1][1] : null;
    legend.append(el('span', { class: 'key s' + (i % 8) }, s.name + ' ' + fmt(last, kind)));
  });
  if (series.every((s) => s.points.length === 0)) legend.append(el('span', {}, 'no figures yet'));
  box.append(legend);
  return box;
}

// Points of a gauge, or the per-second rate of a counter, from samples.
function pointsOf(get, kind) {
  const out = [];
  let prev = null;
  for (const s of samples) {
    const v = get(s);
    if (typeof v !== 'number') {
      prev = null;
      continue;
    }
    if (kind === 'gauge') {
      out.push([s.t, v]);
    } else if (prev && v >= prev.v && s.t > prev.t) {
      out.push([s.t, (v - prev.v) / ((s.t - prev.t) / 1000)]);
    }
    prev = { t: s.t, v };
  }
  return out;
}

// --- Drawing each part. ---

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function drawHosts(c) {
  const rows = c.hosts.map((h) =>
    el('tr', { 'data-host': h.id },
      el('td', {}, String(h.id) + (h.self ? ' (this host)' : '')),
      el('td', { 'data-field': 'role' }, h.leader ? 'leader' : h.role),
      el('td', { 'data-field': 'online', class: h.online ? 'ok' : 'bad' }, h.online ? 'yes' : 'no'),
      el('td', {}, h.peer || '-'),
      el('td', {}, h.listen || '-'),
      el('td', {}, h.admin || '-'),
      el('td', { class: 'num' }, fmtCount(h.applied)),
      el('td', { class: 'num' }, fmtCount(h.lag)),
      // The last heartbeat: its age, and the load average it reported.
      el('td', { 'data-field': 'heartbeat', class: 'num' },
        h.heartbeat ? (h.heartbeat.age_ms / 1000).toFixed(1) + ' s' : '-'),
      el('td', { class: 'num' }, h.heartbeat ? h.heartbeat.load1.toFixed(2) : '-')));
  fill($('#hosts tbody'), rows);
}

function drawTiers(tiers) {
  for (const [k, v] of Object.entries(tiers)) {
    $(`#tiers [data-tier="${k}"]`).textContent = fmtCount(v);
  }
  const series = TIERS.filter((t) => t !== 'asleep').map((t) => ({
    name: t,
    points: pointsOf((s) => s.tiers && s.tiers[t], 'gauge'),
  }));
  $('#tier-charts').replaceChildren(
    chart('ships asleep', [{ name: 'asleep', points: pointsOf((s) => s.tiers && s.tiers.asleep, 'gauge') }], 'count'),
    chart('ships with a process', series, 'count'));
}

// An account's figure: its usage object's, else (ships) the account's own.
// The API's name of each figure the page shows under another (docs/api.md,
// "Usage"), and the scale from the API's unit to the page's.
const API_FIELD = { awake: ['ships_awake', 1], cpu_seconds: ['cpu_us', 1e-6] };

function figure(a, field) {
  const [name, scale] = API_FIELD[field] || [field, 1];
  if (a.usage && typeof a.usage[name] === 'number') return a.usage[name] * scale;
  if (field === 'ships' && typeof a.ships === 'number') return a.ships;
  return undefined;
}

function drawAccounts(list) {
  const rows = list.accounts.map((a) => {
    const tr = el('tr', { 'data-account': a.name, class: a.disabled ? 'disabled' : '' },
      el('td', {}, a.name),
      el('td', { 'data-field': 'state' }, a.disabled ? 'disabled' : 'enabled'));
    for (const [field, , kind] of USAGE) {
      tr.append(el('td', { class: 'num', 'data-field': field }, fmt(figure(a, field), kind)));
    }
    const action = a.disabled ? 'enable' : 'disable';
    const b = el('button', { type: 'button', 'data-action': action }, action);
    b.addEventListener('click', () =>
      act(b, 'POST', `/v1/accounts/${encodeURIComponent(a.name)}/${action}`, `account ${a.name}: ${action}d`));
    tr.append(el('td', {}, b));
    return tr;
  });
  fill($('#accounts tbody'), rows);
  const names = list.accounts.map((a) => a.name);
  const charts = CHARTED.map(([field, title]) => {
    const kind = USAGE.find((u) => u[0] === field);
    const series = names.map((n) => ({
      name: n,
      points: pointsOf((s) => s.accounts && s.accounts[n] && s.accounts[n][field], kind[1]),
    }));
    return chart(title, series, kind[2] === 'bytes' ? 'bytes' : 'count');
  });
  $('#account-charts').replaceChildren(...charts);
}

function drawWakes(ships) {
  $('#wake-charts').replaceChildren(
    chart('wakes / s (this host)', [{ name: 'wakes', points: pointsOf((s) => s.wakes, 'counter') }], 'count'));
  const woken = ships.ships.filter((s) => s.wake_count > 0);
  woken.sort((a, b) => b.last_active_ns - a.last_active_ns);
  const rows = woken.slice(0, 10).map((s) =>
    el('tr', { 'data-ship': s.name || s.id },
      el('td', {}, s.name || s.id),
      el('td', {}, s.account || '-'),
      el('td', { 'data-field': 'state' }, s.state),
      el('td', { class: 'num' }, fmtCount(s.wake_count)),
      el('td', {}, ago(s.last_active_ns))));
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: 5 }, 'no wakes since the host started')));
  fill($('#wakes tbody'), rows);
}

function drawShips(ships) {
  $('#ships-note').textContent = ships.total > ships.ships.length
    ? `the first ${ships.ships.length} of ${ships.total} ships` : `${ships.total} ships`;
  const rows = ships.ships.map((s) => {
    const who = s.name || s.id;
    const buttons = el('td', {});
    for (const action of ['sleep', 'wake']) {
      const b = el('button', { type: 'button', 'data-action': action }, action);
      b.addEventListener('click', () =>
        act(b, 'POST', `/v1/ships/${encodeURIComponent(s.id)}/${action}`, `ship ${who}: ${action} done`));
      buttons.append(b);
    }
    return el('tr', { 'data-ship': who, class: s.account_disabled ? 'disabled' : '' },
      el('td', {}, s.name || '-'),
      el('td', { class: 'mono' }, s.id),
      el('td', {}, s.account || '-'),
      el('td', { 'data-field': 'state' }, s.state),
      el('td', { class: 'num' }, fmtCount(s.last_event)),
      el('td', { class: 'num' }, fmtCount(s.wake_count)),
      el('td', {}, ago(s.last_active_ns)),
      el('td', { class: 'num' }, s.memory_bytes ? fmtBytes(s.memory_bytes) : '-'),
      buttons);
  });
  fill($('#ships tbody'), rows);
}

// A button's request; the page is polled again at once after it.
async function act(button, method, path, done) {
  button.disabled = true;
  try {
    await api(method, path);
    say(done, false);
  } catch (e) {
    say(`${path}: ${e.code}: ${e.message}`, true);
  } finally {
    button.disabled = false;
  }
  poll();
}

// --- Polling. ---

async function tierCounts() {
  const counts = await Promise.all(
    TIERS.map((t) => api('GET', `/v1/ships?state=${t}&limit=1`).then((r) => r.total)));
  const tiers = {};
  TIERS.forEach((t, i) => (tiers[t] = counts[i]));
  return tiers;
}

// Each part is drawn from its own requests: a refused one (a token whose
// scope is too low for accounts, say) leaves the others working.
const PARTS = [
  ['cluster', () => api('GET', '/v1/cluster')],
  ['tiers', tierCounts],
  ['accounts', () => api('GET', '/v1/accounts')],
  ['stats', () => api('GET', '/v1/stats')],
  ['ships', () => api('GET', `/v1/ships?limit=${SHIPS_SHOWN}`)],
];

async function poll() {
  clearTimeout(timer);
  if (token === null) return;
  const t = Date.now();
  const got = await Promise.allSettled(PARTS.map(([, get]) => get()));
  if (token === null) return; // a 401 asked for another token meanwhile
  const v = {};
  let failed = 0;
  PARTS.forEach(([name], i) => {
    const r = got[i];
    const err = document.querySelector(`[data-error="${name}"]`);
    if (r.status === 'fulfilled') {
      v[name] = r.value;
      err.textContent = '';
    } else {
      failed++;
      err.textContent = `${r.reason.code || 'error'}: ${r.reason.message}`;
    }
  });
  const sample = { t, tiers: v.tiers, wakes: v.stats && v.stats.wakes, accounts: {} };
  if (v.tiers) sample.tiers.all = Object.values(v.tiers).reduce((a, b) => a + b, 0);
  if (v.accounts) {
    for (const a of v.accounts.accounts) {
      const f = {};
      for (const [field] of USAGE) f[field] = figure(a, field);
      sample.accounts[a.name] = f;
    }
  }
  samples.push(sample);
  samples = samples.filter((s) => s.t >= t - HISTORY_MS);
  if (v.cluster) drawHosts(v.cluster);
  if (v.tiers) drawTiers(v.tiers);
  if (v.accounts) drawAccounts(v.accounts);
  if (v.ships) {
    drawWakes(v.ships);
    drawShips(v.ships);
  }
  const when = new Date(t).toLocaleTimeString('en-GB');
  $('#status').textContent = failed ? `updated ${when}, ${failed} part(s) failed` : `updated ${when}`;
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  timer = setTimeout(poll, POLL_MS);
}

// --- Start. ---

async function main() {
  $('#login').addEventListener('submit', async (e) => {
    e.preventDefault();
    token = $('#token').value.trim();
    $('#token').value = '';
    if (!token) return;
    // One request tries the token before a poll sends a burst with it: the
    // host counts each refusal against this address and answers 429 past
    // a few.
    try {
      await api('GET', '/v1/stats');
    } catch (err) {
      if (err.status !== 401) askToken(`${err.code}: ${err.message}`);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  $('#forget').addEventListener('click', () => askToken('Token forgotten.'));
  takeFragmentToken();
  token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    start();
    return;
  }
  // A host reached without a token in between (its Unix socket, through a
  // tunnel) answers without one; on TCP this asks for it.
  token = '';
  try {
    await api('GET', '/v1/stats');
    start();
  } catch (e) {
    if (e.status !== 401) askToken(`${e.code}: ${e.message}`);
  }
}

main();
