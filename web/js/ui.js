// web/js/ui.js — small widgets shared by pages: state badge, progress bar,
// key/value table, stat tile, error box, page heading, data table.
import { h, fill } from './dom.js';
import { pct, duration, DASH } from './fmt.js';
import { isTerminal } from './api.js';

export function stateBadge(state) {
  return h('span', { class: `badge ${state}`, 'data-state': state }, state);
}

/* A progress bar: set(progress, state) with the job's progress object. The
   role=progressbar element carries aria-valuenow (percent) for screen readers and tests. */
export function progressBar({ big = false } = {}) {
  const fillEl = h('div', { class: 'fill' });
  const track = h('div', { class: 'track', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, fillEl);
  const label = h('span', { class: 'pct' });
  const el = h('div', { class: `progress${big ? ' big' : ''}` }, track, label);
  return {
    el,
    set(progress, state) {
      let f = progress?.fraction ?? 0;
      if (state === 'succeeded') f = 1;
      f = Math.min(1, Math.max(0, f));
      fillEl.style.width = `${(f * 100).toFixed(2)}%`;
      track.setAttribute('aria-valuenow', (f * 100).toFixed(1));
      el.className = `progress${big ? ' big' : ''} ${state ?? ''}`;
      label.textContent = pct(f, f > 0 && f < 0.1 ? 1 : 0);
    },
  };
}

/* "ETA 2 min 05 s" while running, nothing useful otherwise. */
export function etaText(job, progress) {
  if (isTerminal(job.state)) return DASH;
  if (job.state === 'queued') return 'queued';
  return progress?.eta_s == null ? 'estimating…' : duration(progress.eta_s);
}

/* rows: [[label, value], ...]; value may be a Node. */
export function kvTable(rows) {
  return h('table', { class: 'kv' },
    h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v ?? DASH)))));
}

export function stat(label, value, attrs = {}) {
  return h('div', { class: 'stat', ...attrs }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
}

export function errorBox(err) {
  const msg = err?.message || String(err);
  return h('div', { class: 'alert', role: 'alert' }, msg);
}

export function pageHead(title, ...rest) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), ...rest);
}

/* A table: columns [{label, num?}], rows of cells (strings or Nodes); empty → a message. */
export function dataTable(columns, rows, emptyText) {
  if (!rows.length) return h('div', { class: 'empty' }, emptyText);
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null }, c.label)))),
    h('tbody', {}, rows.map((cells) => h('tr', {},
      cells.map((v, i) => h('td', { class: columns[i].num ? 'num' : null }, v ?? DASH))))));
}

/* Replaces el's content with a short live-stream indicator. */
export function setLive(el, status) {
  const text = { live: 'live', reconnecting: 'reconnecting…', ended: 'finished', gone: 'job removed' }[status] ?? status;
  el.className = `live ${status === 'live' ? 'on' : status === 'reconnecting' ? 'off' : ''}`;
  el.dataset.status = status;
  fill(el, text);
}
