// web/js/pages/jaccard.js — #/saes/{id}/jaccard?group=G | ?latents=1,2,3:
// the exact Jaccard co-activation of a chosen set of latents as a heatmap.
//
// "A group and its neighbours": the group's members first, then the latents
// nearest to them (by co-activation, or by decoder cosine), read from each
// member's neighbour lists and merged best first; lines separate the group
// from its neighbours. Or any list of latents typed in. The matrix itself is
// GET /v1/saes/{id}/jaccard?latents=… (at most 256).
import { get } from '../api.js';
import { h, fill, link } from '../dom.js';
import { num } from '../fmt.js';
import { pageHead, errorBox } from '../ui.js';
import { heatmap } from '../heatmap.js';
import { saeTabs, saeWithAnalysis, saeSubtitle, noAnalysisNote } from '../analysis.js';

const MAX_LATENTS = 256, DEFAULT_NEIGHBOURS = 12;

/* Members of group g, then up to k latents nearest to them by `by` ('jaccard' | 'cos'). */
async function groupAndNeighbours(id, g, k, by, signal) {
  const grp = await get(`/saes/${id}/groups/${g}`, signal);
  const details = await Promise.all(grp.members.slice(0, 32).map((m) => get(`/saes/${id}/latents/${m}`, signal)));
  const best = new Map();
  for (const d of details) {
    for (const [j, v] of (by === 'cos' ? d.neighbors_cos : d.neighbors_jaccard) ?? []) {
      if (grp.members.includes(j)) continue;
      best.set(j, Math.max(best.get(j) ?? -Infinity, v));
    }
  }
  const near = [...best.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, k).map(([j]) => j);
  return { latents: [...grp.members, ...near], nMembers: grp.members.length };
}

function parseList(text) {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  const bad = parts.find((p) => !/^\d+$/.test(p));
  if (bad) throw new Error(`"${bad}" is not a latent index: give non-negative integers separated by commas.`);
  const out = [...new Set(parts.map(Number))];
  if (out.length < 1) throw new Error('Give at least one latent.');
  if (out.length > MAX_LATENTS) throw new Error(`At most ${MAX_LATENTS} latents at once (got ${out.length}).`);
  return out;
}

export async function mount(root, { params, query, signal, onCleanup, navigate }) {
  const id = Number(params.id);
  document.title = `Jaccard · SAE ${id} · saed`;
  const entry = await saeWithAnalysis(id, signal);
  root.append(pageHead(`SAE #${id} · Jaccard co-activation`, h('span', { class: 'muted' }, saeSubtitle(entry))), saeTabs(id, 'jaccard'));
  if (!entry.analysis) { root.append(noAnalysisNote(id)); return; }

  const group = query.group != null && /^\d+$/.test(query.group) ? Number(query.group) : null;
  const by = query.by === 'cos' ? 'cos' : 'jaccard';
  const k = Math.min(100, Math.max(0, Number(query.k ?? DEFAULT_NEIGHBOURS) || 0));
  const gIn = h('input', { id: 'jac-group', type: 'number', min: 0, step: 1, value: group ?? (query.latents ? '' : '0') });
  const kIn = h('input', { id: 'jac-k', type: 'number', min: 0, max: 100, step: 1, value: String(k) });
  const bySel = h('select', { id: 'jac-by' }, h('option', { value: 'jaccard', selected: by === 'jaccard' }, 'co-activation (Jaccard)'),
    h('option', { value: 'cos', selected: by === 'cos' }, 'decoder cosine'));
  const lIn = h('input', { id: 'jac-latents', type: 'text', placeholder: 'e.g. 4, 5, 17, 80', value: query.latents ?? '' });
  const field = (label, input) => h('div', { class: 'field' }, h('label', { for: input.id }, label), input);
  const out = h('div', { 'data-fig': 'jaccard' });
  const note = h('p', { class: 'small muted' });
  const alertEl = h('div', {});
  root.append(
    h('div', { class: 'row' },
      h('form', { class: 'card', id: 'jac-group-form', onsubmit: (e) => { e.preventDefault(); navigate(`#/saes/${id}/jaccard?group=${gIn.value || 0}&k=${kIn.value || 0}&by=${bySel.value}`); } },
        h('h2', {}, 'A group and its neighbours'),
        h('div', { class: 'fields' }, field('Group', gIn), field('Neighbours', kIn), field('Nearest by', bySel)),
        h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', id: 'jac-show-group' }, 'Show'))),
      h('form', { class: 'card', id: 'jac-list-form', onsubmit: (e) => { e.preventDefault(); navigate(`#/saes/${id}/jaccard?latents=${encodeURIComponent(lIn.value.trim())}`); } },
        h('h2', {}, 'Chosen latents'),
        h('div', { class: 'fields' }, field('Latents', lIn)),
        h('div', { class: 'form-actions' }, h('button', { type: 'submit', id: 'jac-show-list' }, 'Show')))),
    alertEl,
    h('div', { class: 'card' }, h('h2', {}, 'Jaccard matrix'), note, out));

  let chosen;
  try {
    chosen = query.latents ? { latents: parseList(query.latents), nMembers: 0 }
      : await groupAndNeighbours(id, group ?? 0, k, by, signal);
    if (chosen.latents.some((l) => l >= entry.n_latents)) throw new Error(`Latent indices must be below ${entry.n_latents}.`);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    fill(alertEl, errorBox(e));
    return;
  }
  const jac = await get(`/saes/${id}/jaccard?latents=${chosen.latents.join(',')}`, signal);
  const names = jac.latents.map((l) => `#${l}`);
  const own = entry.analysis.cluster == null;
  fill(note, chosen.nMembers ? [`Group ${group ?? 0} (`, link(`#/saes/${id}/groups/${group ?? 0}`, 'open'), `): latents ${jac.latents.slice(0, chosen.nMembers).join(', ')}; `,
    `then its ${jac.latents.length - chosen.nMembers} nearest latents by ${by === 'cos' ? 'decoder cosine' : 'co-activation'}. `] : '',
  `J = rows where both fire / rows where either fires, over ${num(jac.n_samples)} analysed rows. Hover a cell for its value.`);
  const chart = heatmap(out, {
    rows: names, values: jac.matrix, domain: [0, 1], scheme: 'sequential', name: 'Jaccard',
    breaks: chosen.nMembers && chosen.nMembers < jac.latents.length ? [chosen.nMembers] : [],
    tip: (i, j, v) => `#${jac.latents[i]} × #${jac.latents[j]}\nJaccard ${v.toFixed(4)}`
      + (own ? `\ngroups ${Math.floor(jac.latents[i] / entry.group_size)} and ${Math.floor(jac.latents[j] / entry.group_size)}` : ''),
  });
  onCleanup(() => chart.destroy());
}
