// web/js/pages/groups.js — #/saes/{id}/groups[?sort=KEY]: every group of an
// analysed SAE in a sortable, paged table (density, within-group Jaccard,
// largest decoder cosine between members, best-fitting ground-truth circle).
//
// The API sorts and pages by group, density and jaccard itself
// (GET .../groups?sort=&limit=&after=, "next" cursors kept on a stack for the
// way back). It does not sort by max cosine or circle, so for those the page
// reads every group once and sorts and pages in the browser.
import { get, list, isAbort } from '../api.js';
import { h, fill, link } from '../dom.js';
import { int, num, DASH } from '../fmt.js';
import { pageHead, errorBox } from '../ui.js';
import { saeTabs, saeWithAnalysis, saeSubtitle, noAnalysisNote } from '../analysis.js';

const PAGE = 50;
const fixed = (v) => (v == null ? DASH : v.toFixed(3));
/* key, heading, where it sorts, comparison for browser sorts */
const COLUMNS = [
  { key: 'group', label: 'Group', server: true },
  { key: 'members', label: 'Members' },
  { key: 'density', label: 'Density', server: true, num: true },
  { key: 'jaccard', label: 'Jaccard (within)', server: true, num: true },
  { key: 'max_cos', label: 'Max cosine', num: true, cmp: (a, b) => b.max_cos - a.max_cos || a.group - b.group },
  { key: 'circle', label: 'Best circle', num: true, cmp: (a, b) => (a.circle ?? Infinity) - (b.circle ?? Infinity) || (b.plane_fit ?? 0) - (a.plane_fit ?? 0) || a.group - b.group },
  { key: 'plane_fit', label: 'Plane fit', num: true, cmp: (a, b) => (b.plane_fit ?? -1) - (a.plane_fit ?? -1) || a.group - b.group },
];
const SORT_HINT = { group: 'by index', density: 'densest first', jaccard: 'largest first', max_cos: 'largest first', circle: 'by circle, best fit first', plane_fit: 'best fit first' };

export async function mount(root, { params, query, signal, navigate }) {
  const id = Number(params.id);
  document.title = `Groups · SAE ${id} · saed`;
  const entry = await saeWithAnalysis(id, signal);
  root.append(pageHead(`SAE #${id} · groups`, h('span', { class: 'muted' }, saeSubtitle(entry))), saeTabs(id, 'groups'));
  if (!entry.analysis) { root.append(noAnalysisNote(id)); return; }

  const sort = COLUMNS.some((c) => c.key === query.sort && (c.server || c.cmp)) ? query.sort : 'group';
  const col = COLUMNS.find((c) => c.key === sort);
  const total = entry.analysis.n_groups;
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading groups…'));
  const pager = h('div', { class: 'pager' });
  const alertEl = h('div', {});
  root.append(alertEl, h('div', { class: 'card', id: 'groups-card' },
    h('p', { class: 'small muted' }, `${int(total)} groups of ${entry.analysis.group_size} from ${int(entry.analysis.n_samples)} analysed rows; `,
      `sorted ${SORT_HINT[sort]}${col.server ? '' : ' (in the browser)'}. Click a heading to sort, a row to open the group.`),
    body, pager));

  const circles = entry.recovery != null;
  const head = h('thead', {}, h('tr', {}, COLUMNS.filter((c) => circles || (c.key !== 'circle' && c.key !== 'plane_fit')).map((c) => {
    const sortable = c.server || c.cmp;
    return h('th', { class: c.num ? 'num' : null, 'data-sort': c.key, 'aria-sort': c.key === sort ? (c.key === 'group' || c.key === 'circle' ? 'ascending' : 'descending') : null },
      sortable ? h('a', { href: `#/saes/${id}/groups?sort=${c.key}` }, c.label, c.key === sort ? (c.key === 'group' || c.key === 'circle' ? ' ▲' : ' ▼') : '') : c.label);
  })));

  const row = (g) => h('tr', { 'data-group': g.group, class: 'clickable', onclick: (ev) => { if (!ev.target.closest('a')) navigate(`#/saes/${id}/groups/${g.group}`); } },
    h('td', {}, link(`#/saes/${id}/groups/${g.group}`, `#${g.group}`)),
    h('td', { class: 'mono small' }, g.members.length > 8 ? `${g.members.slice(0, 8).join(', ')}, …` : g.members.join(', ')),
    h('td', { class: 'num', 'data-col': 'density' }, num(g.density, 3)),
    h('td', { class: 'num', 'data-col': 'jaccard' }, fixed(g.jaccard)),
    h('td', { class: 'num', 'data-col': 'max_cos' }, fixed(g.max_cos)),
    circles ? h('td', { class: 'num', 'data-col': 'circle' }, g.circle == null ? DASH : String(g.circle)) : null,
    circles ? h('td', { class: 'num', 'data-col': 'plane_fit' }, g.plane_fit == null ? DASH : fixed(g.plane_fit)) : null);

  const show = (items, from) => {
    fill(body, h('table', { id: 'groups-table' }, head, h('tbody', {}, items.map(row))));
    return items.length ? `groups ${int(from + 1)}–${int(from + items.length)} of ${int(total)}` : 'no more groups';
  };
  const pages = col.server ? serverPages(id, sort, signal) : await browserPages(id, total, col.cmp, signal);
  let index = 0;
  async function go(k) {
    try {
      const { items, hasNext } = await pages.get(k);
      index = k;
      const text = show(items, k * PAGE);
      fill(pager,
        h('button', { id: 'prev-page', disabled: index === 0, onclick: () => go(index - 1) }, '← Previous'),
        h('span', { class: 'muted' }, text),
        h('button', { id: 'next-page', disabled: !hasNext || !items.length, onclick: () => go(index + 1) }, 'Next →'));
    } catch (e) {
      if (!isAbort(e)) fill(alertEl, errorBox(e));
    }
  }
  await go(0);
}

/* Pages from the API, following its "next" cursors (kept, so Previous needs no cursor arithmetic). */
function serverPages(id, sort, signal) {
  const cursors = [null];
  return {
    async get(k) {
      const after = cursors[k];
      const page = await get(`/saes/${id}/groups?sort=${sort}&limit=${PAGE}${after != null ? `&after=${after}` : ''}`, signal);
      cursors[k + 1] = page.next;
      return { items: page.items, hasNext: page.next != null };
    },
  };
}

/* Every group read once, sorted here. */
async function browserPages(id, total, cmp, signal) {
  const all = (await list(`/saes/${id}/groups`, signal, Math.max(total, 1))).sort(cmp);
  return { async get(k) { return { items: all.slice(k * PAGE, (k + 1) * PAGE), hasNext: (k + 1) * PAGE < all.length }; } };
}
