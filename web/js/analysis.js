// web/js/analysis.js — what the analysis pages (SAE, groups, group, Jaccard,
// PCA) share: the tabs under an SAE's heading, whether an SAE has been
// analysed (asked through GET /v1/compare, which answers 200 with
// analysis: null for an unanalysed SAE, so no page provokes the 409 the
// per-SAE analysis endpoints give then), jobs of a kind still running for an
// SAE, and a live line for a job the page started (badge, progress bar, link),
// which calls back once the job ends.
import { get, list, isTerminal } from './api.js';
import { h, fill, link } from './dom.js';
import { int } from './fmt.js';
import { progressBar, stateBadge } from './ui.js';
import { watchJob } from './live.js';

const TABS = [
  ['overview', 'Overview', ''], ['groups', 'Groups', '/groups'], ['jaccard', 'Jaccard', '/jaccard'], ['pca', 'PCA', '/pca'],
];

export function saeTabs(id, active) {
  return h('nav', { class: 'tabs' }, TABS.map(([key, label, sub]) =>
    h('a', { href: `#/saes/${id}${sub}`, class: key === active ? 'active' : null, 'data-tab': key }, label)));
}

/* The SAE as /v1/compare lists it: {id, dataset, n_latents, dim, group_size, config, metrics, analysis, recovery}. */
export async function saeWithAnalysis(id, signal) {
  const c = await get(`/compare?saes=${id}`, signal);
  return c.saes[0];
}

export function saeSubtitle(s) {
  const groups = s.group_size > 0 ? `groups of ${s.group_size}`
    : `${int(s.config?.groups?.length)} groups of any size`;
  return `${s.config?.arch ?? '?'} · ${int(s.n_latents)} latents · ${groups} · ${s.dim}-D`;
}

/* Shown by the analysis pages when the SAE has not been analysed. */
export function noAnalysisNote(id) {
  return h('div', { class: 'note', id: 'no-analysis' }, `SAE #${id} has not been analysed yet. `,
    link(`#/saes/${id}`, 'Run an analyze job from its page'), ', then come back.');
}

/* Jobs of `type` for SAE `sae` that are queued or running (oldest first). */
export async function activeJobs(type, sae, signal) {
  const [running, queued] = await Promise.all([list('/jobs?state=running', signal, 200), list('/jobs?state=queued', signal, 200)]);
  return [...running, ...queued].filter((j) => j.type === type && j.spec?.sae === sae).sort((a, b) => a.id - b.id);
}

/* A live line for a job: link, badge, progress bar. onEnd(job) runs once when it is terminal. */
export function jobLine(job, { onCleanup, onEnd }) {
  const bar = progressBar();
  const badge = h('span', {}), err = h('div', {});
  const el = h('div', { class: 'jobline', 'data-job': job.id },
    h('div', { class: 'row-inline' }, link(`#/jobs/${job.id}`, `${job.type} job #${job.id}`), badge, bar.el), err);
  let state = job.state, ended = false;
  const show = (j) => {
    state = j.state;
    fill(badge, stateBadge(j.state));
    bar.set(j.progress, j.state);
    if (j.error) fill(err, h('div', { class: 'alert' }, `The job failed: ${j.error}`));
    if (isTerminal(j.state) && !ended) { ended = true; stream?.close(); onEnd(j); }
  };
  let stream = null;
  show(job);
  if (!ended) {
    stream = watchJob(job.id, { onState: show, onProgress: (p) => bar.set(p, state) });
    onCleanup(() => stream.close());
  }
  return el;
}

/* Distinct labels in first-appearance order (numeric labels in numeric order) with counts. */
export function labelCounts(labels) {
  const counts = new Map();
  for (const l of labels) counts.set(l ?? '', (counts.get(l ?? '') ?? 0) + 1);
  let keys = [...counts.keys()];
  if (keys.length && keys.every((k) => k !== '' && Number.isFinite(Number(k)))) keys.sort((a, b) => Number(a) - Number(b));
  return keys.map((label) => ({ label, count: counts.get(label) }));
}
