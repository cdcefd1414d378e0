// web/js/pages/saes.js — #/saes: every trained SAE with its shape and final metrics.
import { list } from '../api.js';
import { h, link } from '../dom.js';
import { int, num, pct, time, DASH } from '../fmt.js';
import { pageHead, dataTable } from '../ui.js';

const COLUMNS = [
  { label: 'SAE' }, { label: 'Arch' }, { label: 'Latents', num: true }, { label: 'Group', num: true },
  { label: 'Dim', num: true }, { label: 'Dataset' }, { label: 'Job' }, { label: 'FVE', num: true },
  { label: 'L0', num: true }, { label: 'Dead', num: true }, { label: 'Created' },
];

export async function mount(root, { signal }) {
  document.title = 'SAEs · saed';
  const saes = (await list('/saes', signal)).sort((a, b) => b.id - a.id);
  const rows = saes.map((s) => [
    link(`#/saes/${s.id}`, `#${s.id}`), s.config?.arch, int(s.n_latents), int(s.group_size), int(s.dim),
    s.dataset == null ? DASH : link('#/datasets', `#${s.dataset}`), s.job == null ? DASH : link(`#/jobs/${s.job}`, `#${s.job}`), num(s.metrics?.fve),
    num(s.metrics?.l0, 3), pct(s.metrics?.dead_frac), h('span', { class: 'muted' }, time(s.created_at)),
  ]);
  root.append(pageHead('SAEs'),
    h('div', { class: 'card', id: 'saes-table' }, dataTable(COLUMNS, rows, 'No SAEs yet: a training job that succeeds makes one (or POST /v1/saes imports a SAELens folder).')));
}
