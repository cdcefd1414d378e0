// web/js/pages/sae.js — #/saes/{id}[?compare=ID]: one SAE — its config, final
// metrics, where it came from, its weights, and its analysis.
//
// Analysis: when the SAE has none, a small form runs an analyze job (and the
// page follows it live, then draws). When it has one: a summary, and for a
// circles dataset the decoder-rows-per-plane histogram (with a second SAE
// beside it, chosen here: the 8x-vs-16x feature-splitting figure, read from
// GET /v1/compare) and the circle-FVE histogram; for every dataset the latent
// density histogram (log10 density of each latent, from GET .../latents).
// The weight download links carry the tab's token, if any (?access_token=).
import { get, post, list, isAbort, withToken } from '../api.js';
import { h, fill, link } from '../dom.js';
import { int, num, pct, time, DASH } from '../fmt.js';
import { kvTable, stat, pageHead, errorBox } from '../ui.js';
import { barChart } from '../bars.js';
import { categoryColor } from '../plot.js';
import { saeTabs, activeJobs, jobLine } from '../analysis.js';

const WEIGHTS = ['decoder.npy', 'encoder.npy', 'b_enc.npy', 'b_dec.npy'];
const DENSITY_BIN = 0.2; /* decades per bin of the density histogram */

export async function mount(root, ctx) {
  const id = Number(ctx.params.id);
  document.title = `SAE ${id} · saed`;
  const [sae, cmp] = await Promise.all([get(`/saes/${id}`, ctx.signal), get(`/compare?saes=${id}`, ctx.signal)]);
  let dataset = null;
  if (sae.dataset != null) { /* null: imported without one */
    try { dataset = await get(`/datasets/${sae.dataset}`, ctx.signal); } catch (e) { if (isAbort(e)) throw e; }
  }
  const cfg = sae.config ?? {};
  const m = sae.metrics ?? {};
  const analysisEl = h('div', { id: 'analysis-section' });

  root.append(
    pageHead(`SAE #${id}`, h('span', { class: 'muted' },
      `${cfg.arch ?? '?'} · ${int(sae.n_latents)} latents · groups of ${sae.group_size} · ${sae.dim}-D`)),
    saeTabs(id, 'overview'),
    h('div', { class: 'card', id: 'metrics' }, h('h2', {}, 'Final metrics'), h('div', { class: 'stats' },
      stat('FVE', num(m.fve), { 'data-metric': 'fve' }), stat('MSE', num(m.mse), { 'data-metric': 'mse' }),
      stat('L0', num(m.l0, 3), { 'data-metric': 'l0' }), stat('L0 groups', num(m.l0_groups, 3), { 'data-metric': 'l0_groups' }),
      stat('Dead latents', pct(m.dead_frac), { 'data-metric': 'dead_frac' }))),
    h('div', { class: 'row' },
      h('div', { class: 'card', id: 'config' }, h('h2', {}, 'Config'), kvTable(Object.entries(cfg).map(([k, v]) => [k, v == null ? DASH : typeof v === 'object' ? JSON.stringify(v) : String(v)]))),
      h('div', { class: 'card', id: 'provenance' }, h('h2', {}, 'Provenance'), kvTable([
        ['training job', sae.job != null ? link(`#/jobs/${sae.job}`, `job #${sae.job}`) : h('span', { class: 'muted' },
          cfg.saelens ? `none: imported (SAELens ${cfg.saelens.architecture})` : 'deleted')],
        ['dataset', sae.dataset == null ? DASH
          : link('#/datasets', dataset ? `#${dataset.id} ${dataset.name} (${dataset.kind}, ${dataset.dim}-D)` : `#${sae.dataset}`)],
        ['created', time(sae.created_at)],
      ])),
      h('div', { class: 'card', id: 'weights' }, h('h2', {}, 'Weights'), kvTable(WEIGHTS.map((w) => [w.replace('.npy', ''),
        h('a', { href: withToken(`/v1/saes/${id}/${w}`), download: `sae${id}-${w}` }, w)]).concat(sae.group_size === 1
        ? [['SAELens', h('a', { href: withToken(`/v1/saes/${id}/saelens.tar`), download: `sae${id}-saelens.tar` }, 'saelens.tar')]]
        : [])))),
    analysisEl);

  const page = { id, sae, ctx, el: analysisEl, charts: [] };
  ctx.onCleanup(() => destroyCharts(page));
  await showAnalysis(page, cmp.saes[0]);
}

function destroyCharts(page) {
  for (const c of page.charts.splice(0)) c.destroy();
}

/* (Re)draws the analysis section from the SAE's /compare entry. */
async function showAnalysis(page, entry) {
  destroyCharts(page);
  const { id, ctx } = page;
  const head = h('div', { class: 'page-head section-head' }, h('h2', {}, 'Analysis'));
  const status = h('div', { class: 'card', id: 'analysis-status' });
  fill(page.el, head, status);
  const running = await activeJobs('analyze', id, ctx.signal);
  const reload = async () => {
    try { await showAnalysis(page, (await get(`/compare?saes=${id}`, ctx.signal)).saes[0]); } catch (e) { if (!isAbort(e)) fill(status, errorBox(e)); }
  };
  if (running.length) {
    fill(status, h('p', {}, 'An analysis is running; the figures appear when it finishes.'),
      jobLine(running[0], { onCleanup: ctx.onCleanup, onEnd: reload }));
    return;
  }
  if (!entry.analysis) {
    fill(status, h('p', {}, 'This SAE has not been analysed yet. An analyze job encodes rows of a dataset and keeps each latent\'s ',
      'density, the co-activation (Jaccard) of latents, each group\'s geometry and, for a circles dataset, how well the circles were recovered.'),
    analyzeForm(page, status, reload, false));
    return;
  }
  fill(status, summary(entry), analyzeForm(page, status, reload, true));
  const grid = h('div', { class: 'grid2', id: 'analysis' });
  page.el.append(grid);
  if (entry.recovery) {
    grid.append(recoveryPanel(page, entry), circleFvePanel(page, entry.recovery));
    if (entry.recovery.groups_per_plane_hist) grid.append(groupsPerPlanePanel(page, entry.recovery));
  }
  grid.append(densityPanel(page, entry));
}

function summary(entry) {
  const a = entry.analysis, s = a.summary ?? {}, r = entry.recovery;
  const id = entry.id;
  return h('div', {},
    h('div', { class: 'stats' },
      stat('Rows analysed', int(a.n_samples), { 'data-stat': 'n_samples' }),
      stat('Groups', int(a.n_groups)),
      stat('L0', num(s.l0, 3)), stat('L0 groups', num(s.l0_groups, 3)),
      stat('Dead latents', `${int(s.dead_latents)} (${pct(s.dead_frac)})`),
      stat('Near-duplicate pairs', int(s.near_duplicates?.count), { title: `decoder cosine > ${s.near_duplicates?.threshold}` }),
      r ? stat('Circles found', `${int(r.circles_found)} / ${int(r.n_circles)}`, { 'data-stat': 'circles_found' }) : null,
      r ? stat('Rows in a circle plane', pct(r.inplane_frac)) : null,
      r?.groups_per_plane_hist ? stat('Circles held by one group', `${int(r.circles_one_group)} / ${int(r.n_circles)}`,
        { 'data-stat': 'circles_one_group', title: 'both principal-angle cosines between the group\'s span and the circle\'s plane ≥ 0.9' }) : null),
    h('p', { class: 'links' },
      link(`#/saes/${id}/groups`, h('button', { class: 'primary', id: 'open-groups' }, 'Groups table')), ' ',
      link(`#/saes/${id}/jaccard`, h('button', {}, 'Jaccard heatmap')), ' ',
      link(`#/saes/${id}/pca`, h('button', { id: 'open-pca' }, 'PCA')), ' ',
      h('span', { class: 'muted small' }, `analysis by `, link(`#/jobs/${a.job}`, `job #${a.job}`),
        ` on dataset #${a.dataset}, ${time(a.created_at)}`, a.cluster ? ` · groups by clustering (${a.cluster.method})` : '')));
}

/* The form that submits POST /v1/jobs {type: analyze}; `again` folds it away under a summary. */
function analyzeForm(page, status, reload, again) {
  const { id, sae, ctx } = page;
  const nIn = h('input', { id: 'analyze-n', type: 'number', min: 1, step: 1, placeholder: '100,000 or all rows' });
  const nbIn = h('input', { id: 'analyze-neighbors', type: 'number', min: 1, max: 100, step: 1, placeholder: '10' });
  /* an SAE imported without a dataset names one here */
  const dsIn = sae.dataset == null ? h('input', { id: 'analyze-dataset', type: 'number', min: 1, step: 1, required: true }) : null;
  const clusterSel = sae.group_size === 1
    ? h('select', { id: 'analyze-cluster' }, ['none', 'cosine', 'jaccard'].map((v) => h('option', { value: v }, v))) : null;
  const clusterSize = sae.group_size === 1 ? h('input', { id: 'analyze-cluster-size', type: 'number', min: 2, step: 1, value: '2' }) : null;
  const err = h('div', {});
  const btn = h('button', { class: 'primary', id: 'run-analyze', type: 'submit' }, again ? 'Run a new analysis' : 'Run analysis');
  const field = (label, input, hint) => h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hint ? h('div', { class: 'hint' }, hint) : null);
  const form = h('form', { class: 'inline-form', id: 'analyze-form' },
    h('div', { class: 'fields' },
      dsIn ? field('Dataset', dsIn, `its rows must have ${sae.dim} dims`) : null,
      field('Rows to analyse', nIn, dsIn ? null : `dataset #${sae.dataset}`), field('Neighbours per latent', nbIn),
      clusterSel ? field('Group latents by clustering', clusterSel, 'the "train normally, then cluster" baseline') : null,
      clusterSize ? field('Cluster group size', clusterSize) : null),
    h('div', { class: 'form-actions' }, btn), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    btn.disabled = true;
    fill(err);
    const body = { type: 'analyze', sae: id };
    if (dsIn) body.dataset = Number(dsIn.value);
    if (nIn.value) body.n_samples = Number(nIn.value);
    if (nbIn.value) body.neighbors = Number(nbIn.value);
    if (clusterSel && clusterSel.value !== 'none') body.cluster = { method: clusterSel.value, group_size: Number(clusterSize.value) };
    try {
      const job = await post('/jobs', body, ctx.signal);
      fill(status, h('p', {}, 'Analysing…'), jobLine(job, { onCleanup: ctx.onCleanup, onEnd: reload }));
    } catch (e) {
      if (isAbort(e)) return;
      btn.disabled = false;
      fill(err, errorBox(e.errors?.length ? new Error(e.errors.map((x) => `${x.field}: ${x.message}`).join('\n')) : e));
    }
  });
  return again ? h('details', { class: 'again' }, h('summary', {}, 'Run a new analysis (replaces this one)'), form) : form;
}

/* ---- panels ---- */

function panelCard(slot, title, ...children) {
  return h('div', { class: 'card', 'data-slot': slot }, h('h2', {}, title), ...children);
}

/* Categories 0 … K−1 and "K+" for a per_plane_hist of length K + 1. */
function planeCategories(n) {
  return Array.from({ length: n }, (_, k) => (k === n - 1 ? `${k}+` : String(k)));
}

function recoveryPanel(page, entry) {
  const { id, ctx } = page;
  const chartEl = h('div', { id: 'recovery-chart' });
  const note = h('div', { class: 'small muted' });
  const sel = h('select', { id: 'compare-sae' }, h('option', { value: '' }, 'no second SAE'));
  const card = panelCard('recovery', 'Decoder rows per circle plane',
    h('p', { class: 'small muted' }, `For each ground-truth circle, how many decoder rows lie in its plane (norm kept ≥ ${entry.recovery.min_frac}). `,
      'A second SAE on the same data shows feature splitting: wider SAEs spread a circle over more rows.'),
    h('div', { class: 'field compact' }, h('label', { for: 'compare-sae' }, 'Compare with'), sel), chartEl, note);
  let chart = null;

  function draw(entries) {
    chart?.destroy();
    const withRec = entries.filter((e) => e.recovery);
    const len = Math.max(...withRec.map((e) => e.recovery.per_plane_hist.length));
    chart = barChart(chartEl, {
      categories: planeCategories(len), xLabel: 'decoder rows in the plane', yLabel: 'circles',
      series: withRec.map((e, i) => ({ label: `SAE #${e.id} (${int(e.n_latents)} latents)`, color: categoryColor(i),
        values: Array.from({ length: len }, (_, k) => e.recovery.per_plane_hist[k] ?? 0) })),
    });
    page.charts.push(chart);
    fill(note, withRec.map((e) => `SAE #${e.id}: ${e.recovery.circles_found}/${e.recovery.n_circles} circles found, `
      + `${pct(e.recovery.inplane_frac)} of rows in a plane`).join(' · '));
    const missing = entries.filter((e) => !e.recovery);
    if (missing.length) note.append(h('div', { class: 'alert' }, ...missing.map((e) => [`SAE #${e.id} has no circle recovery yet: `,
      link(`#/saes/${e.id}`, 'analyse it on its page'), '.'])));
  }

  async function choose(other) {
    const q = other ? `?compare=${other}` : '';
    history.replaceState(null, '', `#/saes/${id}${q}`);
    if (!other) { draw([entry]); return; }
    try {
      const c = await get(`/compare?saes=${id},${other}`, ctx.signal);
      draw(c.saes);
    } catch (e) { if (!isAbort(e)) fill(note, errorBox(e)); }
  }
  sel.addEventListener('change', () => choose(sel.value ? Number(sel.value) : null));

  list('/saes', ctx.signal).then((saes) => {
    const others = saes.filter((s) => s.id !== id && s.dim === entry.dim)
      .sort((a, b) => (b.dataset === entry.dataset) - (a.dataset === entry.dataset) || a.id - b.id);
    for (const s of others) {
      sel.append(h('option', { value: s.id }, `SAE #${s.id} · ${int(s.n_latents)} latents · groups of ${s.group_size}`
        + `${s.dataset === entry.dataset ? '' : ` · dataset #${s.dataset}`}`));
    }
    const want = Number(ctx.query.compare);
    if (others.some((s) => s.id === want)) { sel.value = String(want); choose(want); } else draw([entry]);
  }).catch((e) => { if (!isAbort(e)) fill(note, errorBox(e)); });
  return card;
}

/* Groups scored as subspaces: for each circle, how many groups' spans hold its plane (both principal-angle
 * cosines >= 0.9, and >= 0.99). The seed's target is a peak at 1: one group per circle. */
function groupsPerPlanePanel(page, r) {
  const chartEl = h('div', { id: 'groups-per-plane-chart' });
  const a = r.groups_per_plane_hist, b = r.groups_per_plane_hist_99;
  const len = Math.max(a.length, b.length);
  const card = panelCard('groups-per-plane', 'Groups per circle plane',
    h('p', { class: 'small muted' }, 'For each ground-truth circle, how many groups hold its plane: both principal-angle cosines ',
      'between the group\'s decoder span and the plane at least 0.9 (or 0.99). One group per circle is the aim: ',
      `${int(r.circles_one_group)} of ${int(r.n_circles)} circles have exactly one at 0.9, ${int(r.circles_one_group_99)} at 0.99; `,
      `${int(r.circles_held)} have at least one`,
      r.groups_per_held_plane != null ? `, ${r.groups_per_held_plane.toFixed(2)} groups per held plane.` : '.'), chartEl);
  const at = (hist) => Array.from({ length: len }, (_, k) => hist[k] ?? 0);
  page.charts.push(barChart(chartEl, {
    categories: Array.from({ length: len }, (_, k) => String(k)), xLabel: 'groups holding the plane', yLabel: 'circles',
    series: [{ label: 'cosines ≥ 0.9', values: at(a), color: categoryColor(0) },
      { label: 'cosines ≥ 0.99', values: at(b), color: categoryColor(1) }],
  }));
  return card;
}

function circleFvePanel(page, r) {
  const chartEl = h('div', { id: 'circle-fve-chart' });
  const card = panelCard('circle-fve', 'Circle FVE',
    h('p', { class: 'small muted' }, `Each circle alone (${r.circle_fve.points} points at radius 1) passed through the SAE: `,
      `median FVE ${num(r.circle_fve.median, 3)}, 10th percentile ${num(r.circle_fve.p10, 3)}.`), chartEl);
  const edges = Array.from({ length: 11 }, (_, k) => k / 10);
  page.charts.push(barChart(chartEl, { edges, series: [{ label: 'circles', values: r.circle_fve.hist, color: categoryColor(2) }],
    xLabel: 'FVE of the circle', yLabel: 'circles', height: 200 }));
  return card;
}

function densityPanel(page, entry) {
  const { id, ctx } = page;
  const chartEl = h('div', { id: 'density-chart' }, h('p', { class: 'muted' }, 'Loading latents…'));
  const note = h('div', { class: 'small muted' });
  const card = panelCard('density', 'Latent density', h('p', { class: 'small muted' },
    'How often each latent fires over the analysed rows (log10 of the fraction of rows); dead latents are counted apart.'), chartEl, note);
  list(`/saes/${id}/latents`, ctx.signal, entry.n_latents).then((latents) => {
    const n = entry.analysis.n_samples;
    const lo = Math.floor(Math.log10(1 / n));
    const nb = Math.ceil(-lo / DENSITY_BIN);
    const edges = Array.from({ length: nb + 1 }, (_, k) => lo + k * DENSITY_BIN);
    const counts = new Array(nb).fill(0);
    let dead = 0;
    for (const l of latents) {
      if (!(l.density > 0)) { dead++; continue; }
      counts[Math.min(nb - 1, Math.max(0, Math.floor((Math.log10(l.density) - lo) / DENSITY_BIN)))]++;
    }
    page.charts.push(barChart(chartEl, { edges, series: [{ label: 'latents', values: counts, color: categoryColor(4) }],
      xLabel: 'log10 density', yLabel: 'latents', xFmt: (v) => String(Number(v.toFixed(1))) }));
    fill(note, `${int(latents.length - dead)} latents fired at least once; ${int(dead)} dead (never fired in ${int(n)} rows).`);
  }).catch((e) => { if (!isAbort(e)) fill(chartEl, errorBox(e)); });
  return card;
}
