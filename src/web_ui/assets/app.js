// The router: renders the page the hash names into <main>.
'use strict';

(function () {
  const main = document.getElementById('main');
  let generation = 0;
  async function show() {
    const { page, params } = T.route();
    const render = T.pages[page] || T.pages.explorer;
    for (const a of document.querySelectorAll('header nav a')) {
      if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const mine = ++generation;
    const root = T.h('div', { 'data-page': page });
    main.replaceChildren(root);
    document.body.dataset.ready = 'loading';
    try {
      await render(root, params);
    } catch (e) {
      if (mine === generation) root.append(T.error(e));
    }
    // Tests (and people) can tell a finished page from one still loading.
    if (mine === generation) document.body.dataset.ready = page;
  }
  window.addEventListener('hashchange', show);
  show();
})();
