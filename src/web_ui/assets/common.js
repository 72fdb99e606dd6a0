// Helpers every page shares: elements, API calls, tables with pages,
// messages. Plain ES2020, no build step: these files are embedded as is.
'use strict';

const T = { pages: {} };

// h('a', {href: '#', onclick: f, class: 'x'}, 'text', child, ...)
T.h = function (tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
};

T.ApiError = class extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
};

// GET of a Prometheus API path; resolves to the whole body ({data,
// warnings, infos}), rejects with an ApiError carrying the server's text.
T.api = async function (path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    for (const x of [].concat(v)) {
      if (x !== undefined && x !== null && x !== '') qs.append(k, x);
    }
  }
  const url = path + (qs.toString() ? '?' + qs : '');
  const r = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  let body;
  try {
    body = await r.json();
  } catch (e) {
    throw new T.ApiError(r.status, 'internal', `${path}: HTTP ${r.status}, not JSON`);
  }
  if (body.status !== 'success') {
    throw new T.ApiError(r.status, body.errorType || 'internal', body.error || `HTTP ${r.status}`);
  }
  return body;
};

T.fmt = (n) => (n === undefined || n === null ? '' : Number(n).toLocaleString('en-US'));
T.time = (ms) => (ms ? new Date(ms).toISOString().replace('.000Z', 'Z') : '—');
T.labels = (m) => {
  const name = m.__name__ || '';
  const rest = Object.entries(m).filter(([k]) => k !== '__name__')
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ');
  return rest ? `${name}{${rest}}` : (name || '{}');
};

T.error = (err) => T.h('div', { class: 'msg error', role: 'alert' },
  err.type ? `${err.type}: ` : '', err.message || String(err));

T.warnings = (list, cls) => (list && list.length
  ? T.h('div', { class: `msg ${cls || 'warning'}`, role: 'status', 'data-testid': 'warnings' },
    list.map((w) => T.h('div', {}, w)))
  : document.createTextNode('')); // Node.append would print a null

T.card = (label, value, id) => T.h('div', { class: 'card' },
  T.h('div', { class: 'v', id }, value), T.h('div', { class: 'k' }, label));

// A table shown a page at a time. columns: [{title, value(row) -> node or
// text, num}]; rows: an array (already bounded by the API's top N or
// limit; the pager keeps the DOM small too).
T.table = function ({ columns, rows, pageSize = 20, id, empty = 'nothing to show' }) {
  const wrap = T.h('div', { id, 'data-rows': rows.length });
  const tbody = T.h('tbody');
  const head = T.h('thead', {}, T.h('tr', {}, columns.map((c) =>
    T.h('th', { class: c.num ? 'num' : null, scope: 'col' }, c.title))));
  const pager = T.h('div', { class: 'pager' });
  let page = 0;
  const pages = Math.max(1, Math.ceil(rows.length / pageSize));
  const render = () => {
    tbody.replaceChildren();
    if (!rows.length) {
      tbody.append(T.h('tr', {}, T.h('td', { colspan: columns.length, class: 'muted' }, empty)));
    }
    for (const r of rows.slice(page * pageSize, (page + 1) * pageSize)) {
      tbody.append(T.h('tr', {}, columns.map((c) =>
        T.h('td', { class: c.num ? 'num' : c.cls }, c.value(r)))));
    }
    pager.replaceChildren();
    if (pages > 1) {
      pager.append(
        T.h('button', { class: 'secondary', disabled: page === 0, 'aria-label': 'previous page',
          onclick: () => { page--; render(); } }, '‹'),
        `page ${page + 1} of ${pages} (${rows.length} rows)`,
        T.h('button', { class: 'secondary', disabled: page >= pages - 1, 'aria-label': 'next page',
          onclick: () => { page++; render(); } }, '›'));
    }
  };
  render();
  wrap.append(T.h('table', {}, head, tbody), pager);
  return wrap;
};

// A number with a bar showing its share of `max`.
T.bar = (value, max) => T.h('div', { class: 'bar-cell' },
  T.h('div', { class: 'fill', style: `width:${max ? Math.round(100 * value / max) : 0}%` }),
  T.h('span', {}, T.fmt(value)));

// The hash route: #/page?k=v
T.route = function () {
  const raw = location.hash.replace(/^#\/?/, '');
  const [page, qs] = raw.split('?');
  return { page: page || 'explorer', params: new URLSearchParams(qs || '') };
};

// The link to a page with its parameters (empty ones left out): real
// hrefs, so a view can be bookmarked, opened in a tab or reached by keyboard.
T.href = function (page, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v) qs.set(k, v);
  const s = qs.toString();
  return `#/${page}${s ? '?' + s : ''}`;
};

T.go = function (page, params) {
  location.hash = T.href(page, params);
};
