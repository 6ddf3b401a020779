// Worker view: a provider's nodes. Each device's connection state and uptime history, live and historical
// telemetry, verification history and measured TFLOPS, reputation and what moved it, leases served, GPU-seconds
// and earnings from the ledger. #/worker lists nodes; #/worker/NAME shows one.
import { fmt, get, h, live, nodePage, nodesWithDead, pagedNodes } from '../api.js';
import { timeChart } from '../chart.js';
import { table } from '../table.js';
import { card } from './explorer.js';

export function workerView(root, params) {
  const name = params[0] ? decodeURIComponent(params[0]) : '';
  return name ? nodeDetail(root, name) : nodeList(root);
}

function nodeList(root) {
  const list = table({
    id: 'worker-nodes',
    placeholder: 'filter by name, host, model or label',
    fetchPage: (p) => nodesWithDead(p, workerRow),
    columns: [
      { key: 'name', label: 'node', cell: (r) => h('a', { href: `#/worker/${encodeURIComponent(r.name)}` }, r.name) },
      { key: 'state', label: 'state', cell: (r) => h('span', { class: 'badge ' + r.state }, r.state) },
      { key: 'gpus', label: 'GPUs', value: (r) => r.gpus },
      { key: 'temp', label: 'hottest °C', cell: (r) => fmt.num(r.temp, 0) },
      { key: 'power', label: 'power W', cell: (r) => fmt.num(r.power, 0) },
      { key: 'util', label: 'util %', cell: (r) => fmt.num(r.util, 0) },
      { key: 'reputation', label: 'reputation', cell: (r) => fmt.num(r.reputation, 2) },
      { key: 'leases', label: 'leases' },
      { key: 'price', label: '$/GPU-h', cell: (r) => fmt.money(r.price) },
    ],
  });
  root.replaceChildren(h('h1', {}, 'Worker'), h('p', { class: 'muted' }, 'Your devices: pick one for its telemetry, uptime, verification and earnings.'), list.el);
  return pagedNodes(list);
}

function workerRow(name, x, state) {
  const t = (x && x.telemetry) || [];
  return {
    __key: name,
    name,
    state,
    gpus: x ? x.gpus.map((g) => g.model).join(', ') || '-' : '-',
    temp: t.length ? Math.max(...t.map((g) => g.temperature_c)) : null,
    power: t.length ? t.reduce((a, g) => a + g.power_w, 0) : null,
    util: t.length ? t.reduce((a, g) => a + g.utilization_pct, 0) / t.length : null,
    reputation: x ? x.reputation : null,
    leases: x ? x.active_leases : 0,
    price: x ? x.price_per_gpu_hour : null,
  };
}

function nodeDetail(root, name) {
  const head = h('div', { class: 'cards' });
  const gpus = h('div', { class: 'gpus' });
  const uptime = h('div', { class: 'uptime', id: 'uptime' });
  const verifications = table({
    id: 'verifications',
    filter: false,
    empty: 'no verification yet',
    columns: [
      { key: 'ts_ms', label: 'when', cell: (r) => fmt.time(r.ts_ms) },
      { key: 'detail', label: 'result and reputation' },
    ],
  });
  const earnings = h('div', { class: 'cards small', id: 'earnings' });
  const daily = h('div', { class: 'prices', id: 'earnings-daily' });
  const charts = h('div', { class: 'grid2' });
  let chartObjs = [];
  let device = -1;
  root.replaceChildren(
    h('p', {}, h('a', { href: '#/worker' }, '‹ all nodes')),
    h('h1', {}, name),
    head,
    h('h2', {}, 'GPUs now'),
    gpus,
    h('h2', {}, 'Telemetry over time'),
    charts,
    h('div', { class: 'grid2' }, h('section', {}, h('h2', {}, 'Connection and uptime (last 24 h)'), uptime), h('section', {}, h('h2', {}, 'Earnings (ledger)'), earnings, h('h3', {}, 'Per day (UTC)'), daily)),
    h('h2', {}, 'Verification history and what moved the reputation'),
    verifications.el,
  );

  function makeCharts(count) {
    chartObjs.forEach((c) => c.destroy());
    const p = (i, s) => `gpu/${name}/${i}/${s}`;
    const devs = [...Array(count).keys()];
    const per = (s, label) => devs.map((i) => ({ name: p(i, s), label: `GPU ${i} ${label}` }));
    chartObjs = [
      timeChart({ title: 'Temperature', unit: '°C', series: per('temperature_c', '°C') }),
      timeChart({ title: 'Power against its limit', unit: 'W', series: devs.flatMap((i) => [{ name: p(i, 'power_w'), label: `GPU ${i} W` }, { name: p(i, 'power_limit_w'), label: `GPU ${i} limit`, dash: true }]) }),
      timeChart({ title: 'Utilisation', unit: '%', series: per('utilization_pct', '%') }),
      timeChart({ title: 'Memory used', unit: 'GiB', series: per('memory_used_gib', 'GiB') }),
      timeChart({ title: 'SM clock', unit: 'MHz', series: per('sm_clock_mhz', 'MHz') }),
    ];
    charts.replaceChildren(...chartObjs.map((c) => c.el));
    chartObjs.forEach((c) => c.load());
  }

  // The node's record from the head (asked again every 2 s and when an event names it); a dead node keeps
  // the last record this page had, marked dead.
  let x = null;
  let asked = 0;
  async function fetchNode() {
    const n = ++asked;
    try {
      const page = await nodePage({ name, limit: 1 });
      if (n !== asked) return;
      if (page.nodes.length) {
        x = page.nodes[0];
        if (live.dead.get(name)?.why === 'dead: no longer listed by the head') live.dead.delete(name);
      } else if (!live.dead.has(name) && x) live.dead.set(name, { since_ms: Date.now(), why: 'dead: no longer listed by the head' });
      render();
    } catch (e) {
      head.replaceChildren(h('p', { class: 'error' }, e.message));
    }
  }
  function render() {
    const dead = live.dead.get(name);
    const rec = { state: dead ? 'dead' : 'alive', why: dead ? dead.why : '' };
    if (!x) {
      head.replaceChildren(card('state', asked ? (dead ? 'dead' : 'unknown') : 'loading', asked ? 'no such node in this head' : ''));
      return;
    }
    head.replaceChildren(
      h('div', { class: 'card', id: 'node-state' }, h('div', { class: 'value' }, h('span', { class: 'badge ' + rec.state }, rec.state)), h('div', { class: 'label' }, 'connection'), h('div', { class: 'sub' }, rec.state === 'dead' ? rec.why : `heartbeat ${x.last_heartbeat_ms} ms ago`)),
      card('reputation', fmt.num(x.reputation, 3), ''),
      card('price', fmt.money(x.price_per_gpu_hour), 'per GPU-hour'),
      card('leases running', rec.state === 'alive' ? x.active_leases : 0, ''),
      card('CPUs free', `${fmt.num(x.cpus_available)} / ${fmt.num(x.cpus, 0)}`, ''),
      card('object store', fmt.bytes(x.object_store_used_bytes), `of ${fmt.bytes(x.object_store_capacity_bytes)}`),
    );
    const t = new Map((x.telemetry || []).map((g) => [g.index, g]));
    gpus.replaceChildren(
      ...x.gpus.map((g, i) => {
        const m = t.get(i);
        return h(
          'div',
          { class: 'gpu card' },
          h('div', { class: 'value' }, `GPU ${i}: ${g.model}`),
          h('div', { class: 'sub' }, `${fmt.num(g.memory_gib, 0)} GiB · ${g.verified ? 'verified' : 'not verified'}${g.tflops ? ' · ' + fmt.num(g.tflops) + ' TFLOPS' : ''} · ${fmt.num(100 * (1 - g.free), 0)}% leased`),
          m
            ? h('div', { class: 'telemetry' }, `${fmt.num(m.temperature_c, 0)} °C · ${fmt.num(m.power_w, 0)} / ${fmt.num(m.power_limit_w, 0)} W · ${fmt.num(m.utilization_pct, 0)}% util · ${fmt.num(m.memory_used_gib)} GiB · ${m.sm_clock_mhz} MHz`)
            : h('div', { class: 'sub muted' }, 'no telemetry (no NVML on this node)'),
        );
      }),
      x.gpus.length ? '' : h('p', { class: 'muted' }, 'this node has no GPUs'),
    );
    if (device !== x.gpus.length) {
      device = x.gpus.length;
      makeCharts(device);
    }
  }

  async function loadHistory() {
    try {
      const day = Date.now() - 86400e3;
      const ev = await get(`/api/v1/events?kind=node&subject=${encodeURIComponent(name)}&limit=500`);
      const mine = ev.events.filter((e) => e.subject === name);
      drawUptime(uptime, mine, day);
      const v = await get(`/api/v1/events?kind=verify&subject=${encodeURIComponent(name)}&limit=200`);
      verifications.setRows(v.events.filter((e) => e.subject === name).map((e) => ({ ...e, __key: e.id })));
      const ledger = await get('/api/v1/ledger');
      const mineL = ledger.filter((e) => e.kind === 'node' && e.name === name);
      const gs = mineL.reduce((a, e) => a + e.gpu_seconds, 0), earned = mineL.reduce((a, e) => a + e.cost, 0);
      earnings.replaceChildren(card('GPU-hours served', fmt.num(gs / 3600, 2), `${fmt.num(gs, 0)} GPU-seconds`), card('earned', fmt.money(earned), 'since the ledger began'));
      // Per day (UTC), last 30 days: differences of the ledger's running totals the head keeps in its history.
      const since = Date.now() - 30 * 86400e3;
      const [usd, secs] = await Promise.all(
        ['earned_usd', 'gpu_seconds'].map((k) => get(`/api/v1/history?series=${encodeURIComponent(`ledger/${name}/${k}`)}&from=${Math.round(since)}&points=1000`)),
      );
      const gsDay = new Map(perDay(secs.points).map((d) => [d.day, d.value]));
      const days = perDay(usd.points);
      const top = Math.max(0.01, ...days.map((d) => d.value));
      daily.replaceChildren(
        ...days.map((d) =>
          h('div', { class: 'price-row' }, h('span', { class: 'label' }, d.day), h('span', { class: 'range' }, h('span', { class: 'span', style: `left:0;width:${(100 * d.value) / top}%` })), h('span', { class: 'value', title: `${fmt.num((gsDay.get(d.day) || 0) / 3600, 2)} GPU-hours` }, fmt.money(d.value))),
        ),
        days.length ? '' : h('p', { class: 'muted' }, 'nothing earned in the last 30 days'),
      );
    } catch (e) {
      uptime.replaceChildren(h('p', { class: 'error' }, e.message));
    }
  }
  fetchNode();
  loadHistory();
  const off = live.on((kind, e) => {
    if (kind === 'event' && e.subject === name) {
      render();
      fetchNode();
      loadHistory();
    }
  });
  const poll = setInterval(() => !document.hidden && fetchNode(), 2000);
  const timer = setInterval(() => chartObjs.forEach((c) => c.load()), 15000);
  return () => {
    off();
    clearInterval(poll);
    clearInterval(timer);
    chartObjs.forEach((c) => c.destroy());
  };
}

// A strip over the last 24 hours: green while connected, red while dead; the events listed below it.
function drawUptime(el, events, from) {
  const now = Date.now();
  const sorted = [...events].sort((a, b) => a.ts_ms - b.ts_ms);
  const spans = [];
  let state = null, since = from;
  for (const e of sorted) {
    const up = !e.detail.startsWith('dead');
    if (e.ts_ms < from) {
      state = up;
      continue;
    }
    if (state !== null) spans.push({ up: state, from: since, to: e.ts_ms });
    state = up;
    since = Math.max(e.ts_ms, from);
  }
  if (state !== null) spans.push({ up: state, from: since, to: now });
  const upMs = spans.filter((s) => s.up).reduce((a, s) => a + s.to - s.from, 0);
  const known = spans.reduce((a, s) => a + s.to - s.from, 0);
  el.replaceChildren(
    h('div', { class: 'strip' }, ...spans.map((s) => h('span', { class: s.up ? 'up' : 'down', style: `left:${(100 * (s.from - from)) / (now - from)}%;width:${(100 * (s.to - s.from)) / (now - from)}%`, title: `${s.up ? 'connected' : 'dead'} ${fmt.time(s.from)} – ${fmt.time(s.to)}` }))),
    h('p', { class: 'muted' }, known ? `connected ${((100 * upMs) / known).toFixed(1)}% of the time known in the last 24 h` : 'no connection events in the last 24 h'),
    h('ul', { class: 'events' }, ...sorted.slice(-8).reverse().map((e) => h('li', {}, h('time', {}, fmt.time(e.ts_ms)), ' ', e.detail))),
  );
}

// Per-day increases of a running total from history points [ts, mean, min, max, count] (hour buckets keep the
// maximum): each day's highest total less the day before's (the first day: less its own lowest).
export function perDay(points) {
  const days = new Map();
  for (const [ts, , min, max] of points) {
    const day = new Date(ts).toISOString().slice(0, 10);
    const r = days.get(day) || { min: Infinity, max: -Infinity };
    days.set(day, { min: Math.min(r.min, min), max: Math.max(r.max, max) });
  }
  let prev = null;
  const out = [];
  for (const [day, r] of [...days].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    out.push({ day, value: Math.max(0, r.max - (prev === null ? r.min : prev)) });
    prev = r.max;
  }
  return out;
}
