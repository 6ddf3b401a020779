// Time series from the head's history (/api/v1/history), drawn with uPlot: cheap to redraw, so charts follow
// live data. One chart holds several series aligned on their timestamps.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { get, h } from './api.js';

const palette = ['#2b6cb0', '#d97706', '#059669', '#b91c1c', '#7c3aed', '#0e7490'];

export const ranges = { '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 86400e3, '90d': 90 * 86400e3 };

// series: [{name: 'gpu/n1/0/power_w', label: 'power (W)', dash?: true}]
export function timeChart({ title, series, unit = '', height = 180, range = '1h' }) {
  const holder = h('div', { class: 'chart-plot' });
  const note = h('span', { class: 'muted' });
  const select = h(
    'select',
    { onchange: () => load() },
    Object.keys(ranges).map((r) => h('option', { value: r, selected: r === range }, r)),
  );
  const el = h('figure', { class: 'chart' }, h('figcaption', {}, title, ' ', select, ' ', note), holder);
  let plot = null;

  function draw(data) {
    const width = Math.max(280, (el.clientWidth || 600) - 16);
    if (plot) plot.destroy();
    plot = new uPlot(
      {
        width,
        height,
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            stroke: palette[i % palette.length],
            width: 1.5,
            dash: s.dash ? [6, 4] : undefined,
            value: (u, v) => (v === null || v === undefined ? '-' : v.toFixed(1) + (unit ? ' ' + unit : '')),
          })),
        ],
        axes: [{}, { size: 56 }],
        scales: { x: { time: true } },
        legend: { live: true },
      },
      data,
      holder,
    );
  }

  async function load() {
    const span = ranges[select.value];
    const to = Date.now();
    try {
      const answers = await Promise.all(
        series.map((s) => get(`/api/v1/history?series=${encodeURIComponent(s.name)}&from=${to - span}&to=${to}&points=600`)),
      );
      // Align on the union of timestamps (seconds for uPlot); a series without a point there gets a gap.
      const ts = [...new Set(answers.flatMap((a) => a.points.map((p) => p[0])))].sort((a, b) => a - b);
      const index = new Map(ts.map((t, i) => [t, i]));
      const ys = answers.map((a) => {
        const col = new Array(ts.length).fill(null);
        for (const p of a.points) col[index.get(p[0])] = p[1];
        return col;
      });
      note.textContent = ts.length ? `${answers[0].resolution} · ${ts.length} points` : 'no points in this range yet';
      draw([ts.map((t) => t / 1000), ...ys]);
    } catch (e) {
      note.textContent = e.message;
    }
  }
  return { el, load, destroy: () => plot && plot.destroy() };
}
