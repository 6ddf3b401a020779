// The web UI's shell: hash routes (#/explorer, #/worker[/NODE], #/console/SECTION[/ARG]) so every view is a
// link; the login box; the live indicator. Views are functions (root, params) -> stop().
import './style.css';
import { h, live, loadSession, loggedOut, login, logout, session } from './api.js';
import { consoleView } from './views/console.js';
import { explorerView } from './views/explorer.js';
import { workerView } from './views/worker.js';

const views = { explorer: explorerView, worker: workerView, console: consoleView };
const needsLogin = new Set(['worker', 'console']);
const root = document.getElementById('view');
let stop = null;

function route() {
  if (stop) stop();
  stop = null;
  const parts = (location.hash.replace(/^#\/?/, '') || 'explorer').split('/');
  const name = views[parts[0]] ? parts[0] : 'explorer';
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('active', a.dataset.view === name);
  if (needsLogin.has(name) && !session.logged_in) {
    root.replaceChildren(loginBox(name));
    return;
  }
  stop = views[name](root, parts.slice(1)) || null;
}

function loginBox(name) {
  const key = h('input', { type: 'password', id: 'login-key', placeholder: 'cluster token or user key', autocomplete: 'current-password' });
  const err = h('p', { class: 'error' });
  const form = h(
    'form',
    {
      class: 'login',
      id: 'login-form',
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await login(key.value);
          account();
          route();
        } catch (x) {
          err.textContent = x.message;
        }
      },
    },
    h('h1', {}, name === 'worker' ? 'Worker' : 'Console'),
    h('p', {}, 'Log in with the cluster token (', h('code', {}, '~/.iogrid/token'), ' on the head) or a key from ', h('code', {}, 'iogrid ui-key add NAME'), '.'),
    key,
    ' ',
    h('button', { type: 'submit' }, 'log in'),
    err,
  );
  setTimeout(() => key.focus(), 0);
  return form;
}

function account() {
  const el = document.getElementById('account');
  if (!session.login_required) el.replaceChildren(h('span', { class: 'muted', title: 'this dashboard needs no login (an embedded cluster, or --dashboard-open)' }, 'open dashboard'));
  else if (session.logged_in) el.replaceChildren(h('span', {}, session.user, ' '), h('button', { onclick: async () => { await logout(); account(); route(); } }, 'log out'));
  else el.replaceChildren(h('a', { href: '#/console' }, 'log in'));
}

function liveIndicator() {
  const el = document.getElementById('live');
  const draw = () => {
    const fresh = live.connected && Date.now() - live.last_message_ms < 20000;
    el.textContent = fresh ? 'live' : live.connected ? 'live (quiet)' : 'reconnecting';
    el.className = 'live ' + (fresh ? 'on' : 'off');
  };
  live.on(draw);
  setInterval(draw, 2000);
}

(async () => {
  try {
    await loadSession();
  } catch (e) {
    root.replaceChildren(h('p', { class: 'error' }, 'the head did not answer: ' + e.message));
    return;
  }
  account();
  loggedOut.add(() => {
    account();
    route();
  });
  liveIndicator();
  live.restart();
  window.addEventListener('hashchange', route);
  route();
})();
