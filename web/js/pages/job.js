// web/js/pages/job.js — #/jobs/{id}: one job live — state, progress bar, ETA,
// throughput, cancel/delete, its spec, and the training curves (loss and MSE,
// FVE, L0, dead fraction) that grow while it trains.
//
// The job object and its state changes come from the event stream (live.js);
// curves come from GET /v1/jobs/{id}/metrics, read whole once and then only
// the rows after the last step seen, whenever a progress event reports a newer
// eval step (at most one read in flight; one more after a terminal state).
// A groupspace job shows its learned space instead (groupspace.js), fed by
// the same stream.
import { get, post, del, isTerminal, isAbort } from '../api.js';
import { h, fill, link, append } from '../dom.js';
import { int, num, time, duration, elapsed, DASH } from '../fmt.js';
import { stateBadge, progressBar, etaText, kvTable, stat, pageHead, errorBox, setLive } from '../ui.js';
import { lineChart } from '../charts.js';
import { watchJob } from '../live.js';
import { jobSummary } from './jobs.js';
import { groupSpace } from '../groupspace.js';

/* The curves: one chart each; keys are columns of the metrics resource. */
const CHARTS = [
  { title: 'Loss', keys: ['loss', 'mse'], labels: ['loss', 'mse'], log: true },
  { title: 'Fraction of variance explained', keys: ['fve'], labels: ['fve'] },
  { title: 'L0 (active per row)', keys: ['l0', 'l0_groups'], labels: ['latents', 'groups'] },
  { title: 'Dead fraction', keys: ['dead_frac'], labels: ['dead latents'], range: (u, min, max) => [0, max > 0 ? Math.min(1, max * 1.2) : 1] },
];
const METRIC_KEYS = ['step', ...new Set(CHARTS.flatMap((c) => c.keys))];

/* Keeps the metrics columns and the charts in step with the daemon. */
function curves(grid, id, signal, onError) {
  const cols = Object.fromEntries(METRIC_KEYS.map((k) => [k, []]));
  const charts = CHARTS.map((c) => {
    const el = h('div', { class: 'card', 'data-chart': c.keys[0] });
    grid.append(el);
    return { spec: c, chart: lineChart(el, { title: c.title, series: c.labels.map((label) => ({ label })), log: c.log, range: c.range }) };
  });
  let inflight = false, again = false;
  const lastStep = () => (cols.step.length ? cols.step[cols.step.length - 1] : -1);

  async function pull() {
    if (inflight) { again = true; return; }
    inflight = true;
    try {
      const since = lastStep();
      const m = await get(`/jobs/${id}/metrics${since >= 0 ? `?since_step=${since}` : ''}`, signal);
      if (m.step.length) {
        for (const k of METRIC_KEYS) cols[k].push(...(m[k] ?? m.step.map(() => null)));
        for (const { spec, chart } of charts) chart.setData(cols.step, spec.keys.map((k) => cols[k]));
      }
    } catch (e) {
      if (!isAbort(e)) onError(e);
    } finally {
      inflight = false;
    }
    if (again && !signal.aborted) { again = false; pull(); }
  }
  return {
    pull,
    /* called with each progress event: read more when it reports an eval step we have not got */
    seen(latestStep) { if (latestStep != null && latestStep > lastStep()) pull(); },
    destroy() { for (const c of charts) c.chart.destroy(); },
  };
}

/* A request or result value as short text: objects as compact JSON, long lists cut. */
function specText(v) {
  if (v == null) return DASH;
  if (Array.isArray(v) && v.length > 12) return `[${v.slice(0, 12).join(', ')}, … ${v.length} in all]`;
  if (typeof v === 'object') {
    const text = JSON.stringify(v, (k, x) => (Array.isArray(x) && x.length > 12 ? [...x.slice(0, 12), `… ${x.length} in all`] : x));
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  }
  return String(v);
}

export async function mount(root, { params, signal, onCleanup, navigate }) {
  const id = Number(params.id);
  document.title = `Job ${id} · saed`;
  let job = await get(`/jobs/${id}`, signal);

  const badge = h('span', {}), live = h('span', { class: 'live', id: 'live' });
  const actions = h('div', { class: 'actions' });
  const problem = h('div', {});
  const bar = progressBar({ big: true });
  const stats = h('div', { class: 'stats' });
  const info = h('div', { class: 'row' });
  const latestEl = h('div', { class: 'card', id: 'latest' });
  const grid = h('div', { class: 'grid2' });
  const spaceEl = h('div', { id: 'groupspace-view' });
  append(root, [
    pageHead(`Job #${id}`, h('span', { class: 'muted' }, [job.type, jobSummary(job)].filter(Boolean).join(' · '),
      job.spec?.dataset != null ? [' · on ', link('#/datasets', `dataset #${job.spec.dataset}`)] : null), badge, live, actions),
    problem,
    h('div', { class: 'card' }, bar.el, stats),
    job.type === 'train' ? grid : null,
    job.type === 'groupspace' ? spaceEl : null,
    info]);

  const showError = (e) => fill(problem, errorBox(e));
  const trainCurves = job.type === 'train' ? curves(grid, id, signal, showError) : null;
  if (trainCurves) onCleanup(() => trainCurves.destroy());
  const space = job.type === 'groupspace' ? groupSpace(spaceEl, job, { signal, onCleanup }) : null;

  async function act(label, fn) {
    if (!window.confirm(`${label} job #${id}?`)) return;
    try { await fn(); } catch (e) { if (!isAbort(e)) showError(e); }
  }
  const cancelBtn = h('button', { class: 'danger', id: 'cancel', onclick: () => act('Cancel', () => post(`/jobs/${id}/cancel`, {}, signal)) }, 'Cancel job');
  const deleteBtn = h('button', { class: 'danger', id: 'delete', onclick: () => act('Delete', async () => { await del(`/jobs/${id}`, signal); navigate('#/jobs'); }) }, 'Delete');

  function showLatest(latest = {}) {
    fill(latestEl, h('h2', {}, 'Latest metrics'), Object.keys(latest).length
      ? kvTable(Object.entries(latest).map(([k, v]) => [k, num(v)])) : h('p', { class: 'muted' }, 'None yet.'));
  }

  function showProgress(p) {
    bar.set(p, job.state);
    if (p.latest) showLatest(p.latest);
    const took = elapsed(job.started_at, job.finished_at);
    fill(stats,
      stat('Step', `${int(p.step)} / ${int(p.total_steps)}`, { id: 'stat-step' }),
      stat(isTerminal(job.state) ? 'Took' : 'ETA', isTerminal(job.state) ? duration(took) : etaText(job, p), { id: 'stat-eta' }),
      stat('Samples / s', num(p.samples_per_s, 3)),
      stat('Started', time(job.started_at)),
      stat('Finished', time(job.finished_at)));
  }

  function showJob(j) {
    job = j;
    fill(badge, stateBadge(j.state));
    fill(actions,
      j.result?.sae != null ? link(`#/saes/${j.result.sae}`, h('button', { class: 'primary', id: 'open-sae' }, `Open SAE ${j.result.sae}`)) : null,
      j.result?.analysis != null ? link(`#/analyses/${j.result.analysis}`, h('button', { class: 'primary', id: 'open-analysis' }, `Open PCA #${j.result.analysis}`)) : null,
      isTerminal(j.state) ? deleteBtn : cancelBtn);
    if (j.error) fill(problem, errorBox(new Error(`The job failed: ${j.error}`)));
    showProgress({ ...j.progress, latest: j.latest });
    fill(info,
      j.spec?.sae && typeof j.spec.sae === 'object' ? h('div', { class: 'card' }, h('h2', {}, 'SAE'), kvTable(Object.entries(j.spec.sae))) : null,
      j.spec?.train ? h('div', { class: 'card' }, h('h2', {}, 'Training'), kvTable(Object.entries(j.spec.train))) : null,
      j.type !== 'train' ? h('div', { class: 'card', id: 'spec' }, h('h2', {}, 'Request'), kvTable(Object.entries(j.spec ?? {})
        .filter(([k]) => k !== 'type').map(([k, v]) => [k, specText(v)]))) : null,
      j.type !== 'train' && j.type !== 'groupspace' && j.result ? h('div', { class: 'card', id: 'result' }, h('h2', {}, 'Result'),
        kvTable(Object.entries(j.result).map(([k, v]) => [k, specText(v)]))) : null,
      j.type === 'train' ? latestEl : null);
  }

  showJob(job);
  if (trainCurves) await trainCurves.pull();
  if (isTerminal(job.state)) { setLive(live, 'ended'); return; }

  const stream = watchJob(id, {
    onStatus: (s) => setLive(live, s),
    onState: (j) => { showJob(j); space?.update(j); if (isTerminal(j.state)) trainCurves?.pull(); },
    onProgress: (p) => { showProgress(p); trainCurves?.seen(p.latest?.step); space?.progress(p); },
  });
  onCleanup(() => stream.close());
}
