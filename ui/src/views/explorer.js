// Explorer: the network in public (no login). Supply by GPU model and region, live prices, verification,
// reservations ("clusters") and their health, hardware and utilisation over time.
import { fmt, get, h, live } from '../api.js';
import { timeChart } from '../chart.js';
import { table } from '../table.js';

export function explorerView(root) {
  const cards = h('div', { class: 'cards' });
  const supply = table({
    id: 'supply',
    placeholder: 'filter models, regions',
    columns: [
      { key: 'model', label: 'GPU model' },
      { key: 'region', label: 'region', cell: (r) => r.region || '-' },
      { key: 'gpus', label: 'GPUs' },
      { key: 'nodes', label: 'providers' },
      { key: 'verified', label: 'verified', value: (r) => r.verified / r.gpus, cell: (r) => pct(r.verified / r.gpus) },
      { key: 'busy', label: 'busy / idle', value: (r) => r.busy / r.gpus, cell: (r) => bar(r.busy, r.gpus) },
      { key: 'price_median', label: 'median $/GPU-h', cell: (r) => fmt.money(r.price_median) },
    ],
  });
  const prices = h('div', { class: 'prices', id: 'prices' });
  const verification = h('div', { class: 'cards small', id: 'verification' });
  const reservations = table({
    id: 'reservations',
    filter: false,
    empty: 'no reservations',
    columns: [
      { key: 'id', label: 'cluster' },
      { key: 'gpus', label: 'GPUs', cell: (r) => `${r.gpus} × ${r.gpu_model || 'any'}` },
      { key: 'region', label: 'region', cell: (r) => r.region || '-' },
      { key: 'health', label: 'health', cell: (r) => h('span', { class: 'badge ' + r.health }, `${r.health} (${r.nodes_alive}/${r.nodes} nodes)`) },
      { key: 'price_per_hour', label: '$/h', cell: (r) => fmt.money(r.price_per_hour) },
      { key: 'age_s', label: 'age', cell: (r) => fmt.duration(r.age_s) },
      { key: 'expires_in_s', label: 'expires in', cell: (r) => (r.expires_in_s === null ? 'never' : fmt.duration(r.expires_in_s)) },
    ],
  });
  // Posted prices (/api/v1/market, public): what GPU work pays per market, by tier, and the price over time.
  const market = table({
    id: 'market',
    filter: false,
    empty: 'no posted prices yet',
    columns: [
      { key: 'market', label: 'market (model/region)' },
      { key: 'price', label: 'posted $/GPU-h', cell: (r) => fmt.money(r.price) },
      { key: 'spot', label: 'spot', cell: (r) => fmt.money(r.spot) },
      { key: 'urgent', label: 'urgent', cell: (r) => fmt.money(r.urgent) },
      { key: 'utilisation', label: 'utilisation', value: (r) => r.utilisation, cell: (r) => pct(r.utilisation) },
    ],
  });
  const marketNote = h('p', { class: 'muted', id: 'market-note' });
  const marketChart = h('div', { id: 'market-chart' });
  let priceChart = null;
  let charted = '';
  async function loadMarket() {
    let m;
    try {
      m = await get('/api/v1/market?points=1');
    } catch {
      return;
    }
    const tier = (t) => (m.tiers[t] ? m.tiers[t].multiplier : 1);
    market.setRows(
      m.markets.map((k) => ({ ...k, spot: k.price * tier('spot'), urgent: k.price * tier('urgent'), __key: k.market })),
    );
    marketNote.textContent =
      `Prices move every ${fmt.duration(m.round_s)} towards ${pct(m.rules.target)} utilisation, at most ` +
      `${pct(m.rules.max_step)} a round; work pays the posted price × its tier (spot ${tier('spot')}, urgent ` +
      `${tier('urgent')}); a provider asking more gets none.`;
    const names = m.markets.map((k) => k.market).join(',');
    if (names !== charted) {
      charted = names;
      if (priceChart) priceChart.destroy();
      priceChart = m.markets.length
        ? timeChart({ title: 'Posted price ($/GPU-h)', series: m.markets.map((k) => ({ name: `market/${k.market}/price`, label: k.market })) })
        : null;
      marketChart.replaceChildren(priceChart ? priceChart.el : '');
    }
    if (priceChart) priceChart.load();
  }
  const hardware = timeChart({
    title: 'Active hardware',
    series: [
      { name: 'cluster/gpus', label: 'GPUs' },
      { name: 'cluster/nodes_alive', label: 'nodes alive' },
    ],
  });
  const usage = timeChart({
    title: 'Network utilisation',
    series: [
      { name: 'cluster/gpus_busy', label: 'GPUs busy' },
      { name: 'cluster/cpus_used', label: 'CPUs used' },
      { name: 'cluster/leases_active', label: 'leases running' },
      { name: 'cluster/leases_pending', label: 'leases waiting', dash: true },
    ],
  });
  root.replaceChildren(
    h('h1', {}, 'Explorer'),
    h('p', { class: 'muted' }, 'The network in public: what GPUs it has, what they cost, whether they are checked, and how busy they are. Live.'),
    cards,
    h('div', { class: 'grid2' }, hardware.el, usage.el),
    h('h2', {}, 'Supply by GPU model and region'),
    supply.el,
    h('div', { class: 'grid2' }, h('section', {}, h('h2', {}, 'Live price per GPU-hour'), prices), h('section', {}, h('h2', {}, 'Verification'), verification)),
    h('h2', {}, 'Posted prices'),
    marketNote,
    h('div', { class: 'grid2' }, market.el, marketChart),
    h('h2', {}, 'Reservations (clusters) and their health'),
    reservations.el,
  );

  function render(e) {
    if (!e) return;
    const u = e.utilisation;
    const verified = e.supply.reduce((a, s) => a + s.verified, 0);
    cards.replaceChildren(
      card('nodes alive', e.nodes.alive, `${e.nodes.dead} dead`),
      card('GPUs', u.gpus, `${fmt.num(u.gpus_busy)} busy`),
      card('verified GPUs', u.gpus ? pct(verified / u.gpus) : '-', `${verified} of ${u.gpus}`),
      card('CPUs busy', `${fmt.num(u.cpus_busy)} / ${fmt.num(u.cpus, 0)}`, ''),
      card('leases waiting', u.pending_leases, ''),
      card('reservations', e.reservations.length, `${e.reservations.filter((r) => r.health !== 'healthy').length} not healthy`),
    );
    supply.setRows(e.supply.map((s) => ({ ...s, __key: s.model + '/' + s.region })));
    const top = Math.max(0.01, ...e.prices.map((p) => p.max));
    prices.replaceChildren(
      ...(e.prices.length ? e.prices : []).map((p) =>
        h(
          'div',
          { class: 'price-row' },
          h('span', { class: 'label' }, p.model),
          h(
            'span',
            { class: 'range', title: `min ${fmt.money(p.min)}, median ${fmt.money(p.median)}, max ${fmt.money(p.max)} over ${p.gpus} GPUs` },
            h('span', { class: 'span', style: `left:${(100 * p.min) / top}%;width:${(100 * (p.max - p.min)) / top}%` }),
            h('span', { class: 'median', style: `left:${(100 * p.median) / top}%` }),
          ),
          h('span', { class: 'value' }, fmt.money(p.median)),
        ),
      ),
      e.prices.length ? '' : h('p', { class: 'muted' }, 'no GPUs on offer'),
    );
    verification.replaceChildren(...Object.entries(e.verification).map(([k, v]) => card(k, v, 'nodes')));
    reservations.setRows(e.reservations.map((r) => ({ ...r, __key: r.id })));
  }
  render(live.explorer);
  const off = live.on((kind, data) => kind === 'explorer' && render(data));
  hardware.load();
  usage.load();
  loadMarket();
  const timer = setInterval(() => {
    hardware.load();
    usage.load();
    loadMarket();
  }, 15000);
  return () => {
    off();
    clearInterval(timer);
    hardware.destroy();
    usage.destroy();
    if (priceChart) priceChart.destroy();
  };
}

export function card(label, value, sub) {
  return h('div', { class: 'card' }, h('div', { class: 'value' }, String(value)), h('div', { class: 'label' }, label), sub ? h('div', { class: 'sub' }, sub) : '');
}

function pct(x) {
  return Number.isFinite(x) ? Math.round(100 * x) + '%' : '-';
}

function bar(busy, total) {
  const p = total ? (100 * busy) / total : 0;
  return h('span', { class: 'bar', title: `${busy.toFixed(2)} busy of ${total}` }, h('span', { style: `width:${p}%` }), h('em', {}, `${busy.toFixed(1)} / ${total}`));
}
