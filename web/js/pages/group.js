// web/js/pages/group.js — #/saes/{id}/groups/{g}: one group of latents, the
// way the multi-dimensional features paper looks at one: the members' decoder
// cosine heatmap, the singular values of their decoder rows (two large ones
// and the rest near zero: the group spans a plane), the member vectors drawn
// in that plane, and the data rows where the group fires projected onto the
// plane, coloured by label (label on hover). Below, each member the way a
// feature page shows a latent: density, activations, its histogram and its
// nearest latents by decoder cosine and by co-activation.
import { get, isAbort } from '../api.js';
import { h, fill, link } from '../dom.js';
import { int, num, pct, DASH } from '../fmt.js';
import { pageHead, stat, errorBox, dataTable } from '../ui.js';
import { heatmap } from '../heatmap.js';
import { barChart } from '../bars.js';
import { scatter } from '../scatter.js';
import { categoryColor, legend, sparkBars, INK } from '../plot.js';
import { saeTabs, saeWithAnalysis, saeSubtitle, noAnalysisNote, labelCounts } from '../analysis.js';

const MAX_MEMBER_DETAILS = 16;   /* members whose latent page is read for the table */

export async function mount(root, { params, signal, onCleanup }) {
  const id = Number(params.id), g = Number(params.g);
  document.title = `Group ${g} · SAE ${id} · saed`;
  const entry = await saeWithAnalysis(id, signal);
  const nGroups = entry.analysis?.n_groups ?? 0;
  root.append(pageHead(`SAE #${id} · group ${g}`, h('span', { class: 'muted' }, saeSubtitle(entry)),
    h('div', { class: 'actions' },
      g > 0 ? link(`#/saes/${id}/groups/${g - 1}`, h('button', { id: 'prev-group' }, `← group ${g - 1}`)) : null,
      g + 1 < nGroups ? link(`#/saes/${id}/groups/${g + 1}`, h('button', { id: 'next-group' }, `group ${g + 1} →`)) : null,
      entry.analysis ? link(`#/saes/${id}/jaccard?group=${g}`, h('button', { class: 'primary', id: 'open-jaccard' }, 'Jaccard with neighbours')) : null)),
  saeTabs(id, 'groups'));
  if (!entry.analysis) { root.append(noAnalysisNote(id)); return; }

  const [grp, proj] = await Promise.all([get(`/saes/${id}/groups/${g}`, signal), get(`/saes/${id}/groups/${g}/projection?limit=500`, signal)]);
  const charts = [];
  onCleanup(() => charts.forEach((c) => c.destroy()));
  const fig = (key, title, note) => {
    const body = h('div', { 'data-fig': key });
    return { body, card: h('div', { class: 'card' }, h('h2', {}, title), note ? h('p', { class: 'small muted' }, note) : null, body) };
  };
  const cos = fig('cosine', 'Decoder cosines between members');
  const sv = fig('singular', 'Singular values of the members\' decoder rows');
  const plane = fig('plane', 'Members in the group\'s plane', 'Each member\'s decoder row in the plane\'s orthonormal basis (top two right singular vectors); the dashed circle has radius 1.');
  const pr = fig('projection', 'Rows where the group fires, projected on its plane',
    `The first ${int(proj.points.length)} analysed rows (of ${int(proj.n_samples)}) where any member fires, as (x − b_dec) · plane; arrows: the members' directions.`);
  root.append(statsCard(grp, entry), h('div', { class: 'grid2', id: 'group-figs' }, cos.card, sv.card, plane.card, pr.card));

  const names = grp.members.map((m) => `#${m}`);
  charts.push(heatmap(cos.body, { rows: names, values: grp.cosine, domain: [-1, 1], scheme: 'diverging', name: 'cosine' }));
  charts.push(barChart(sv.body, { categories: grp.singular_values.map((_, i) => `σ${i + 1}`), height: 200, yLabel: 'singular value',
    series: [{ label: 'σ', values: grp.singular_values, color: categoryColor(4) }] }));
  charts.push(scatter(plane.body, {
    xs: [], ys: [], equal: true, unitCircle: true, height: 320, xLabel: 'plane axis 1', yLabel: 'plane axis 2',
    arrows: grp.coords.map(([u, v], i) => ({ x: u, y: v, label: `#${grp.members[i]}`, color: categoryColor(i) })),
  }));
  plane.body.dataset.arrows = String(grp.coords.length);
  charts.push(projectionFigure(pr, proj, grp));
  root.append(await membersCard(id, grp, entry, signal));
}

function statsCard(grp, entry) {
  const sv2 = grp.singular_values.map((s) => s * s), tot = sv2.reduce((a, b) => a + b, 0);
  const planar = tot > 0 ? (sv2[0] + (sv2[1] ?? 0)) / tot : null;
  return h('div', { class: 'card', id: 'group-stats' }, h('div', { class: 'stats' },
    stat('Members', grp.members.join(', '), { 'data-stat': 'members' }),
    stat('Density', num(grp.density, 3), { 'data-stat': 'density' }),
    stat('Jaccard (within)', num(grp.jaccard, 3), { 'data-stat': 'jaccard' }),
    stat('Max cosine', num(grp.max_cos, 3)),
    stat('Energy in the top 2 singular values', planar == null ? DASH : pct(planar)),
    entry.recovery ? stat('Best circle', grp.circle == null ? DASH : String(grp.circle), { 'data-stat': 'circle' }) : null,
    entry.recovery ? stat('Plane fit', grp.plane_fit == null ? DASH : num(grp.plane_fit, 3)) : null));
}

function projectionFigure(pr, proj, grp) {
  const n = proj.points.length;
  const xs = new Float32Array(n), ys = new Float32Array(n);
  proj.points.forEach(([u, v], i) => { xs[i] = u; ys[i] = v; });
  let radius = 0;
  for (let i = 0; i < n; i++) radius = Math.max(radius, Math.hypot(xs[i], ys[i]));
  const arrows = grp.coords.map(([u, v], i) => {
    const len = Math.hypot(u, v) || 1;
    return { x: (u / len) * radius * 0.9, y: (v / len) * radius * 0.9, label: `#${grp.members[i]}`, color: INK };
  });
  const spec = { xs, ys, equal: true, height: 360, xLabel: 'plane axis 1', yLabel: 'plane axis 2', arrows: radius > 0 ? arrows : [] };
  const labels = proj.labels;
  if (labels) {
    const cats = labelCounts(labels);
    const index = new Map(cats.map((c, k) => [c.label, k]));
    spec.color = Uint16Array.from(labels, (l) => index.get(l ?? ''));
    spec.colors = cats.map((_, k) => categoryColor(k));
    spec.hidden = new Set();
    spec.tip = (i) => `row ${proj.rows[i]} · ${labels[i] ?? '(no label)'}\n(${xs[i].toFixed(3)}, ${ys[i].toFixed(3)})`;
    const chart = scatter(pr.body, spec);
    pr.card.append(h('div', { id: 'projection-legend' }, legend(cats.map((c, k) => ({ label: c.label, count: c.count, color: spec.colors[k], key: k })), {
      hidden: spec.hidden,
      onToggle: (k) => { spec.hidden.has(k) ? spec.hidden.delete(k) : spec.hidden.add(k); chart.update({ hidden: spec.hidden }); },
    })));
    return chart;
  }
  spec.tip = (i) => `row ${proj.rows[i]}\n(${xs[i].toFixed(3)}, ${ys[i].toFixed(3)})`;
  spec.colors = [categoryColor(0)];
  return scatter(pr.body, spec);
}

/* One row per member: the latent's statistics, activation histogram and nearest latents. */
async function membersCard(id, grp, entry, signal) {
  const card = h('div', { class: 'card', id: 'members' }, h('h2', {}, 'Members'));
  const shown = grp.members.slice(0, MAX_MEMBER_DETAILS);
  let latents;
  try {
    latents = await Promise.all(shown.map((m) => get(`/saes/${id}/latents/${m}`, signal)));
  } catch (e) {
    if (isAbort(e)) throw e;
    card.append(errorBox(e));
    return card;
  }
  const own = entry.analysis.cluster == null;   /* the SAE's own groups: latent j is in group j / group_size */
  const neighbour = ([j, v]) => h('span', { class: 'nb' },
    own ? link(`#/saes/${id}/groups/${Math.floor(j / entry.group_size)}`, `#${j}`) : `#${j}`, ` ${num(v, 2)}`);
  const list3 = (pairs) => (pairs?.length ? pairs.slice(0, 4).map(neighbour) : DASH);
  fill(card, h('h2', {}, 'Members'), dataTable(
    [{ label: 'Latent' }, { label: 'Density', num: true }, { label: 'Mean act', num: true }, { label: 'Max act', num: true },
      { label: 'Activations (rows where it fires)' }, { label: 'Nearest by decoder cosine' }, { label: 'Nearest by Jaccard' }],
    latents.map((l) => [`#${l.latent}`, num(l.density, 3), num(l.mean_act, 3), num(l.max_act, 3),
      sparkBars(l.histogram?.counts ?? [], { title: l.histogram ? `0 … ${num(l.histogram.edges.at(-1), 3)} in ${l.histogram.counts.length} bins` : '' }),
      h('span', {}, list3(l.neighbors_cos)), h('span', {}, list3(l.neighbors_jaccard))]),
    'No members.'));
  if (grp.members.length > shown.length) card.append(h('p', { class: 'small muted' }, `The first ${shown.length} of ${grp.members.length} members.`));
  return card;
}
