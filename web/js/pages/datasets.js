// web/js/pages/datasets.js — #/datasets: every dataset, with "train on it" and delete.
import { list, del, isAbort } from '../api.js';
import { h, fill, link } from '../dom.js';
import { int, time } from '../fmt.js';
import { pageHead, dataTable, errorBox } from '../ui.js';

const COLUMNS = [
  { label: 'Dataset' }, { label: 'Name' }, { label: 'Kind' }, { label: 'Dim', num: true }, { label: 'Rows', num: true },
  { label: 'Parameters' }, { label: 'Labels' }, { label: 'Created' }, { label: '' },
];

function paramsText(p) {
  if (!p || typeof p !== 'object') return '';
  return Object.entries(p).map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.join(', ')}]` : v}`).join('  ');
}

export async function mount(root, { signal }) {
  document.title = 'Datasets · saed';
  const alertEl = h('div', {});
  const body = h('div', { class: 'card', id: 'datasets-table' });
  root.append(pageHead('Datasets', h('div', { class: 'actions' }, link('#/jobs/new', h('button', { class: 'primary' }, 'New circles dataset and job')))),
    alertEl, body);

  async function remove(d) {
    if (!window.confirm(`Delete dataset #${d.id} ${d.name}?`)) return;
    try { await del(`/datasets/${d.id}`, signal); await render(); } catch (e) { if (!isAbort(e)) fill(alertEl, errorBox(e)); }
  }

  async function render() {
    const datasets = (await list('/datasets', signal)).sort((a, b) => b.id - a.id);
    fill(body, dataTable(COLUMNS, datasets.map((d) => [
      `#${d.id}`, d.name, d.kind, int(d.dim), d.n_rows == null ? 'endless' : int(d.n_rows),
      h('code', { class: 'small' }, paramsText(d.params ?? { path: d.path })), d.has_labels ? 'yes' : 'no',
      h('span', { class: 'muted' }, time(d.created_at)),
      h('span', {}, link(`#/jobs/new?dataset=${d.id}`, 'train'), ' · ', h('a', { href: '', onclick: (e) => { e.preventDefault(); remove(d); } }, 'delete')),
    ]), 'No datasets yet.'));
  }
  await render();
}
