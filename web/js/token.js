// web/js/token.js — the access token, for a daemon started with --token-file.
//
// The token is kept in sessionStorage: for this tab only, gone when the tab
// is closed. api.js asks for one with askToken() when the daemon answers 401;
// callers that get their 401s at the same moment share one dialog. The
// dialog has the daemon check a token (the check function api.js passes)
// before keeping it, so a wrong one is asked for again on the spot. Cancel
// (or Escape) stops the asking: requests then fail with the daemon's 401
// until the page is reloaded ("enter token" in the header does that).
// onTokenChange(fn) tells the header whether a token is 'kept', was
// 'declined', or neither ('none').
import { h, fill } from './dom.js';

const KEY = 'saed.token';
let pending = null;     /* the open dialog's promise, shared by concurrent 401s */
let declined = false;
const listeners = new Set();

export function token() {
  try { return sessionStorage.getItem(KEY); } catch { return null; }
}

function store(t) {
  try { if (t) sessionStorage.setItem(KEY, t); else sessionStorage.removeItem(KEY); } catch { /* storage off: ask each time */ }
  notify();
}

export const forgetToken = () => store(null);

const state = () => (token() ? 'kept' : declined ? 'declined' : 'none');
function notify() { for (const fn of listeners) fn(state()); }

export function onTokenChange(fn) {
  listeners.add(fn);
  fn(state());
}

/* url with ?access_token= when a token is kept: for what cannot send headers (EventSource, links). */
export function withToken(url) {
  const t = token();
  return t ? `${url}${url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(t)}` : url;
}

/* Resolves with a token the daemon accepts (now kept), or null when the user declines.
   check(token) → Promise<boolean>; `rejected` says the kept token was just refused. */
export function askToken(check, rejected = false) {
  if (declined) return Promise.resolve(null);
  if (!pending) pending = dialog(check, rejected).finally(() => { pending = null; });
  return pending;
}

function dialog(check, rejected) {
  return new Promise((resolve) => {
    const input = h('input', { type: 'password', id: 'token-input', name: 'token', autocomplete: 'off', spellcheck: 'false' });
    const msg = h('p', { class: 'err', id: 'token-error', role: 'status' },
      rejected ? 'The token kept for this tab was not accepted; enter another.' : '');
    const ok = h('button', { type: 'submit', class: 'primary', id: 'token-ok' }, 'Use token');
    const cancel = h('button', { type: 'button', id: 'token-cancel' }, 'Cancel');
    const form = h('form', {},
      h('h2', {}, 'Access token'),
      h('p', {}, 'This saed needs an access token: one of the lines of the file given to the daemon as ',
        h('code', {}, '--token-file'), ' (a ', h('code', {}, 'read:'), ' token can look but not create, cancel or delete).'),
      h('p', { class: 'muted' }, 'The dashboard keeps it only for this tab, and forgets it when the tab is closed.'),
      h('label', { for: 'token-input' }, 'Token'), input, msg,
      h('div', { class: 'form-actions' }, ok, cancel));
    const dlg = h('dialog', { id: 'token-dialog', class: 'token-dialog' }, form);

    const done = (t) => { dlg.close(); dlg.remove(); resolve(t); };
    const decline = () => { declined = true; notify(); done(null); };
    cancel.addEventListener('click', decline);
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); decline(); });   /* Escape */
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const t = input.value.trim().replace(/^(read|write):/, '');
      if (!t) return;
      ok.disabled = true;
      fill(msg, 'Checking…');
      const good = await check(t);
      ok.disabled = false;
      if (!good) { fill(msg, 'The daemon did not accept this token.'); input.select(); return; }
      store(t);
      done(t);
    });
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
}
