// web/js/groupspace.js — a groupspace job's learned space, on its job page
// (pages/job.js): the items' positions as a scatter that plays through the
// snapshots taken while training (play/pause and a slider; the axes hold the
// union of every snapshot's extent, so the motion shows), coloured by true
// group when the job knows one (the toy: items 2q and 2q+1 are pair q) or by
// the group learned from the final positions, with a switch when both exist.
// The tooltip names the item, its groups and, for latents of an SAE, the
// latent's density (read when first hovered). Below: the result's numbers and
// its history over training. Only the first two coordinates are drawn; a 1-D
// space lies on a line.
//
// Snapshot k is taken at step floor(steps·(k+1)/snapshots) and written before
// the job reports that step, so while the job runs only the steps its
// progress has passed are asked for, one at a time, and the slider grows as
// they come (a 404 — the job was cancelled or restarted under us — stops the
// reading quietly until the next progress). A cancelled or failed job's files
// are gone with it; the snapshots read while it ran stay on the page.
//
// groupSpace(el, job, {signal, onCleanup}) fills el (already in the page) and
// returns {progress(p), update(job)} for the page's event stream.
import { get, getNpy, isTerminal, isAbort } from './api.js';
import { h, fill, link } from './dom.js';
import { int, num, pct, DASH } from './fmt.js';
import { stat, errorBox } from './ui.js';
import { scatter } from './scatter.js';
import { lineChart } from './charts.js';
import { categoryColor, extent } from './plot.js';

const FRAME_MS = 200;      /* one snapshot per frame while playing */
const CYCLE = 24;          /* colours, cycled over the groups */
const READING = 'reading'; /* a latent whose page is on its way */
const COLOURINGS = { truth: 'true pair', learned: 'learned group', none: 'one colour' };
const ENDED = { cancelled: 'was cancelled', failed: 'failed' };

/* The history charts: per snapshot, one line per value. */
const HISTORY = [
  { key: 'truth', title: 'Against the true pairs', labels: ['true pairs within near', 'other pairs beyond far'],
    values: [(e) => e.truth?.true_near_frac, (e) => e.truth?.other_far_frac], unit: true, needs: (r) => r.truth },
  { key: 'terms', title: 'Loss terms per set', labels: ['attract', 'repel'], values: [(e) => e.attract, (e) => e.repel] },
  { key: 'hinges', title: 'Hinges still open', labels: ['set pairs beyond near', 'negatives within far'],
    values: [(e) => e.pairs_far_frac, (e) => e.negs_near_frac], unit: true },
  { key: 'radius', title: 'Radius profile', labels: ['cv', 'inner fraction'], values: [(e) => e.radius?.cv, (e) => e.radius?.inner_frac] },
];

/* The steps the snapshots are taken at (the daemon's spec_groupspace_snapshot_step). */
export function snapshotSteps(spec) {
  const n = Math.min(spec.snapshots, spec.steps);
  return Array.from({ length: n }, (_, k) => Math.floor((spec.steps * (k + 1)) / n));
}

/* What to read, in step order: each snapshot, then the final positions when no snapshot is at the last step. */
function planOf(id, steps, total, final) {
  const plan = steps.map((s) => ({ step: s, path: `/jobs/${id}/positions.npy?step=${s}` }));
  if (final && plan.at(-1)?.step !== total) plan.push({ step: total, path: `/jobs/${id}/positions.npy` });
  return plan;
}

/* An (items, dim) positions array as x and y columns (y 0 for a 1-D space). */
function columns({ shape, data }) {
  const [n, d] = shape;
  const xs = new Float32Array(n), ys = new Float32Array(n);
  for (let i = 0; i < n; i++) { xs[i] = data[i * d]; ys[i] = d > 1 ? data[i * d + 1] : 0; }
  return { xs, ys };
}

/* The scatter's colours for a colouring: per-item category (true pair or learned group, cycled) or one colour. */
function colouring(mode, n, groupOf) {
  if (mode === 'none') return { color: null, colors: [categoryColor(0)] };
  const color = new Uint16Array(n);
  for (let i = 0; i < n; i++) color[i] = (mode === 'truth' ? i >> 1 : groupOf[i]) % CYCLE;
  return { color, colors: Array.from({ length: CYCLE }, (_, k) => categoryColor(k)) };
}

/* [lo, hi] of two ranges together. */
const union = (a, b) => [Math.min(a[0], b[0]), Math.max(a[1], b[1])];
const padded = ([lo, hi]) => [lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05];

/* Where the sets come from, in words. */
function sourceText(sets) {
  if (sets.toy) return `the toy: ${int(sets.toy.items)} items in pairs (2q, 2q + 1), ${sets.toy.p > 0
    ? `each pair in a set with probability ${sets.toy.p}` : 'one pair per set'}`;
  if (sets.from_analysis != null) return ['the latents of ', link(`#/saes/${sets.from_analysis}`, `SAE #${sets.from_analysis}`),
    ' that fire together on its analysed rows'];
  return `${int(sets.items)} items in ${int(sets.sets?.length)} sets`;
}

/* The result's numbers: groups, sizes, the truth's fractions and the radius profile. */
function numbersCard(r) {
  const t = r.truth, rad = r.radius ?? {};
  const sizes = Object.entries(r.group_sizes ?? {}).sort((a, b) => Number(a[0]) - Number(b[0]))
    .map(([s, c]) => `${int(c)} of ${s}`).join(', ');
  return h('div', { class: 'card', id: 'gs-numbers' }, h('h2', {}, 'Result'), h('div', { class: 'stats' },
    stat('Groups', int(r.n_groups), { 'data-stat': 'n_groups' }),
    stat('Groups of each size', sizes || DASH, { 'data-stat': 'group_sizes' }),
    t ? stat('True pairs within near', pct(t.true_near_frac), { 'data-stat': 'true_near_frac' }) : null,
    t ? stat('Other pairs beyond far', pct(t.other_far_frac), { 'data-stat': 'other_far_frac' }) : null,
    t ? stat('True pairs\' mean distance', num(t.true_mean_dist, 3), { 'data-stat': 'true_mean_dist' }) : null,
    stat('Radius CV', num(rad.cv, 3), { 'data-stat': 'radius_cv' }),
    stat('Inner fraction', pct(rad.inner_frac), { 'data-stat': 'inner_frac' })),
  h('p', { class: 'small muted' }, 'Radius: each item\'s distance from the centroid. A ring has a small CV and few items within half ',
    'the mean radius (the inner fraction); a uniform disk has CV ≈ 0.35 and inner fraction 0.25.'));
}

/* The history as line charts in grid (in the page); returns the charts. */
function historyCharts(grid, r) {
  const hist = r.history ?? [], steps = hist.map((e) => e.step);
  return HISTORY.filter((c) => !c.needs || c.needs(r)).map((c) => {
    const el = h('div', { class: 'card', 'data-chart': `gs-${c.key}` });
    grid.append(el);
    const chart = lineChart(el, { title: c.title, series: c.labels.map((label) => ({ label })), range: c.unit ? () => [0, 1] : undefined });
    chart.setData(steps, c.values.map((f) => hist.map((e) => f(e) ?? null)));
    return chart;
  });
}

export function groupSpace(el, job, { signal, onCleanup }) {
  const { id, spec } = job, sets = spec.sets, sae = sets.from_analysis ?? null;
  const n = sets.toy?.items ?? sets.items, dim = spec.dim;
  const frames = [];               /* [{step, xs, ys}] read so far, in step order */
  const latents = new Map();       /* latent → its page, READING, or null when it could not be read */
  let plan = planOf(id, snapshotSteps(spec), spec.steps, false), upTo = -1, state = job.state;
  let at = -1, timer = null, chart = null, groupOf = null, mode = sets.toy ? 'truth' : 'none', hovered = -1;
  let lim = null, inflight = false, again = false, done = false;
  const charts = [];
  onCleanup(() => { clearInterval(timer); chart?.destroy(); charts.forEach((c) => c.destroy()); });

  const figEl = h('div', { 'data-fig': 'groupspace', 'data-frames': '0' });
  const playBtn = h('button', { type: 'button', id: 'gs-play', disabled: true, onclick: () => (timer ? pause() : play()) }, 'Play');
  const slider = h('input', { type: 'range', id: 'gs-slider', min: 0, max: 0, step: 1, value: '0', disabled: true,
    oninput: () => { pause(); show(Number(slider.value)); } });
  const stepEl = h('span', { id: 'gs-step', class: 'mono' }, `no snapshot yet: the first is taken at step ${int(plan[0]?.step)}`);
  const colourSel = h('select', { id: 'gs-colour', onchange: () => { mode = colourSel.value; recolour(); } });
  const colourEl = h('span', { class: 'small muted', id: 'gs-colouring' });
  const note = h('div', { id: 'gs-note' });
  const numbersEl = h('div', {}), historyEl = h('div', { class: 'grid2', id: 'gs-history' });
  const player = h('div', { class: 'row-inline gs-player' }, playBtn, slider, stepEl);
  fill(el, h('div', { class: 'card', id: 'groupspace', 'data-job': id },
    h('div', { class: 'page-head' }, h('h2', {}, `Group space · ${dim}-D`), h('span', { class: 'muted small' }, sourceText(sets),
      dim > 2 ? ` · coordinates 1 and 2 of ${dim} drawn` : null), h('div', { class: 'actions' }, colourEl, colourSel)),
    player, figEl, note), numbersEl, historyEl);

  function show(k) {
    at = k;
    const f = frames[k], final = state === 'succeeded' && k === plan.length - 1;
    slider.value = String(k);
    fill(stepEl, `step ${int(f.step)} of ${int(spec.steps)}${final ? ' (final)' : ''} · snapshot ${k + 1} / ${frames.length}`);
    figEl.dataset.step = String(f.step);
    const patch = { xs: f.xs, ys: f.ys, xRange: padded(lim.x), yRange: dim > 1 ? padded(lim.y) : [-1, 1] };
    if (chart) chart.update(patch);
    else chart = scatter(figEl, { ...patch, ...colouring(mode, n, groupOf), tip: tipText, height: dim > 1 ? 460 : 150, equal: dim > 1,
      xLabel: 'coordinate 1', yLabel: dim > 1 ? 'coordinate 2' : null, pointSize: n <= 1000 ? 6 : undefined });
  }

  function play() {
    if (frames.length < 2) return;
    if (at >= frames.length - 1) show(0);
    timer = setInterval(() => (at < frames.length - 1 ? show(at + 1) : pause()), FRAME_MS);
    fill(playBtn, 'Pause');
  }

  function pause() {
    clearInterval(timer);
    timer = null;
    fill(playBtn, 'Play');
  }

  function recolour() {
    figEl.dataset.colour = mode;
    colourSel.hidden = !(groupOf && sets.toy);
    fill(colourEl, groupOf && sets.toy ? 'colour by ' : `coloured by ${COLOURINGS[mode]}`);
    chart?.update(colouring(mode, n, groupOf));
  }

  function tipText(i) {
    hovered = i;
    const f = frames[at];
    const head = [`${sae != null ? 'latent' : 'item'} ${i}`, sets.toy ? `true pair ${i >> 1}` : null,
      groupOf ? `learned group ${groupOf[i]}` : null].filter(Boolean).join(' · ');
    const pos = dim > 1 ? `(${f.xs[i].toFixed(3)}, ${f.ys[i].toFixed(3)})` : `at ${f.xs[i].toFixed(3)}`;
    return [head, sae != null ? latentText(i) : null, pos].filter((x) => x != null).join('\n');
  }

  function latentText(i) {
    if (!latents.has(i)) readLatent(i);
    const l = latents.get(i);
    if (l === READING) return 'density …';
    return l ? `density ${num(l.density, 3)} · SAE group ${l.group}` : `density ${DASH}`;
  }

  /* The latent's page, then the tooltip again if it still shows that latent. */
  async function readLatent(i) {
    latents.set(i, READING);
    try {
      latents.set(i, await get(`/saes/${sae}/latents/${i}`, signal));
    } catch (e) {
      if (isAbort(e)) return;
      latents.set(i, null);
    }
    const tip = figEl.querySelector('.tip');
    if (hovered === i && tip && !tip.hidden) tip.textContent = tipText(i);
  }

  async function readFrame(p) {
    const f = { step: p.step, ...columns(await getNpy(p.path, signal)) };
    const ext = { x: extent(f.xs, 0), y: extent(f.ys, 0) };
    lim = lim ? { x: union(lim.x, ext.x), y: union(lim.y, ext.y) } : ext;
    const follow = at === frames.length - 1 && !timer;   /* showing the newest: go on doing so */
    frames.push(f);
    slider.max = String(frames.length - 1);
    slider.disabled = playBtn.disabled = frames.length < 2;
    figEl.dataset.frames = String(frames.length);
    show(follow ? frames.length - 1 : at);
  }

  /* Reads the planned positions up to step upTo, one at a time (at most one loop running; one more after). */
  async function pull() {
    if (inflight) { again = true; return; }
    inflight = true;
    try {
      while (frames.length < plan.length && plan[frames.length].step <= upTo && !signal.aborted) await readFrame(plan[frames.length]);
    } catch (e) {
      if (!isAbort(e) && e.status !== 404) fill(note, errorBox(e));
    } finally {
      inflight = false;
    }
    if (again && !signal.aborted) { again = false; pull(); }
  }

  async function readGroups() {
    let groups;
    try {
      groups = (await get(`/jobs/${id}/groups`, signal)).groups;
    } catch (e) {
      if (!isAbort(e)) fill(note, errorBox(e));
      return;
    }
    groupOf = new Int32Array(n);
    groups.forEach((g, k) => { for (const i of g) groupOf[i] = k; });
    if (mode === 'none') mode = 'learned';
    fill(colourSel, ['truth', 'learned'].map((m) => h('option', { value: m, selected: m === mode }, COLOURINGS[m])));
    recolour();
  }

  function finish(j) {
    done = true;
    plan = planOf(id, j.result?.snapshots ?? [], spec.steps, true);
    upTo = Infinity;
    if (at >= 0) show(at);   /* "(final)" on the last, once the job has succeeded */
    pull();
    readGroups();
    fill(numbersEl, numbersCard(j.result ?? {}));
    charts.push(...historyCharts(historyEl, j.result ?? {}));
  }

  function update(j) {
    state = j.state;
    if (done) return;
    if (j.state === 'succeeded') finish(j);
    else if (isTerminal(j.state)) {
      upTo = -1;
      player.hidden = !frames.length;
      fill(note, h('p', { class: 'note' }, `The job ${ENDED[j.state] ?? j.state}: its positions went with it`,
        frames.length ? '; the snapshots read while it ran stay here.' : '.'));
    } else progress(j.progress ?? {});
  }

  function progress(p) {
    if (isTerminal(state) || p.step == null) return;
    upTo = p.step;
    pull();
  }

  recolour();
  update(job);
  return { progress, update };
}
