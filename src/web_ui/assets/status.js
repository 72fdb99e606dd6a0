// Status: build, runtime, flags, and from /metrics the WAL and its replay,
// the head, blocks and compaction, and the limits hit since start.
'use strict';

(function () {
  const h = T.h;
  const kv = (obj, id) => h('table', { class: 'kv', id }, h('tbody', {},
    Object.entries(obj).map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, String(v))))));

  // The text format, as name{labels} value lines of the families we show.
  const SECTIONS = [
    ['WAL and replay', /^tessera_(wal_|ready)/],
    ['Head', /^tessera_head_/],
    ['Blocks, cuts and compaction', /^tessera_(blocks|compaction|retention)/],
    ['Limits hit and refusals', /^tessera_(query_limit_hits|query_cancellations|ingest_requests_refused|ingest_samples_rejected|ingest_series_rejected|http_refused|remote_read_requests_refused|notifications_dropped)/],
    ['Process', /^(process_|tessera_cpu_budget)/],
  ];

  async function metrics() {
    const r = await fetch('/metrics', { credentials: 'same-origin' });
    if (!r.ok) throw new T.ApiError(r.status, 'internal', `/metrics: HTTP ${r.status}`);
    const out = [];
    for (const line of (await r.text()).split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const i = line.lastIndexOf(' ');
      out.push({ series: line.slice(0, i), value: line.slice(i + 1) });
    }
    return out;
  }

  T.pages.status = async function (root) {
    root.append(h('h1', {}, 'Status'));
    const [build, runtime, flags, tsdb, m] = await Promise.all([
      T.api('/api/v1/status/buildinfo'), T.api('/api/v1/status/runtimeinfo'),
      T.api('/api/v1/status/flags'), T.api('/api/v1/status/tsdb', { topN: 1 }), metrics(),
    ]);
    const hs = tsdb.data.headStats;
    root.append(h('div', { class: 'grid' },
      h('section', { class: 'panel' }, h('h2', {}, 'Build'), kv(build.data, 'build')),
      h('section', { class: 'panel' }, h('h2', {}, 'Runtime'), kv(runtime.data, 'runtime')),
      h('section', { class: 'panel' }, h('h2', {}, 'Head'), kv({
        series: T.fmt(hs.numSeries), chunks: T.fmt(hs.chunkCount), 'label pairs': T.fmt(hs.numLabelPairs),
        'oldest sample': T.time(hs.minTime), 'newest sample': T.time(hs.maxTime),
        'series created since last cut': T.fmt(tsdb.data.churn.seriesCreatedSinceCut),
        'series removed by last cut': T.fmt(tsdb.data.churn.seriesRemovedByLastCut),
      }, 'head'))));
    const grid = h('div', { class: 'grid', style: 'margin-top:16px' });
    for (const [title, re] of SECTIONS) {
      const rows = m.filter((x) => re.test(x.series));
      grid.append(h('section', { class: 'panel' }, h('h2', {}, title), T.table({
        rows, pageSize: 15, empty: 'none yet', columns: [
          { title: 'metric', value: (x) => h('code', {}, x.series) },
          { title: 'value', num: true, value: (x) => x.value },
        ] })));
    }
    root.append(grid);

    const filter = h('input', { type: 'text', placeholder: 'filter flags', 'aria-label': 'filter flags' });
    const all = Object.entries(flags.data).map(([k, v]) => ({ k, v }));
    const holder = h('div');
    const draw = () => holder.replaceChildren(T.table({ id: 'flags', pageSize: 25,
      rows: all.filter((f) => f.k.includes(filter.value.trim())), columns: [
        { title: 'flag', value: (f) => h('code', {}, f.k) },
        { title: 'value', value: (f) => h('code', {}, f.v) },
      ] }));
    filter.addEventListener('input', draw);
    draw();
    root.append(h('section', { class: 'panel', style: 'margin-top:16px' },
      h('h2', {}, 'Flags'), h('form', { class: 'bar', onsubmit: (e) => e.preventDefault() }, filter), holder));
  };
})();
