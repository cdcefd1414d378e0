// web/js/router.js — the hash router: "#/jobs/3" → pages/job.js with {id: "3"}.
//
// Each route names a page module, loaded on first use. A page module exports
//   mount(root, ctx)   ctx = {params, query, signal, onCleanup(fn), navigate(hash)}
// and may be async. When the route changes, the signal aborts (so the page's
// pending requests stop) and every onCleanup function runs (close streams,
// timers, charts). A new page is one line in ROUTES and one file in pages/.

export const ROUTES = [
  { path: '/jobs', nav: 'jobs', load: () => import('./pages/jobs.js') },
  { path: '/jobs/new', nav: 'new', load: () => import('./pages/newjob.js') },
  { path: '/jobs/:id', nav: 'jobs', load: () => import('./pages/job.js') },
  { path: '/saes', nav: 'saes', load: () => import('./pages/saes.js') },
  { path: '/saes/:id', nav: 'saes', load: () => import('./pages/sae.js') },
  { path: '/saes/:id/groups', nav: 'saes', load: () => import('./pages/groups.js') },
  { path: '/saes/:id/groups/:g', nav: 'saes', index: ['g'], load: () => import('./pages/group.js') },
  { path: '/saes/:id/jaccard', nav: 'saes', load: () => import('./pages/jaccard.js') },
  { path: '/saes/:id/pca', nav: 'saes', load: () => import('./pages/pca.js') },
  { path: '/analyses/:id', nav: 'saes', load: () => import('./pages/analysis.js') },
  { path: '/datasets', nav: 'datasets', load: () => import('./pages/datasets.js') },
];
export const DEFAULT_HASH = '#/jobs';

/* {route, params, query} for a hash, or null. ":name" segments match positive integers (ids), or
   non-negative ones when the route lists the name in `index` (group and latent indices start at 0). */
export function match(hash) {
  const [pathPart, queryPart = ''] = hash.replace(/^#/, '').split('?');
  const segs = pathPart.split('/').filter(Boolean);
  for (const route of ROUTES) {
    const want = route.path.split('/').filter(Boolean);
    if (want.length !== segs.length) continue;
    const params = {};
    const ok = want.every((w, i) => {
      if (!w.startsWith(':')) return w === segs[i];
      const pattern = route.index?.includes(w.slice(1)) ? /^(0|[1-9][0-9]*)$/ : /^[1-9][0-9]*$/;
      if (!pattern.test(segs[i])) return false;
      params[w.slice(1)] = segs[i];
      return true;
    });
    if (ok) return { route, params, query: Object.fromEntries(new URLSearchParams(queryPart)) };
  }
  return null;
}

/* Starts routing into root; onRoute(route|null) lets the shell mark the active nav link. */
export function startRouter(root, { onRoute, renderError, renderNotFound }) {
  let current = null; /* {controller, cleanups} of the mounted page */
  let seq = 0;

  function unmount() {
    if (!current) return;
    current.controller.abort();
    for (const fn of current.cleanups.splice(0)) {
      try { fn(); } catch (e) { console.error('page cleanup failed:', e); }
    }
    current = null;
  }

  async function render() {
    if (!location.hash || location.hash === '#' || location.hash === '#/') {
      location.replace(DEFAULT_HASH);
      return;
    }
    const mySeq = ++seq;
    unmount();
    const m = match(location.hash);
    onRoute(m?.route ?? null);
    if (!m) { renderNotFound(root, location.hash); return; }
    const controller = new AbortController();
    const cleanups = [];
    current = { controller, cleanups };
    const ctx = {
      params: m.params, query: m.query, signal: controller.signal,
      onCleanup: (fn) => cleanups.push(fn),
      navigate: (hash) => { location.hash = hash; },
    };
    try {
      const mod = await m.route.load();
      if (mySeq !== seq) return;
      root.replaceChildren();
      await mod.mount(root, ctx);
    } catch (e) {
      if (mySeq !== seq || controller.signal.aborted) return;
      renderError(root, e);
    }
  }

  window.addEventListener('hashchange', render);
  render();
}
