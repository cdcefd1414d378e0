// web/js/app.js — the dashboard shell: starts the router, marks the active
// nav link, shows the daemon's version and queue in the header, and, when the
// daemon wanted a token, "forget token" (or "enter token" after a Cancel).
import { startRouter } from './router.js';
import { get } from './api.js';
import { onTokenChange, forgetToken } from './token.js';
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

/* "forget token" / "enter token": both reload the page, so nothing (a stream, a link) keeps the old token. */
function showTokenState(state) {
  const reload = (forget) => () => { if (forget) forgetToken(); location.reload(); };
  fill(document.getElementById('token-state'),
    state === 'kept' ? h('button', { id: 'forget-token', onclick: reload(true),
      title: 'The access token is kept for this tab only; forget it (the next request asks again)' }, 'forget token') : null,
    state === 'declined' ? h('button', { id: 'enter-token', onclick: reload(false) }, 'enter token') : null);
}
onTokenChange(showTokenState);

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
