// Console (operators and data scientists): nodes, jobs and their logs, tasks, actors, a task timeline, the
// scheduler's queue, reservations (create and delete), the ledger and events. #/console/SECTION[/ARG].
import { fmt, get, h, live, nodesWithDead, pagedNodes, send } from '../api.js';
import { table } from '../table.js';
import { card } from './explorer.js';

const sections = ['nodes', 'jobs', 'tasks', 'actors', 'timeline', 'queue', 'logs', 'reservations', 'ledger', 'events'];

export function consoleView(root, params) {
  const section = sections.includes(params[0]) ? params[0] : 'nodes';
  const body = h('div', { class: 'section' });
  const summary = h('div', { class: 'cards' });
  root.replaceChildren(
    h('h1', {}, 'Console'),
    summary,
    h('nav', { class: 'tabs' }, sections.map((s) => h('a', { href: `#/console/${s}`, class: s === section ? 'active' : '' }, s))),
    body,
  );
  const drawSummary = () => {
    const s = live.status;
    if (!s) return;
    const t = s.node_totals || {};
    summary.replaceChildren(
      card('nodes', t.count ?? 0, `${Math.max(live.dead.size, s.dead_nodes)} dead`),
      card('jobs running', s.jobs.filter((j) => j.state === 'running').length, `${s.jobs.length} in all`),
      card('leases running', t.active_leases ?? 0, ''),
      card('scheduler queue', s.pending_leases, 'lease requests waiting'),
      card('object store', fmt.bytes(t.store_used_bytes), `of ${fmt.bytes(t.store_capacity_bytes)}`),
    );
  };
  drawSummary();
  const offSummary = live.on((k, e) => (k === 'status' || (k === 'event' && e.kind === 'node')) && drawSummary());
  const stop = { nodes, jobs, tasks, actors, logs, reservations, ledger, events, timeline, queue }[section](body, params.slice(1));
  return () => {
    offSummary();
    if (stop) stop();
  };
}

function nodes(el) {
  const t = table({
    id: 'console-nodes',
    pageSize: 100,
    placeholder: 'name, host, GPU or label',
    fetchPage: (p) => nodesWithDead(p, consoleNodeRow),
    columns: [
      { key: 'name', label: 'node', cell: (r) => h('a', { href: `#/worker/${encodeURIComponent(r.name)}` }, r.name) },
      { key: 'state', label: 'state', cell: (r) => h('span', { class: 'badge ' + r.state }, r.state) },
      { key: 'host', label: 'host' },
      { key: 'reach', label: 'reach', title: 'how the head reaches it: public (dialled back), nat (behind a NAT), firewalled', cell: (r) => h('span', { class: 'badge ' + (r.reach === 'public' ? 'healthy' : r.reach === '-' ? '' : 'degraded'), title: r.reach_detail }, r.reach) },
      { key: 'cpu', label: 'CPU free/all' },
      { key: 'gpus', label: 'GPUs' },
      { key: 'leases', label: 'leases' },
      { key: 'store', label: 'store', value: (r) => r.store_bytes, cell: (r) => fmt.bytes(r.store_bytes) },
      { key: 'hb', label: 'heartbeat ms' },
      { key: 'labels', label: 'labels' },
    ],
  });
  el.replaceChildren(t.el);
  return pagedNodes(t);
}

function consoleNodeRow(name, n, state) {
  if (!n) return { __key: name, name, state, host: '-', reach: '-', reach_detail: '', cpu: '-', gpus: '-', leases: 0, store_bytes: 0, hb: '-', labels: '' };
  return {
    __key: name,
    name,
    state,
    host: n.host,
    reach: n.reach ? n.reach.path : '-',
    reach_detail: n.reach ? `seen from ${n.reach.observed}, its own address ${n.reach.local || '?'}, dialled back: ${n.reach.inbound}` : '',
    cpu: `${fmt.num(n.cpus_available)}/${fmt.num(n.cpus, 0)}`,
    gpus: n.gpus.map((g) => g.model + (g.verified ? '' : '?')).join(', ') || '-',
    leases: n.active_leases,
    store_bytes: n.object_store_used_bytes || 0,
    hb: n.last_heartbeat_ms,
    labels: Object.entries(n.labels || {}).map((e) => e.join('=')).join(' '),
  };
}


function jobs(el) {
  const t = table({
    id: 'console-jobs',
    placeholder: 'filter jobs',
    columns: [
      { key: 'id', label: 'job', cell: (r) => h('a', { href: `#/console/logs/${encodeURIComponent(r.id)}` }, r.id) },
      { key: 'state', label: 'state', cell: (r) => h('span', { class: 'badge ' + r.state }, r.state) },
      { key: 'driver', label: 'driver' },
      { key: 'tasks', label: 'tasks done / failed / running / waiting', value: (r) => (r.tasks ? r.tasks.task.finished : -1), cell: (r) => (r.tasks ? h('a', { href: `#/console/tasks/${encodeURIComponent(r.id)}` }, `${r.tasks.task.finished} / ${r.tasks.task.failed} / ${r.tasks.task.running} / ${r.tasks.task.waiting}`) : '-') },
      { key: 'leases_granted', label: 'leases granted' },
      { key: 'active_leases', label: 'running' },
      { key: 'started_unix_ms', label: 'started', cell: (r) => fmt.time(r.started_unix_ms) },
      { key: 'ended_unix_ms', label: 'ended', cell: (r) => (r.ended_unix_ms ? fmt.time(r.ended_unix_ms) : '-') },
    ],
  });
  el.replaceChildren(t.el);
  const render = () => live.status && t.setRows(live.status.jobs.map((j) => ({ ...j, __key: j.id })));
  render();
  return live.on((k) => k === 'status' && render());
}

// The scheduler's queue and fair share per user: what each user holds against what its weight entitles it to
// among the users with work (the head asks a user far above its share to yield leases to one below).
function queue(el) {
  const t = table({
    id: 'console-queue',
    empty: 'no user has work running or waiting',
    placeholder: 'filter users',
    columns: [
      { key: 'user', label: 'user' },
      { key: 'weight', label: 'weight', cell: (r) => fmt.num(r.weight, 2) },
      { key: 'jobs', label: 'jobs' },
      { key: 'leases', label: 'leases running' },
      { key: 'waiting', label: 'requests waiting' },
      { key: 'cpus', label: 'CPUs held', cell: (r) => fmt.num(r.cpus) },
      { key: 'gpus', label: 'GPUs held', cell: (r) => fmt.num(r.gpus, 2) },
      { key: 'share', label: 'share now / fair share', value: (r) => r.share - r.fair_share, cell: (r) => shareBar(r.share, r.fair_share) },
    ],
  });
  const note = h('p', { class: 'muted' }, 'Share: the larger of the CPUs and GPUs a user holds over the cluster\'s. Fair share: its weight over the weights of the users with work.');
  el.replaceChildren(note, t.el);
  const render = () => live.status && t.setRows((live.status.users || []).map((u) => ({ ...u, __key: u.user })));
  render();
  return live.on((k) => k === 'status' && render());
}

function shareBar(share, fair) {
  const pct = (x) => Math.round(100 * x) + '%';
  return h(
    'span',
    { class: 'bar share', title: `holds ${pct(share)} of the cluster; fair share ${pct(fair)}` },
    h('span', { style: `width:${Math.min(100, 100 * share)}%` }),
    h('i', { style: `left:${Math.min(100, 100 * fair)}%` }),
    h('em', {}, `${pct(share)} / ${pct(fair)}`),
  );
}

// A job's output: searched on the head, followed by byte offset (new lines appear as they are written).
function logs(el, params) {
  const jobSel = h('select', { id: 'log-job', onchange: () => (location.hash = `#/console/logs/${encodeURIComponent(jobSel.value)}`) });
  const q = h('input', { type: 'search', placeholder: 'search the log', id: 'log-search' });
  const follow = h('input', { type: 'checkbox', checked: true, id: 'log-follow' });
  const out = h('pre', { class: 'log', id: 'log-text' });
  const note = h('span', { class: 'muted' });
  el.replaceChildren(h('div', { class: 'tools' }, 'job ', jobSel, ' ', q, ' ', h('label', {}, follow, ' follow'), ' ', note), out);
  const job = params[0] ? decodeURIComponent(params[0]) : '';
  const fillJobs = () => {
    if (!live.status) return;
    const ids = live.status.jobs.map((j) => j.id);
    if (job && !ids.includes(job)) ids.unshift(job);
    if (jobSel.options.length === ids.length) return;
    jobSel.replaceChildren(h('option', { value: '' }, '(pick a job)'), ...ids.map((id) => h('option', { value: id, selected: id === job }, id)));
  };
  fillJobs();
  let offset = 0;
  let busy = false;
  async function pull(reset) {
    if (!job || busy) return;
    busy = true;
    try {
      if (reset) {
        offset = 0;
        out.textContent = '';
      }
      const r = await get(`/api/v1/logs?job=${encodeURIComponent(job)}&offset=${offset}&q=${encodeURIComponent(q.value)}${reset ? '&tail=2000' : ''}`);
      if (r.lines.length) out.append(r.lines.join('\n') + '\n');
      offset = r.next_offset;
      note.textContent = `${fmt.bytes(r.size)} of output${q.value ? `, ${out.textContent.split('\n').length - 1} matching lines` : ''}`;
      if (follow.checked) out.scrollTop = out.scrollHeight;
    } catch (e) {
      note.textContent = e.message;
    } finally {
      busy = false;
    }
  }
  let debounce = 0;
  q.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => pull(true), 250);
  });
  pull(true);
  const timer = setInterval(() => follow.checked && pull(false), 1000);
  const off = live.on((k) => k === 'status' && fillJobs());
  return () => {
    clearInterval(timer);
    off();
  };
}

// Reservations: the same commands and errors as `iogrid cluster create|list|delete`.
function reservations(el) {
  const err = h('p', { class: 'error', id: 'reservation-error' });
  const field = (name, label, attrs = {}) => h('label', {}, label, ' ', h('input', { name, ...attrs }));
  const form = h(
    'form',
    { class: 'inline', id: 'reservation-form' },
    field('gpus', 'GPUs', { type: 'number', min: 1, value: 1, required: true, style: 'width:4em' }),
    field('gpu_model', 'model', { placeholder: 'any', style: 'width:7em' }),
    field('region', 'region', { placeholder: 'any', style: 'width:6em' }),
    field('max_price', 'max $/GPU-h', { type: 'number', step: 'any', min: 0, style: 'width:5em' }),
    field('min_reputation', 'min reputation', { type: 'number', step: 'any', min: 0, max: 1, style: 'width:5em' }),
    field('duration_s', 'for (s)', { type: 'number', min: 0, placeholder: 'no end', style: 'width:6em' }),
    field('name', 'name', { style: 'width:8em' }),
    h('button', { type: 'submit' }, 'reserve'),
  );
  const t = table({
    id: 'console-reservations',
    filter: false,
    empty: 'no reservations',
    columns: [
      { key: 'id', label: 'cluster' },
      { key: 'name', label: 'name' },
      { key: 'gpus', label: 'GPUs', cell: (r) => `${r.gpus} × ${r.gpu_model || 'any'}` },
      { key: 'nodes', label: 'nodes', cell: (r) => (r.nodes || []).map((n) => `${n.node} (${n.gpus})`).join(', ') },
      { key: 'region', label: 'region' },
      { key: 'owner', label: 'owner' },
      { key: 'price_per_hour', label: '$/h', cell: (r) => fmt.money(r.price_per_hour) },
      { key: 'cost_so_far', label: 'cost so far', cell: (r) => fmt.money(r.cost_so_far) },
      { key: 'expires_in_s', label: 'expires in', cell: (r) => (r.expires_in_s === null ? 'never' : fmt.duration(r.expires_in_s)) },
      { key: 'x', label: '', cell: (r) => h('button', { class: 'danger', onclick: () => remove(r.id) }, 'delete') },
    ],
  });
  el.replaceChildren(h('h2', {}, 'Reserve GPUs'), form, err, t.el);
  async function load() {
    try {
      t.setRows((await get('/api/v1/reservations')).map((r) => ({ ...r, __key: r.id })));
    } catch (e) {
      err.textContent = e.message;
    }
  }
  async function remove(id) {
    err.textContent = '';
    try {
      await send('DELETE', `/api/v1/reservations/${encodeURIComponent(id)}`);
    } catch (e) {
      err.textContent = e.message;
    }
    load();
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const args = {};
    for (const [k, v] of new FormData(form)) if (v !== '') args[k] = ['gpus', 'max_price', 'min_reputation', 'duration_s'].includes(k) ? Number(v) : v;
    try {
      const r = await send('POST', '/api/v1/reservations', args);
      err.textContent = '';
      form.dataset.made = r.id;
    } catch (e) {
      err.textContent = e.message;
    }
    load();
  });
  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}

function ledger(el) {
  const t = table({
    id: 'console-ledger',
    placeholder: 'filter (job, cluster, node)',
    columns: [
      { key: 'kind', label: 'kind' },
      { key: 'name', label: 'name' },
      { key: 'gpu_seconds', label: 'GPU-hours', cell: (r) => fmt.num(r.gpu_seconds / 3600, 3) },
      { key: 'cost', label: 'cost / earnings', cell: (r) => fmt.money(r.cost) },
    ],
  });
  const totals = h('div', { class: 'cards small' });
  el.replaceChildren(totals, t.el);
  async function load() {
    try {
      const rows = await get('/api/v1/ledger');
      t.setRows(rows.map((r) => ({ ...r, __key: r.kind + '/' + r.name })));
      const sum = (k) => rows.filter((r) => r.kind === k).reduce((a, r) => a + r.cost, 0);
      totals.replaceChildren(card('charged to jobs', fmt.money(sum('job')), ''), card('charged to reservations', fmt.money(sum('reservation')), ''), card('earned by nodes', fmt.money(sum('node')), ''));
    } catch (e) {
      totals.replaceChildren(h('p', { class: 'error' }, e.message));
    }
  }
  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}

// Events from the head's history, searched there; new ones arrive through the stream.
function events(el) {
  const kind = h('select', {}, ['', 'node', 'job', 'verify'].map((k) => h('option', { value: k }, k || 'all kinds')));
  const q = h('input', { type: 'search', placeholder: 'search events' });
  const more = h('button', {}, 'older ›');
  const t = table({
    id: 'console-events',
    filter: false,
    pageSize: 100,
    columns: [
      { key: 'ts_ms', label: 'when', cell: (r) => fmt.time(r.ts_ms) },
      { key: 'kind', label: 'kind' },
      { key: 'subject', label: 'subject' },
      { key: 'detail', label: 'detail' },
    ],
  });
  el.replaceChildren(h('div', { class: 'tools' }, kind, ' ', q, ' ', more), t.el);
  let rows = [];
  let before = null;
  async function load(reset) {
    if (reset) {
      rows = [];
      before = null;
    }
    const r = await get(`/api/v1/events?limit=200&kind=${kind.value}&q=${encodeURIComponent(q.value)}${before ? '&before=' + before : ''}`);
    rows = rows.concat(r.events.map((e) => ({ ...e, __key: e.id })));
    before = r.next_before;
    more.disabled = !before;
    t.setRows(rows);
  }
  kind.onchange = () => load(true);
  let debounce = 0;
  q.oninput = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => load(true), 250);
  };
  more.onclick = () => load(false);
  load(true);
  return live.on((k, e) => {
    if (k !== 'event' || (kind.value && e.kind !== kind.value) || (q.value && !JSON.stringify(e).toLowerCase().includes(q.value.toLowerCase()))) return;
    rows.unshift({ ...e, id: 'live-' + e.ts_ms + e.subject, __key: 'live-' + rows.length });
    t.setRows(rows);
  });
}

// A job picker shared by the task views: the job in the link, else the latest running one.
function jobPicker(section, params) {
  const chosen = params[0] ? decodeURIComponent(params[0]) : '';
  const select = h('select', { id: `${section}-job`, onchange: () => (location.hash = `#/console/${section}/${encodeURIComponent(select.value)}`) });
  const fill = () => {
    if (!live.status) {
      // Before the first status: at least the job the link names.
      if (chosen && !select.options.length) select.replaceChildren(h('option', { value: chosen, selected: true }, chosen));
      return chosen;
    }
    const jobs = [...live.status.jobs].sort((a, b) => b.started_unix_ms - a.started_unix_ms);
    const current = chosen || (jobs.find((j) => j.state === 'running') || jobs[0] || {}).id || '';
    if (select.options.length !== jobs.length || !jobs.some((j) => j.id === select.value)) select.replaceChildren(...jobs.map((j) => h('option', { value: j.id, selected: j.id === current }, `${j.id} (${j.state})`)));
    return current;
  };
  return { select, fill };
}

// A job's tasks as its owners report them: counts by state, how long they ran, failures with their root cause.
function tasks(el, params) {
  const picker = jobPicker('tasks', params);
  const cards = h('div', { class: 'cards', id: 'task-counts' });
  const hist = h('div', { class: 'prices', id: 'task-durations' });
  const failures = table({
    id: 'task-failures',
    placeholder: 'filter failures',
    empty: 'no failures',
    columns: [
      { key: 'ts_ms', label: 'when', cell: (r) => fmt.time(r.ts_ms) },
      { key: 'name', label: 'task' },
      { key: 'node', label: 'node' },
      { key: 'root_task', label: 'root cause', cell: (r) => (r.root_task ? `passed on from ${r.root_task}` : 'this task') },
      { key: 'error', label: 'error', class: 'wrap' },
    ],
  });
  el.replaceChildren(h('div', { class: 'tools' }, 'job ', picker.select), cards, h('div', { class: 'grid2' }, h('section', {}, h('h2', {}, 'How long tasks ran'), hist), h('section', {}, h('h2', {}, 'Actor calls'), h('div', { class: 'cards small', id: 'actor-calls' }))), h('h2', {}, 'Failures and their root cause'), failures.el);
  async function load() {
    const job = picker.fill();
    if (!job) return;
    try {
      const d = await get(`/api/v1/tasks?job=${encodeURIComponent(job)}&limit=1`);
      const t = d.tasks;
      if (!t) {
        cards.replaceChildren(h('p', { class: 'muted' }, 'this job has reported no tasks yet'));
        return;
      }
      cards.replaceChildren(card('submitted', t.task.submitted, ''), card('waiting', t.task.waiting, 'for a worker'), card('running', t.task.running, ''), card('finished', t.task.finished, ''), card('failed', t.task.failed, ''));
      document.getElementById('actor-calls').replaceChildren(card('calls finished', t.actor_call.finished, ''), card('calls failed', t.actor_call.failed, ''), card('calls waiting', t.actor_call.waiting + t.actor_call.running, 'or running'));
      const b = t.duration.buckets, c = t.duration.counts, total = c.reduce((a, x) => a + x, 0);
      hist.replaceChildren(
        ...c.map((n, i) =>
          h('div', { class: 'price-row' }, h('span', { class: 'label' }, i < b.length ? `≤ ${b[i] < 1 ? b[i] * 1000 + ' ms' : b[i] + ' s'}` : `> ${b[b.length - 1]} s`), h('span', { class: 'range' }, h('span', { class: 'span', style: `left:0;width:${total ? (100 * n) / total : 0}%` })), h('span', { class: 'value' }, String(n))),
        ),
        h('p', { class: 'muted' }, total ? `mean ${fmt.num((1000 * t.duration.sum_s) / total, 2)} ms over ${total} tasks` : 'no task has ended yet'),
      );
      failures.setRows(d.failures.map((f, i) => ({ ...f, __key: i })));
    } catch (e) {
      cards.replaceChildren(h('p', { class: 'error' }, e.message));
    }
  }
  load();
  const timer = setInterval(load, 2000);
  return () => clearInterval(timer);
}

// A job's actors as their owners report them: counts by state (click one to filter), each actor's state,
// restarts, node and why it died; live ones first. The head filters and pages; the latest 2,000 matches are shown.
function actors(el, params) {
  const picker = jobPicker('actors', params);
  const state = h('select', { id: 'actors-state' }, ['', 'pending', 'alive', 'restarting', 'dead'].map((k) => h('option', { value: k }, k || 'every state')));
  const q = h('input', { type: 'search', placeholder: 'search name, node, error' });
  const counts = h('div', { class: 'cards', id: 'actor-counts' });
  const note = h('span', { class: 'muted' });
  const t = table({
    id: 'console-actors',
    filter: false,
    pageSize: 100,
    empty: 'this job has no actors',
    columns: [
      { key: 'name', label: 'actor' },
      { key: 'id', label: 'id' },
      { key: 'state', label: 'state', cell: (r) => h('span', { class: 'badge ' + (r.state === 'alive' ? 'alive' : r.state === 'dead' ? 'dead' : 'degraded') }, r.state) },
      { key: 'restarts', label: 'restarts' },
      { key: 'node', label: 'node', cell: (r) => (r.node ? h('a', { href: `#/worker/${encodeURIComponent(r.node)}` }, r.node) : '-') },
      { key: 'since_ms', label: 'since', cell: (r) => fmt.time(r.since_ms) },
      { key: 'error', label: 'why it died', class: 'wrap', cell: (r) => r.error || '' },
    ],
  });
  el.replaceChildren(h('div', { class: 'tools' }, 'job ', picker.select, ' ', state, ' ', q, ' ', note), counts, t.el);
  async function load() {
    const job = picker.fill();
    if (!job) return;
    try {
      const d = await get(`/api/v1/actors?job=${encodeURIComponent(job)}&state=${state.value}&q=${encodeURIComponent(q.value)}&limit=2000`);
      counts.replaceChildren(
        ...['pending', 'alive', 'restarting', 'dead'].map((k) => {
          const n = d.states[k] ?? 0;
          const c = card(k, n, k === 'dead' ? 'for good' : k === 'restarting' ? 'lost a worker' : '');
          c.style.cursor = 'pointer';
          c.onclick = () => {
            state.value = state.value === k ? '' : k;
            load();
          };
          return c;
        }),
      );
      note.textContent = d.total > d.actors.length ? `the first ${d.actors.length} of ${d.total} matching` : `${d.total} matching`;
      t.setRows(d.actors.map((a) => ({ ...a, __key: `${a.job}/${a.id}` })));
    } catch (e) {
      counts.replaceChildren(h('p', { class: 'error' }, e.message));
    }
  }
  state.onchange = load;
  let debounce = 0;
  q.oninput = () => {
    clearTimeout(debounce);
    debounce = setTimeout(load, 250);
  };
  load();
  const timer = setInterval(load, 2000);
  return () => clearInterval(timer);
}

// The task timeline of a job, drawn in the page: one lane per node, a bar per task from dispatch to outcome
// (failed ones red), the latest 5,000 spans, following the job live.
function timeline(el, params) {
  const picker = jobPicker('timeline', params);
  const canvas = h('canvas', { id: 'timeline', height: 320 });
  const note = h('span', { class: 'muted' });
  const tip = h('div', { class: 'muted', id: 'timeline-tip' }, 'hover a bar for its task');
  el.replaceChildren(h('div', { class: 'tools' }, 'job ', picker.select, ' ', note), canvas, tip);
  let spans = [];
  let after = 0;
  let job = '';
  let boxes = [];
  async function load() {
    const now = picker.fill();
    if (!now) return;
    if (now !== job) {
      job = now;
      spans = [];
      after = 0;
    }
    try {
      const d = await get(`/api/v1/tasks?job=${encodeURIComponent(job)}&after=${after}&limit=5000`);
      spans = spans.concat(d.spans).slice(-5000);
      if (spans.length) after = spans[spans.length - 1][3];
      note.textContent = `${spans.length} task spans` + (d.tasks ? ` · ${d.tasks.task.running} running, ${d.tasks.task.waiting} waiting` : '');
      draw();
    } catch (e) {
      note.textContent = e.message;
    }
  }
  function draw() {
    const width = (canvas.width = Math.max(400, el.clientWidth || 800));
    // One lane per node, split into rows so that spans running at once on it (one per worker) do not hide
    // each other: each span takes the first row free at its start (at most 16 rows a node).
    const byNode = new Map();
    for (const sp of spans) {
      const node = sp[1] || '?';
      if (!byNode.has(node)) byNode.set(node, []);
      byNode.get(node).push(sp);
    }
    const rowOf = new Map(), lanes = [];
    for (const node of [...byNode.keys()].sort()) {
      const ends = [], first = lanes.length;
      for (const sp of byNode.get(node).sort((a, b) => a[2] - b[2])) {
        let r = ends.findIndex((e) => e <= sp[2]);
        if (r < 0) r = ends.length < 16 ? ends.length : ends.indexOf(Math.min(...ends));
        ends[r] = sp[3];
        rowOf.set(sp, first + r);
      }
      ends.forEach((_, r) => lanes.push(r === 0 ? node : ''));
    }
    const laneH = 22, left = 120, top = 20;
    canvas.height = Math.max(60, top + lanes.length * laneH + 10);
    const g = canvas.getContext('2d');
    g.clearRect(0, 0, width, canvas.height);
    g.font = '12px sans-serif';
    boxes = [];
    if (!spans.length) {
      g.fillStyle = '#718096';
      g.fillText('no task spans reported for this job yet', 10, 30);
      return;
    }
    const t0 = Math.min(...spans.map((s) => s[2])), t1 = Math.max(...spans.map((s) => s[3]), t0 + 1);
    const x = (t) => left + ((width - left - 10) * (t - t0)) / (t1 - t0);
    g.fillStyle = '#666';
    for (let i = 0; i <= 4; i++) g.fillText(`+${(((t1 - t0) * i) / 4 / 1000).toFixed(2)} s`, Math.min(x(t0 + ((t1 - t0) * i) / 4), width - 60), 12);
    lanes.forEach((l, i) => {
      g.fillStyle = '#333';
      g.fillText(l, 4, top + i * laneH + 14);
    });
    for (const s of spans) {
      const lane = rowOf.get(s);
      const a = x(s[2]), w = Math.max(1, x(s[3]) - a), y = top + lane * laneH + 2;
      g.fillStyle = s[4] ? (s[5] === 2 ? '#7c3aed' : '#2b6cb0') : '#b91c1c';
      g.fillRect(a, y, w, laneH - 6);
      boxes.push([a, y, w, laneH - 6, s]);
    }
  }
  canvas.addEventListener('mousemove', (e) => {
    const r = canvas.getBoundingClientRect();
    const px = ((e.clientX - r.left) * canvas.width) / r.width, py = ((e.clientY - r.top) * canvas.height) / r.height;
    const hit = boxes.find(([a, y, w, hh]) => px >= a && px <= a + Math.max(w, 3) && py >= y && py <= y + hh);
    if (hit) {
      const s = hit[4];
      tip.textContent = `${s[0]} on ${s[1]}: ${s[3] - s[2]} ms, ${s[4] ? 'ok' : 'failed'} (${fmt.time(s[2])})`;
    }
  });
  load();
  const timer = setInterval(load, 2000);
  return () => clearInterval(timer);
}
