// web/js/app.js — the dashboard shell: starts the router, marks the active
// nav link, shows the daemon's version and queue in the header.
import { startRouter } from './router.js';
import { get } from './api.js';
import { h, fill } from './dom.js';
import { errorBox, pageHead } from './ui.js';

const main = document.getElementById('main');
const healthEl = document.getElementById('health');

async function showHealth() {
  try {
    const hh = await get('/health');
    fill(healthEl, `saed ${hh.version} · ${hh.jobs.running} running · ${hh.jobs.queued} queued`);
  } catch (e) {
    fill(healthEl, `daemon unreachable: ${e.message}`);
  }
}

const HEALTH_EVERY_MS = 5000;
setInterval(() => { if (!document.hidden) showHealth(); }, HEALTH_EVERY_MS);

startRouter(main, {
  onRoute(route) {
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.nav === route?.nav);
    showHealth();
  },
  renderError(root, e) {
    root.replaceChildren(pageHead('Something went wrong'), errorBox(e));
  },
  renderNotFound(root, hash) {
    root.replaceChildren(pageHead('Not found'),
      h('p', {}, `No page at ${hash}. `, h('a', { href: '#/jobs' }, 'Back to the jobs.')));
  },
});
