// A table that stays fast at 10,000 rows: filtered and sorted in memory, only one page drawn at a time.
// columns: [{key, label, value(row) -> sortable value, cell(row) -> string|Node, title}]
// With fetchPage({offset, limit, query}) -> Promise<{rows, total}> the rows live on the server instead: the
// table asks for the page it shows (filter and paging there; sorting within the page) and refresh() asks again.
import { h } from './api.js';

export function table({ columns, pageSize = 50, filter = true, placeholder = 'filter', empty = 'nothing here yet', id, fetchPage }) {
  let rows = [];
  let total = 0; // remote: rows matching the filter on the server
  let asked = 0; // remote: the latest request (an older answer arriving late is dropped)
  let page = 0;
  let sortKey = null;
  let sortDir = 1;
  let query = '';
  const body = h('tbody');
  const info = h('span', { class: 'muted' });
  const prev = h('button', { onclick: () => go(page - 1) }, '‹ prev');
  const next = h('button', { onclick: () => go(page + 1) }, 'next ›');
  const search = filter
    ? h('input', {
        type: 'search',
        placeholder,
        oninput: (e) => {
          query = e.target.value.toLowerCase();
          page = 0;
          fetchPage ? load() : draw();
        },
      })
    : null;
  const head = h(
    'tr',
    {},
    columns.map((c) =>
      h(
        'th',
        {
          title: c.title || 'sort',
          onclick: () => {
            sortDir = sortKey === c.key ? -sortDir : 1;
            sortKey = c.key;
            draw();
          },
        },
        c.label,
      ),
    ),
  );
  const el = h('div', { class: 'table', id }, h('div', { class: 'tools' }, search, info, prev, next), h('table', {}, h('thead', {}, head), body));

  const valueOf = (c, r) => (c.value ? c.value(r) : r[c.key]);
  function view() {
    let v = rows;
    if (query && !fetchPage)
      v = v.filter((r) =>
        columns.some((c) => {
          const x = valueOf(c, r);
          return x !== undefined && x !== null && String(x).toLowerCase().includes(query);
        }),
      );
    if (sortKey) {
      const c = columns.find((x) => x.key === sortKey);
      v = [...v].sort((a, b) => {
        const x = valueOf(c, a), y = valueOf(c, b);
        return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
      });
    }
    return v;
  }
  function go(p) {
    page = p;
    fetchPage ? load() : draw();
  }
  async function load() {
    const n = ++asked;
    try {
      const r = await fetchPage({ offset: Math.max(0, page) * pageSize, limit: pageSize, query });
      if (n !== asked) return;
      rows = r.rows;
      total = r.total;
      if (page > 0 && page * pageSize >= total) {
        page = Math.max(0, Math.ceil(total / pageSize) - 1);
        return load();
      }
      draw();
    } catch (e) {
      if (n === asked) info.textContent = 'cannot load: ' + e.message;
    }
  }
  function draw() {
    const v = view();
    if (fetchPage) {
      const pages = Math.max(1, Math.ceil(total / pageSize));
      body.replaceChildren(
        ...(v.length
          ? v.map((r) => h('tr', { 'data-key': r.__key ?? '' }, columns.map((c) => h('td', { class: c.class }, c.cell ? c.cell(r) : valueOf(c, r) ?? '-'))))
          : [h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, empty))]),
      );
      info.textContent = `${total} rows` + (pages > 1 ? ` · page ${page + 1}/${pages}` : '');
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
      return;
    }
    const pages = Math.max(1, Math.ceil(v.length / pageSize));
    page = Math.min(Math.max(0, page), pages - 1);
    const slice = v.slice(page * pageSize, (page + 1) * pageSize);
    body.replaceChildren(
      ...(slice.length
        ? slice.map((r) => h('tr', { 'data-key': r.__key ?? '' }, columns.map((c) => h('td', { class: c.class }, c.cell ? c.cell(r) : valueOf(c, r) ?? '-'))))
        : [h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, empty))]),
    );
    info.textContent = v.length === rows.length ? `${rows.length} rows` : `${v.length} of ${rows.length} rows`;
    if (pages > 1) info.textContent += ` · page ${page + 1}/${pages}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  fetchPage ? load() : draw();
  return {
    el,
    setRows(r) {
      rows = r;
      draw();
    },
    refresh: () => (fetchPage ? load() : draw()),
  };
}
