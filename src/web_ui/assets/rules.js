// Rules and alerts: /api/v1/rules and /api/v1/alerts as tables.
'use strict';

(function () {
  const h = T.h;
  const state = (s) => h('span', { class: `state-${s}` }, s);
  const labelsText = (m) => Object.entries(m || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ');

  T.pages.rules = async function (root) {
    root.append(h('h1', {}, 'Rules and alerts'));
    const [rules, alerts] = await Promise.all([T.api('/api/v1/rules'), T.api('/api/v1/alerts')]);
    const list = alerts.data.alerts || [];
    root.append(h('section', { class: 'panel' },
      h('h2', {}, `Alerts (${list.length})`),
      T.table({ id: 'alerts', rows: list, pageSize: 25, empty: 'no pending or firing alerts', columns: [
        { title: 'alert', value: (a) => (a.labels || {}).alertname },
        { title: 'state', value: (a) => state(a.state) },
        { title: 'labels', value: (a) => h('code', {}, labelsText(a.labels)) },
        { title: 'active since', value: (a) => a.activeAt || '' },
        { title: 'value', num: true, value: (a) => a.value },
      ] })));
    const groups = rules.data.groups || [];
    if (!groups.length) {
      root.append(h('p', { class: 'muted', 'data-testid': 'no-rules' }, 'No rule files loaded (--rules.file).'));
    }
    for (const g of groups) {
      root.append(h('section', { class: 'panel', 'data-group': g.name },
        h('h2', {}, g.name),
        h('p', { class: 'muted' }, `${g.file} · every ${g.interval}s · last evaluation ${g.lastEvaluation || '—'} took ${((g.evaluationTime || 0) * 1000).toFixed(1)} ms`),
        T.table({ id: `group-${g.name}`, rows: g.rules || [], pageSize: 25, columns: [
          { title: 'rule', value: (r) => r.name },
          { title: 'type', value: (r) => r.type },
          { title: 'health', value: (r) => h('span', { class: r.health === 'ok' ? 'health-ok' : 'health-err' }, r.health) },
          { title: 'state', value: (r) => (r.state ? state(r.state) : '') },
          { title: 'expression', value: (r) => h('code', {}, r.query) },
          { title: 'last error', value: (r) => r.lastError || '' },
        ] })));
    }
  };
})();
