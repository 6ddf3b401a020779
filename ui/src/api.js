// The head's JSON API (runtime/cluster/dashboard_http.hpp) and its event stream, for every view.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const session = { login_required: false, logged_in: false, user: '', csrf: '', ui_built: true, history: true };

// Called when the head no longer knows this tab's login (it restarted, or the session expired).
export const loggedOut = new Set();
function lost() {
  if (!session.login_required || !session.logged_in) return;
  session.logged_in = false;
  session.user = '';
  session.csrf = '';
  for (const fn of loggedOut) fn();
  live.restart();
}

async function answer(r) {
  if (r.status === 401) lost();
  if (r.ok) return r.status === 204 ? {} : r.json();
  let message = r.statusText;
  try {
    message = (await r.json()).error || message;
  } catch (e) {
    // not JSON: the status text says it
  }
  throw new ApiError(r.status, message);
}

export async function get(path) {
  return answer(await fetch(path, { credentials: 'same-origin' }));
}

// A call that changes state: it carries the session's CSRF token (the head refuses it otherwise).
export async function send(method, path, body) {
  return answer(
    await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-IOGrid-CSRF': session.csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
}

export async function loadSession() {
  Object.assign(session, await get('/api/v1/session'));
  return session;
}

export async function login(key) {
  const r = await fetch('/api/v1/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ key }),
  });
  await answer(r);
  await loadSession();
  live.restart();
}

export async function logout() {
  await send('POST', '/api/v1/logout');
  await loadSession();
  live.restart();
}

// A page of the head's nodes (the status the stream carries has their totals only, so it stays small at
// 10,000 nodes): {total, nodes}. `query` matches names and hosts; `name` one node exactly.
export async function nodePage({ offset = 0, limit = 100, query = '', name = '' } = {}) {
  const p = new URLSearchParams({ offset, limit });
  if (query) p.set('q', query);
  if (name) p.set('name', name);
  return get('/api/v1/nodes?' + p);
}

// One event stream per tab: the explorer document for everyone; with a login also the status summary and
// events as they happen. Nodes the events say died are remembered (until they join again), so a page shows
// a death at once, and the dead among the nodes it pages stay listed.
export const live = {
  status: null,
  explorer: null,
  dead: new Map(), // name -> {since_ms, why}
  connected: false,
  last_message_ms: 0,
  listeners: new Set(),
  source: null,
  paused: false,

  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  },
  emit(kind, data) {
    this.last_message_ms = Date.now();
    for (const fn of this.listeners) fn(kind, data);
  },
  // A browser holds at most six connections to one host over HTTP/1.1, and each tab's stream keeps one: a
  // tab hidden for a while lets its stream go (the seventh tab would wait forever otherwise) and takes a new
  // one, with the current documents, when it is shown again.
  pause() {
    if (!this.source) return;
    this.source.close();
    this.source = null;
    this.paused = true;
  },
  resume() {
    if (this.paused) this.restart();
  },
  restart() {
    this.paused = false;
    if (this.source) this.source.close();
    const full = session.logged_in;
    const es = new EventSource(full ? '/api/v1/stream?view=full' : '/api/v1/stream');
    this.source = es;
    es.onopen = () => {
      this.connected = true;
      this.emit('connection', true);
    };
    es.onerror = () => {
      this.connected = false;
      this.emit('connection', false);
      // A refused stream (401 after a head restart, or the head away) is not retried by the browser: ask
      // again in a moment, with the session as the head now sees it.
      if (es.readyState === EventSource.CLOSED)
        setTimeout(async () => {
          if (this.source !== es) return;
          try {
            const before = session.logged_in;
            await loadSession();
            if (before && !session.logged_in) {
              session.logged_in = true;
              lost();
              return;
            }
          } catch (e) {
            // the head is still away: try again
          }
          this.restart();
        }, 2000);
    };
    es.addEventListener('explorer', (m) => {
      this.explorer = JSON.parse(m.data);
      this.emit('explorer', this.explorer);
    });
    es.addEventListener('status', (m) => {
      this.status = JSON.parse(m.data);
      this.emit('status', this.status);
    });
    es.addEventListener('event', (m) => {
      const e = JSON.parse(m.data);
      if (e.kind === 'node') {
        if (e.detail.startsWith('dead')) {
          if (!this.dead.has(e.subject)) this.dead.set(e.subject, { since_ms: e.ts_ms, why: e.detail });
        } else {
          this.dead.delete(e.subject); // joined (again)
        }
      }
      this.emit('event', e);
    });
  },
  // A node's state as this tab knows it: dead once an event said so, alive while the head lists it.
  state(name) {
    return this.dead.has(name) ? 'dead' : 'alive';
  },
  // The dead nodes this tab heard of whose name or host matches `query` (for a paged list's first page).
  deadMatching(query) {
    const q = (query || '').toLowerCase();
    return [...this.dead].filter(([name]) => !q || name.toLowerCase().includes(q));
  },
};

// Keeps a node table that pages the head (table's fetchPage) fresh: again every 2 s while shown, and at once
// when a node joins or dies.
export function pagedNodes(t) {
  const timer = setInterval(() => !document.hidden && t.refresh(), 2000);
  const off = live.on((k, e) => k === 'event' && e.kind === 'node' && t.refresh());
  return () => {
    clearInterval(timer);
    off();
  };
}

// A page of nodes from the head, with the dead ones this tab heard of (matching the filter) first on page one.
export async function nodesWithDead({ offset, limit, query }, row) {
  const page = await nodePage({ offset, limit, query });
  const rows = page.nodes.filter((n) => !live.dead.has(n.name)).map((n) => row(n.name, n, 'alive'));
  const dead = offset === 0 ? live.deadMatching(query).map(([name, d]) => row(name, null, 'dead', d)) : [];
  return { rows: [...dead, ...rows], total: page.total };
}

// Formatting shared by the views.
export const fmt = {
  num: (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(d)),
  money: (v) => (v === null || v === undefined ? '-' : '$' + Number(v).toFixed(2)),
  bytes(v) {
    if (!v) return '0 B';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < u.length - 1) {
      v /= 1024;
      i++;
    }
    return v.toFixed(i ? 1 : 0) + ' ' + u[i];
  },
  duration(s) {
    if (s === null || s === undefined) return '-';
    if (s < 90) return Math.round(s) + ' s';
    if (s < 5400) return Math.round(s / 60) + ' min';
    if (s < 172800) return (s / 3600).toFixed(1) + ' h';
    return (s / 86400).toFixed(1) + ' d';
  },
  time: (ms) => (ms ? new Date(ms).toLocaleString() : '-'),
  ago(ms) {
    if (!ms) return '-';
    return fmt.duration((Date.now() - ms) / 1000) + ' ago';
  },
};

// Builds DOM from a tag, attributes and children; strings become text (never HTML).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

// Hidden for 10 s: the stream goes (see live.pause); shown: it comes back at once.
let hideTimer = null;
document.addEventListener('visibilitychange', () => {
  clearTimeout(hideTimer);
  if (document.hidden) hideTimer = setTimeout(() => live.pause(), 10000);
  else live.resume();
});
