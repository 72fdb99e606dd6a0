// The query page: PromQL → /api/v1/query_range (graph) or /api/v1/query
// (table), with warnings, the server's stats and errors with their position.
'use strict';

(function () {
  const h = T.h;
  const RANGES = { '5m': 300, '15m': 900, '1h': 3600, '3h': 10800, '6h': 21600, '12h': 43200, '1d': 86400, '2d': 172800, '7d': 604800 };
  // Series drawn at most: a chart of thousands of lines helps nobody and
  // costs the browser; the count is still shown.
  const MAX_DRAWN = 100;

  // Where in the expression an error points: "1:5:" (line:column) or
  // "position N" when the message says; else (promql-parser 0.11 drops its
  // error spans) the token the message names, an unclosed parenthesis or
  // an unterminated string, found in the expression itself.
  function errorPosition(msg, expr) {
    let m = /(?:^|\s)(\d+):(\d+):/.exec(msg);
    if (m) return { line: +m[1], col: +m[2] };
    m = /(?:position|char(?:acter)?|offset)\s+(\d+)/i.exec(msg);
    let at = m ? +m[1] : -1;
    if (at < 0 && /unclosed left parenthesis/.test(msg)) {
      const open = [];
      for (let i = 0; i < expr.length; i++) {
        if (expr[i] === '(') open.push(i);
        else if (expr[i] === ')') open.pop();
      }
      at = open.length ? open[open.length - 1] : -1;
    }
    if (at < 0 && /unterminated quoted string/.test(msg)) {
      const q = /unterminated quoted string (.)/.exec(msg);
      at = q ? expr.lastIndexOf(q[1]) : -1;
    }
    if (at < 0) {
      m = /'([^']+)'\s*$/.exec(msg) || /syntax: (\S+)\s*$/.exec(msg) || /got (\S+)\s*$/.exec(msg);
      if (m) at = expr.indexOf(m[1]);
    }
    if (at < 0) return null;
    const before = expr.slice(0, at).split('\n');
    return { line: before.length, col: before[before.length - 1].length + 1 };
  }

  function showError(err, expr) {
    const box = T.error(err);
    box.dataset.testid = 'query-error';
    const pos = errorPosition(err.message || '', expr);
    if (pos) {
      const line = expr.split('\n')[pos.line - 1];
      if (line !== undefined) {
        const col = Math.min(Math.max(pos.col, 1), line.length + 1);
        box.append(h('pre', { 'aria-label': `error at line ${pos.line}, column ${col}` },
          `${line}\n${' '.repeat(col - 1)}^ line ${pos.line}, column ${col}`));
      }
    }
    return box;
  }

  function statsLine(body, series, points, ms) {
    const s = (body.data && body.data.stats) || {};
    const parts = [`${T.fmt(series)} series`];
    if (points !== null) parts.push(`${T.fmt(points)} points`);
    if (s.samples) parts.push(`peak samples held: ${T.fmt(s.samples.peakSamples)}`);
    if (s.timings) parts.push(`server: ${(s.timings.evalTotalTime * 1000).toFixed(1)} ms`);
    parts.push(`round trip: ${ms.toFixed(0)} ms`);
    return h('p', { class: 'stats', 'data-testid': 'query-stats' }, parts.join(' · '));
  }

  function chart(el, result, start, end) {
    const drawn = result.slice(0, MAX_DRAWN);
    const times = new Set();
    for (const s of drawn) for (const [t] of s.values) times.add(t);
    const xs = [...times].sort((a, b) => a - b);
    const index = new Map(xs.map((t, i) => [t, i]));
    const data = [xs];
    for (const s of drawn) {
      const ys = new Array(xs.length).fill(null);
      for (const [t, v] of s.values) ys[index.get(t)] = parseFloat(v);
      data.push(ys);
    }
    const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
    const opts = {
      width: Math.max(400, el.clientWidth || 900),
      height: 320,
      scales: { x: { time: true, min: start, max: end } },
      legend: { show: drawn.length <= 12 },
      series: [{}].concat(drawn.map((s, i) => ({
        label: T.labels(s.metric), stroke: palette[i % palette.length], width: 1.25, spanGaps: false,
      }))),
    };
    el.replaceChildren();
    // eslint-disable-next-line no-undef
    return new uPlot(opts, data, el);
  }

  T.pages.query = async function (root, params) {
    const expr = params.get('expr') || '';
    const range = RANGES[params.get('range')] ? params.get('range') : '1h';
    const mode = params.get('mode') === 'table' ? 'table' : 'graph';
    const endParam = params.get('end') || '';

    const text = h('textarea', { rows: 3, name: 'expr', 'aria-label': 'PromQL expression',
      placeholder: 'PromQL, e.g. sum by (Hostname) (DCGM_FI_DEV_GPU_UTIL)' });
    text.value = expr;
    const rangeSel = h('select', { name: 'range', 'aria-label': 'time range' },
      Object.keys(RANGES).map((r) => h('option', { value: r, selected: r === range }, r)));
    const endIn = h('input', { type: 'text', name: 'end', value: endParam, 'aria-label': 'end time',
      placeholder: 'end: now, or RFC 3339 / unix seconds' });
    const run = (m) => T.go('query', { expr: text.value.trim(), range: rangeSel.value, end: endIn.value.trim(), mode: m || mode });
    text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); run(); }
    });
    root.append(h('h1', {}, 'Query'),
      h('form', { class: 'panel', onsubmit: (e) => { e.preventDefault(); run(); } },
        text,
        h('div', { class: 'bar', style: 'margin:8px 0 0' },
          h('button', { type: 'submit', 'data-testid': 'run-query' }, 'Execute'),
          h('button', { type: 'button', class: 'secondary', 'aria-pressed': String(mode === 'graph'), onclick: () => run('graph') }, 'Graph'),
          h('button', { type: 'button', class: 'secondary', 'aria-pressed': String(mode === 'table'), onclick: () => run('table') }, 'Table'),
          rangeSel, endIn)));
    if (!expr) {
      root.append(h('p', { class: 'muted' }, 'Enter a PromQL expression and press Enter.'));
      return;
    }

    let end = Date.now() / 1000;
    if (endParam) {
      end = /^\d+(\.\d+)?$/.test(endParam) ? parseFloat(endParam) : Date.parse(endParam) / 1000;
      if (!Number.isFinite(end)) {
        root.append(T.error(new Error(`end: cannot parse ${JSON.stringify(endParam)}`)));
        return;
      }
    }
    const out = h('section', { class: 'panel', 'data-testid': 'query-result' });
    root.append(out);
    const t0 = performance.now();
    let body;
    try {
      if (mode === 'graph') {
        const start = end - RANGES[range];
        const step = Math.max(1, Math.ceil(RANGES[range] / 250));
        body = await T.api('/api/v1/query_range', { query: expr, start, end, step, stats: 'all' });
      } else {
        body = await T.api('/api/v1/query', { query: expr, time: end, stats: 'all' });
      }
    } catch (e) {
      out.append(showError(e, expr));
      return;
    }
    const ms = performance.now() - t0;
    out.append(T.warnings(body.warnings), T.warnings(body.infos, 'info'));
    const { resultType, result } = body.data;

    if (mode === 'graph') {
      if (resultType !== 'matrix') {
        out.append(T.error(new Error(`a graph needs a range vector answer, got ${resultType}; use Table`)));
        return;
      }
      const points = result.reduce((n, s) => n + s.values.length, 0);
      out.append(statsLine(body, result.length, points, ms));
      if (result.length > MAX_DRAWN) {
        out.append(T.warnings([`${result.length} series: the chart draws the first ${MAX_DRAWN}; narrow the query or aggregate`]));
      }
      const el = h('div', { id: 'chart', 'data-series-count': result.length,
        'data-drawn': Math.min(result.length, MAX_DRAWN), role: 'img',
        'aria-label': `line chart of ${result.length} series` });
      out.append(el);
      chart(el, result, end - RANGES[range], end);
      return;
    }

    let rows;
    if (resultType === 'vector') rows = result.map((s) => ({ m: s.metric, v: s.value[1] }));
    else if (resultType === 'matrix') rows = result.map((s) => ({ m: s.metric, v: s.values.map((p) => `${p[1]} @${p[0]}`).join('\n') }));
    else rows = [{ m: null, v: result[1] }];
    out.append(statsLine(body, rows.length, null, ms));
    out.append(T.table({ id: 'result-table', rows, pageSize: 25, empty: 'no data', columns: [
      { title: 'series', value: (r) => (r.m ? h('code', {}, T.labels(r.m)) : resultType) },
      { title: 'value', num: true, value: (r) => h('span', { class: 'mono', style: 'white-space:pre' }, r.v) },
    ] }));
  };

  T.errorPosition = errorPosition;
})();
