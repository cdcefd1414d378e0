// web/js/pages/sae.js — #/saes/{id}: one SAE — its config, final metrics,
// where it came from, its weights, and the analysis panels.
//
// The analysis panels (circle recovery histogram, latent density histogram)
// need the analyze endpoints (GET /v1/saes/{id}/recovery, /latents), which
// this daemon does not serve yet. ANALYSIS_PANELS lists each panel's slot;
// when an endpoint arrives, give its entry a `load` returning a module with
// mount(el, {sae, signal, onCleanup}) and the page draws it there. Until then
// the slot says what will appear: no data is made up.
import { get, isAbort } from '../api.js';
import { h, link } from '../dom.js';
import { int, num, pct, time, DASH } from '../fmt.js';
import { kvTable, stat, pageHead } from '../ui.js';

const ANALYSIS_PANELS = [
  { slot: 'recovery', title: 'Circle recovery', needs: '/v1/saes/{id}/recovery',
    what: 'How many decoder rows lie in each ground-truth circle\'s plane (a histogram over circles), and the FVE of each circle passed through the SAE alone.' },
  { slot: 'density', title: 'Latent density', needs: '/v1/saes/{id}/latents',
    what: 'A histogram of how often each latent fires (log10 density), with the dead latents counted apart.' },
];
const WEIGHTS = ['decoder.npy', 'encoder.npy', 'b_enc.npy', 'b_dec.npy'];

function panel(p, sae, ctx) {
  const el = h('div', { class: 'card', 'data-slot': p.slot }, h('h2', {}, p.title));
  if (!p.load) {
    el.append(h('div', { class: 'note' }, p.what, h('br'), h('br'),
      'Appears here after an analyze job, once the daemon serves ', h('code', {}, p.needs.replace('{id}', sae.id)), '.'));
    return el;
  }
  const body = h('div', {});
  el.append(body);
  p.load().then((m) => m.mount(body, { sae, signal: ctx.signal, onCleanup: ctx.onCleanup }))
    .catch((e) => { if (!isAbort(e)) body.append(h('div', { class: 'alert' }, e.message)); });
  return el;
}

export async function mount(root, ctx) {
  const id = Number(ctx.params.id);
  document.title = `SAE ${id} · saed`;
  const sae = await get(`/saes/${id}`, ctx.signal);
  let dataset = null;
  try { dataset = await get(`/datasets/${sae.dataset}`, ctx.signal); } catch (e) { if (isAbort(e)) throw e; }
  const cfg = sae.config ?? {};
  const m = sae.metrics ?? {};

  root.append(
    pageHead(`SAE #${id}`, h('span', { class: 'muted' },
      `${cfg.arch ?? '?'} · ${int(sae.n_latents)} latents · groups of ${sae.group_size} · ${sae.dim}-D`)),
    h('div', { class: 'card', id: 'metrics' }, h('h2', {}, 'Final metrics'), h('div', { class: 'stats' },
      stat('FVE', num(m.fve), { 'data-metric': 'fve' }), stat('MSE', num(m.mse), { 'data-metric': 'mse' }),
      stat('L0', num(m.l0, 3), { 'data-metric': 'l0' }), stat('L0 groups', num(m.l0_groups, 3), { 'data-metric': 'l0_groups' }),
      stat('Dead latents', pct(m.dead_frac), { 'data-metric': 'dead_frac' }))),
    h('div', { class: 'row' },
      h('div', { class: 'card', id: 'config' }, h('h2', {}, 'Config'), kvTable(Object.entries(cfg).map(([k, v]) => [k, v == null ? DASH : String(v)]))),
      h('div', { class: 'card' }, h('h2', {}, 'Provenance'), kvTable([
        ['training job', link(`#/jobs/${sae.job}`, `job #${sae.job}`)],
        ['dataset', link('#/datasets', dataset ? `#${dataset.id} ${dataset.name} (${dataset.kind}, ${dataset.dim}-D)` : `#${sae.dataset}`)],
        ['created', time(sae.created_at)],
      ])),
      h('div', { class: 'card' }, h('h2', {}, 'Weights'), kvTable(WEIGHTS.map((w) => [w.replace('.npy', ''),
        h('a', { href: `/v1/saes/${id}/${w}`, download: `sae${id}-${w}` }, w)])))),
    h('h2', {}, 'Analysis'),
    h('div', { class: 'grid2', id: 'analysis' }, ANALYSIS_PANELS.map((p) => panel(p, sae, ctx))));
}
