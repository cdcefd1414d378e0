// web/js/pages/jobs.js — #/jobs: every job with its state, a live progress bar and ETA.
//
// The list is read once and then re-read every few seconds (new jobs, queued →
// running); running jobs also get a live event stream each (at most
// MAX_STREAMS, since a browser keeps only ~6 connections per host) so their
// bars move smoothly between list reads.
import { list, isTerminal, isAbort } from '../api.js';
import { h, fill, link } from '../dom.js';
import { int, time, duration, elapsed, DASH } from '../fmt.js';
import { stateBadge, progressBar, etaText, pageHead, errorBox } from '../ui.js';
import { watchJob } from '../live.js';

const MAX_STREAMS = 3;
const POLL_ACTIVE_MS = 3000, POLL_IDLE_MS = 15000;
const COLUMNS = ['Job', 'What', 'State', 'Progress', 'Steps', 'ETA / took', 'Dataset', 'Result', 'Created'];

export function jobSummary(job) {
  const s = job.spec ?? {};
  if (job.type === 'train' && s.sae)
    return `${s.sae.arch} · ${int(s.sae.n_latents)} latents${s.sae.group_size > 1 ? ` · groups of ${s.sae.group_size}` : ''}`;
  if (job.type === 'groupspace' && s.sets) {
    const g = s.sets;
    if (g.toy) return `toy · ${int(g.toy.items)} items · p ${g.toy.p}`;
    return g.from_analysis != null ? `latents of SAE ${g.from_analysis}` : `${int(g.items)} items · ${int(g.sets?.length)} sets`;
  }
  if (s.sae != null && typeof s.sae !== 'object') return `SAE ${s.sae}`;
  return '';
}

function resultCell(job) {
  const r = job.result ?? {};
  if (r.analysis != null) return link(`#/analyses/${r.analysis}`, `PCA #${r.analysis}`);
  if (r.sae != null) return link(`#/saes/${r.sae}`, `SAE ${r.sae}`);
  if (r.n_groups != null) return link(`#/jobs/${job.id}`, `${int(r.n_groups)} groups`);
  if (job.error) return h('span', { class: 'muted', title: job.error }, 'error');
  return DASH;
}

/* One table row that can be updated in place. */
function jobRow(job) {
  const bar = progressBar();
  const steps = h('td', { class: 'num', 'data-col': 'steps' }), eta = h('td', { class: 'num', 'data-col': 'eta' });
  const state = h('td', {}), result = h('td', {});
  const tr = h('tr', { 'data-job': job.id },
    h('td', {}, link(`#/jobs/${job.id}`, `#${job.id}`)), h('td', {}, [job.type, jobSummary(job)].filter(Boolean).join(' · ')),
    state, h('td', {}, bar.el), steps, eta,
    h('td', {}, job.spec?.dataset != null ? link('#/datasets', `#${job.spec.dataset}`) : DASH),
    result, h('td', { class: 'muted' }, time(job.created_at)));
  const row = {
    tr, job,
    progress(p) {
      bar.set(p, row.job.state);
      fill(steps, `${int(p.step)} / ${int(p.total_steps)}`);
      fill(eta, isTerminal(row.job.state) ? duration(elapsed(row.job.started_at, row.job.finished_at)) : etaText(row.job, p));
    },
    update(j) {
      row.job = j;
      fill(state, stateBadge(j.state));
      fill(result, resultCell(j));
      row.progress(j.progress ?? {});
    },
  };
  row.update(job);
  return row;
}

export async function mount(root, { signal, onCleanup }) {
  document.title = 'Jobs · saed';
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading jobs…'));
  root.append(pageHead('Jobs'), h('div', { class: 'card' }, body));

  const rows = new Map();     /* job id → row */
  const streams = new Map();  /* job id → watchJob handle */
  let timer = null;
  onCleanup(() => { clearTimeout(timer); for (const s of streams.values()) s.close(); });

  function watchRunning(jobs) {
    for (const j of jobs) {
      if (j.state !== 'running' || streams.has(j.id) || streams.size >= MAX_STREAMS) continue;
      streams.set(j.id, watchJob(j.id, {
        onProgress: (p) => rows.get(j.id)?.progress(p),
        onState: (job) => { rows.get(j.id)?.update(job); if (isTerminal(job.state)) streams.delete(j.id); },
      }));
    }
  }

  async function refresh() {
    let jobs;
    try {
      jobs = await list('/jobs', signal, 200);
      jobs.sort((a, b) => b.id - a.id);
    } catch (e) {
      if (isAbort(e)) return;
      rows.clear();
      fill(body, errorBox(e));
      timer = setTimeout(refresh, POLL_IDLE_MS);
      return;
    }
    const sameRows = jobs.length > 0 && jobs.length === rows.size && jobs.every((j) => rows.has(j.id));
    if (sameRows) {
      for (const j of jobs) rows.get(j.id).update(j);   /* in place: no flicker, hover and selection stay */
    } else if (!jobs.length) {
      rows.clear();
      fill(body, h('div', { class: 'empty' }, 'No jobs yet. ', link('#/jobs/new', 'Create a dataset and train an SAE.')));
    } else {
      rows.clear();
      const tbody = h('tbody', {});
      for (const j of jobs) { const r = jobRow(j); rows.set(j.id, r); tbody.append(r.tr); }
      fill(body, h('table', { id: 'jobs-table' }, h('thead', {}, h('tr', {}, COLUMNS.map((c) => h('th', {}, c)))), tbody));
    }
    watchRunning(jobs);
    const active = jobs.some((j) => !isTerminal(j.state));
    if (!signal.aborted) timer = setTimeout(refresh, active ? POLL_ACTIVE_MS : POLL_IDLE_MS);
  }
  await refresh();
}
