// The cardinality explorer: which metric, label or value holds the series.
// One call of /api/v1/status/tsdb per view (topN, match[], focusLabel), so
// every table is top-N and every figure bounded by the server's limits.
// Drilling narrows match[]: metric → its labels → a label's values → a value.
'use strict';

(function () {
  const h = T.h;

  // Adds name="value" to a series selector (text), keeping what it has.
  function addMatcher(sel, name, value) {
    sel = (sel || '').trim();
    const plainName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
    // metric{...} when the selector has no name yet (PromQL refuses a
    // name both before and inside the braces).
    if (name === '__name__' && plainName.test(value) && !sel.includes('__name__')) {
      if (!sel) return value;
      if (sel.startsWith('{')) return value + sel;
    }
    const m = `${name}=${JSON.stringify(value)}`;
    if (!sel) return `{${m}}`;
    if (sel.endsWith('{}')) return `${sel.slice(0, -1)}${m}}`;
    if (sel.endsWith('}')) return `${sel.slice(0, -1)},${m}}`;
    return `${sel}{${m}}`;
  }

  T.pages.explorer = async function (root, params) {
    const match = params.get('match') || '';
    const focus = params.get('focus') || '';
    const topN = params.get('topN') || '10';
    const state = (p) => Object.assign({ match, focus, topN }, p);
    const go = (p) => T.go('explorer', state(p));
    root.dataset.match = match;
    root.dataset.focus = focus;

    const input = h('input', { type: 'text', class: 'wide', name: 'match', value: match,
      placeholder: 'match[] series selector, e.g. DCGM_FI_DEV_GPU_UTIL{Hostname=~"gpu-1.*"}',
      'aria-label': 'match[] series selector' });
    const top = h('select', { name: 'topN', 'aria-label': 'entries per list' },
      ['10', '20', '50', '100', '500'].map((n) => h('option', { value: n, selected: n === topN }, `top ${n}`)));
    root.append(
      h('h1', {}, 'Cardinality'),
      h('form', { class: 'bar', onsubmit: (e) => {
        e.preventDefault();
        go({ match: input.value.trim(), topN: top.value, focus: '' });
      } }, input, top, h('button', { type: 'submit' }, 'Apply')));

    const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Drill-down' },
      h('a', { href: '#/explorer', 'data-testid': 'crumb-all' }, 'All series'));
    if (match) crumbs.append(' › ', h('code', { 'data-testid': 'crumb-match' }, match));
    if (focus) crumbs.append(' › values of ', h('code', {}, focus));
    root.append(crumbs);

    const loading = h('p', { class: 'loading' }, 'Loading…');
    root.append(loading);
    const body = await T.api('/api/v1/status/tsdb', { topN, 'match[]': match, focusLabel: focus });
    loading.remove();
    const d = body.data;
    const churn = d.churn || {};
    const head = d.headStats || {};
    root.append(T.warnings(body.warnings));
    root.append(h('div', { class: 'cards' },
      T.card(match ? 'series matching' : 'series in the head', T.fmt(d.totalSeries), 'total-series'),
      T.card('label=value pairs', T.fmt(d.totalLabelValuePairs), 'total-pairs'),
      T.card('created since last cut', T.fmt(churn.seriesCreatedSinceCut), 'churn-created'),
      T.card('removed by last cut', T.fmt(churn.seriesRemovedByLastCut), 'churn-removed'),
      T.card('churned (started/stopped inside the head)', T.fmt(churn.churnedSeries), 'churn-churned'),
      T.card('head time range', `${T.time(head.minTime)} – ${T.time(head.maxTime)}`)));

    const total = d.totalSeries || 0;
    const share = (v) => (total ? `${(100 * v / total).toFixed(1)}%` : '');
    const byName = Object.fromEntries((d.seriesCountByLabelName || []).map((e) => [e.name, e.value]));
    const link = (text, p, testid) => h('a', { href: T.href('explorer', state(p)), 'data-testid': testid }, text);
    const panel = (title, note, tableEl) => h('section', { class: 'panel' },
      h('h2', {}, title), note ? h('p', { class: 'muted' }, note) : null, tableEl);
    const max = (list) => Math.max(0, ...list.map((e) => e.value));

    if (focus) {
      const values = d.seriesCountByFocusLabelValue || [];
      root.append(panel(`Values of ${focus}`, `series per value, top ${topN}`, T.table({
        id: 'focus-values', rows: values, columns: [
          { title: 'value', value: (e) => link(h('code', {}, e.name),
            { match: addMatcher(match, focus, e.name), focus: '' }, 'value-link') },
          { title: 'series', num: true, value: (e) => T.bar(e.value, max(values)) },
          { title: 'share', num: true, value: (e) => share(e.value) },
        ] })));
    }

    const labels = d.labelValueCountByLabelName || [];
    const labelTable = T.table({ id: 'label-names', rows: labels, columns: [
      { title: 'label', value: (e) => link(h('code', {}, e.name), { focus: e.name }, 'label-link') },
      { title: 'distinct values', num: true, value: (e) => T.bar(e.value, max(labels)) },
      // Series per label name is its own top N: a label outside it shows —.
      { title: 'series with it', num: true, value: (e) => (e.name in byName ? T.fmt(byName[e.name]) : '—') },
    ] });
    const metrics = d.seriesCountByMetricName || [];
    const metricTable = T.table({ id: 'metric-names', rows: metrics, columns: [
      { title: 'metric', value: (e) => link(h('code', {}, e.name),
        { match: addMatcher(match, '__name__', e.name), focus: '' }, 'metric-link') },
      { title: 'series', num: true, value: (e) => T.bar(e.value, max(metrics)) },
      { title: 'share', num: true, value: (e) => share(e.value) },
    ] });
    const pairs = d.seriesCountByLabelValuePair || [];
    const pairLink = (e) => {
      const i = e.name.indexOf('=');
      return link(h('code', {}, e.name),
        { match: addMatcher(match, e.name.slice(0, i), e.name.slice(i + 1)), focus: '' }, 'pair-link');
    };
    const pairTable = T.table({ id: 'pairs', rows: pairs, columns: [
      { title: 'label=value', value: pairLink },
      { title: 'series', num: true, value: (e) => T.bar(e.value, max(pairs)) },
    ] });
    const churnPairs = churn.churnByLabelValuePair || [];
    const churnTable = T.table({ id: 'churn-pairs', rows: churnPairs, empty: 'no churn in the head', columns: [
      { title: 'label=value', value: pairLink },
      { title: 'churned series', num: true, value: (e) => T.bar(e.value, max(churnPairs)) },
    ] });

    const grid = h('div', { class: 'grid' });
    if (match) {
      grid.append(panel('Labels of these series', 'click a label for its values', labelTable),
        panel('Metrics', null, metricTable));
    } else {
      grid.append(panel('Metrics by series', 'click a metric for its labels', metricTable),
        panel('Label names by distinct values', 'click a label for its values', labelTable));
    }
    grid.append(panel('Label=value pairs by series', null, pairTable),
      panel('Churn: pairs of series that started or stopped inside the head',
        `a series counts when it starts or stops more than ${Math.round((churn.churnSlackMs || 0) / 60000)} min inside the head's range`,
        churnTable));
    root.append(grid);
  };

  T.addMatcher = addMatcher;
})();
