// web/js/pages/pca.js — #/saes/{id}/pca[?analysis=N&x=1&y=2]: run a pca job
// from the page and look at its result.
//
// The form chooses the rows (by label, with each label's row count, for a
// labelled dataset; else a range of row indices), how many of the latents
// that fire most on them to keep, and how many components. The job runs live
// on the page; when it succeeds its analysis is drawn: a scatter of any pair
// of components (PC3 vs PC4 as easily as PC1 vs PC2) coloured by label, with
// a legend that hides and shows labels, and the explained variance per
// component. Earlier PCA runs of this SAE are listed to reopen.
import { get, getNpy, post, list, isAbort } from '../api.js';
import { h, fill, link } from '../dom.js';
import { int, num, pct, time } from '../fmt.js';
import { pageHead, errorBox, dataTable } from '../ui.js';
import { scatter } from '../scatter.js';
import { barChart } from '../bars.js';
import { categoryColor, legend } from '../plot.js';
import { saeTabs, saeWithAnalysis, saeSubtitle, jobLine, labelCounts } from '../analysis.js';

const LABEL_PAGE = 100000, LABELS_MAX = 1000000, MAX_ROWS = 50000;

export async function mount(root, ctx) {
  const id = Number(ctx.params.id);
  document.title = `PCA · SAE ${id} · saed`;
  const entry = await saeWithAnalysis(id, ctx.signal);
  const datasets = (await list('/datasets', ctx.signal)).filter((d) => d.dim === entry.dim).sort((a, b) => a.id - b.id);
  const resultEl = h('div', { id: 'pca-result' });
  const runsEl = h('div', { class: 'card', id: 'pca-runs' });
  const page = { id, entry, ctx, resultEl, runsEl, charts: [] };
  ctx.onCleanup(() => page.charts.forEach((c) => c.destroy()));

  root.append(pageHead(`SAE #${id} · PCA`, h('span', { class: 'muted' }, saeSubtitle(entry))), saeTabs(id, 'pca'),
    h('div', { class: 'row' }, runForm(page, datasets), runsEl), resultEl);
  const runs = await showRuns(page);
  const want = Number(ctx.query.analysis) || runs[0]?.result?.analysis;
  if (want) await showAnalysis(page, want, Number(ctx.query.x) || 1, Number(ctx.query.y) || 2);
  else fill(resultEl, h('div', { class: 'card note' }, 'No PCA of this SAE yet: choose rows above and run one.'));
}

/* Succeeded pca jobs of this SAE, newest first, as a table; returns them. */
async function showRuns(page) {
  const { id, ctx, runsEl } = page;
  const jobs = (await list('/jobs?state=succeeded', ctx.signal, 1000))
    .filter((j) => j.type === 'pca' && j.spec?.sae === id && j.result?.analysis != null).sort((a, b) => b.id - a.id);
  const rowsText = (r) => (r?.labels ? `${r.labels.slice(0, 3).join(', ')}${r.labels.length > 3 ? ` +${r.labels.length - 3}` : ''}` : `${int(r?.indices?.length)} rows by index`);
  fill(runsEl, h('h2', {}, 'Earlier runs'), dataTable(
    [{ label: 'Analysis' }, { label: 'Rows' }, { label: 'Latents', num: true }, { label: 'PCs', num: true }],
    jobs.slice(0, 20).map((j) => [link(`#/saes/${id}/pca?analysis=${j.result.analysis}`, `#${j.result.analysis}`),
      h('span', { class: 'small', title: `dataset #${j.spec.dataset}, finished ${time(j.finished_at)}` }, `dataset #${j.spec.dataset}: ${rowsText(j.spec.rows)}`),
      int(j.spec.top_latents), int(j.spec.components)]),
    'None yet.'));
  return jobs;
}

/* ---- the form ---- */

function runForm(page, datasets) {
  const { id, entry, ctx } = page;
  const dsSel = h('select', { id: 'pca-dataset' }, datasets.map((d) => h('option', { value: d.id, selected: d.id === entry.dataset },
    `#${d.id} ${d.name}${d.has_labels ? ' · labelled' : ''}`)));
  const rowsEl = h('div', { id: 'pca-rows' });
  const topIn = h('input', { id: 'pca-top', type: 'number', min: 1, max: 512, step: 1, value: '25' });
  const compIn = h('input', { id: 'pca-components', type: 'number', min: 1, step: 1, value: '5' });
  const btn = h('button', { type: 'submit', class: 'primary', id: 'run-pca' }, 'Run PCA');
  const status = h('div', {});
  const field = (label, input, hint) => h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hint ? h('div', { class: 'hint' }, hint) : null);
  let rowsSpec = () => null;

  async function chooseDataset() {
    const d = datasets.find((x) => String(x.id) === dsSel.value);
    fill(rowsEl, h('p', { class: 'muted' }, 'Reading labels…'));
    try {
      rowsSpec = d?.has_labels ? await labelChooser(rowsEl, d, ctx.signal) : indexChooser(rowsEl, d);
    } catch (e) { if (!isAbort(e)) fill(rowsEl, errorBox(e)); }
  }
  dsSel.addEventListener('change', chooseDataset);

  const form = h('form', { class: 'card', id: 'pca-form' }, h('h2', {}, 'Run a PCA'),
    h('p', { class: 'small muted' }, 'Encodes the rows chosen, keeps the latents that fire most on them, rebuilds each row from those latents alone and runs PCA on the rebuilt rows.'),
    h('div', { class: 'fields' }, field('Dataset', dsSel), field('Top latents', topIn, '1 … 512'), field('Components', compIn)),
    rowsEl, h('div', { class: 'form-actions' }, btn), status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(status);
    let rows;
    try { rows = rowsSpec(); } catch (e) { fill(status, errorBox(e)); return; }
    btn.disabled = true;
    try {
      const job = await post('/jobs', { type: 'pca', sae: id, dataset: Number(dsSel.value), rows, top_latents: Number(topIn.value), components: Number(compIn.value) }, ctx.signal);
      fill(status, jobLine(job, { onCleanup: ctx.onCleanup, onEnd: async (j) => {
        btn.disabled = false;
        if (j.state !== 'succeeded') return;
        history.replaceState(null, '', `#/saes/${id}/pca?analysis=${j.result.analysis}`);
        try { await showRuns(page); await showAnalysis(page, j.result.analysis, 1, 2); } catch (e) { if (!isAbort(e)) fill(status, errorBox(e)); }
      } }));
    } catch (e) {
      if (isAbort(e)) return;
      btn.disabled = false;
      fill(status, errorBox(e.errors?.length ? new Error(e.errors.map((x) => `${x.field}: ${x.message}`).join('\n')) : e));
    }
  });
  chooseDataset();
  return form;
}

/* Checkboxes, one per label with its row count; returns () => {labels}. */
async function labelChooser(el, d, signal) {
  const labels = [];
  let total = Infinity;
  while (labels.length < Math.min(total, LABELS_MAX)) {
    const p = await get(`/datasets/${d.id}/labels?offset=${labels.length}&limit=${LABEL_PAGE}`, signal);
    total = p.total;
    if (!p.items.length) break;
    labels.push(...p.items);
  }
  const counts = labelCounts(labels);
  const boxes = counts.map((c, k) => h('input', { type: 'checkbox', value: c.label, checked: k < 12, 'data-label': c.label }));
  const filterIn = h('input', { type: 'search', id: 'pca-label-filter', placeholder: 'filter labels' });
  const items = counts.map((c, k) => h('label', { class: 'check', 'data-label': c.label }, boxes[k], ` ${c.label || '(empty)'} `, h('span', { class: 'muted' }, int(c.count))));
  const chosen = h('span', { class: 'muted small' });
  const update = () => {
    const n = counts.reduce((s, c, k) => s + (boxes[k].checked ? c.count : 0), 0);
    fill(chosen, `${int(boxes.filter((b) => b.checked).length)} labels, ${int(n)} rows${n > MAX_ROWS ? ` (the first ${int(MAX_ROWS)} are used)` : ''}`);
  };
  const setAll = (v) => { items.forEach((it, k) => { if (!it.hidden) boxes[k].checked = v; }); update(); };
  filterIn.addEventListener('input', () => {
    const q = filterIn.value.toLowerCase();
    items.forEach((it, k) => { it.hidden = q !== '' && !counts[k].label.toLowerCase().includes(q); });
  });
  boxes.forEach((b) => b.addEventListener('change', update));
  fill(el, h('div', { class: 'field' }, h('label', {}, `Rows by label (${int(counts.length)} labels${total > labels.length ? `, counted over the first ${int(labels.length)} rows` : ''})`),
    h('div', { class: 'label-tools' }, filterIn, h('button', { type: 'button', onclick: () => setAll(true) }, 'all'), h('button', { type: 'button', onclick: () => setAll(false) }, 'none'), chosen),
    h('div', { class: 'checks', id: 'pca-labels' }, items)));
  update();
  return () => {
    const want = counts.filter((_, k) => boxes[k].checked).map((c) => c.label);
    if (!want.length) throw new Error('Choose at least one label.');
    return { labels: want };
  };
}

/* A range of row indices (datasets without labels); returns () => {indices}. */
function indexChooser(el, d) {
  const n = d?.n_rows ?? Infinity;
  const offIn = h('input', { id: 'pca-offset', type: 'number', min: 0, step: 1, value: '0' });
  const cntIn = h('input', { id: 'pca-count', type: 'number', min: 2, max: MAX_ROWS, step: 1, value: String(Math.min(n, 5000)) });
  fill(el, h('p', { class: 'small muted' }, 'This dataset has no labels: choose a range of rows (the scatter is drawn in one colour).'),
    h('div', { class: 'fields' },
      h('div', { class: 'field' }, h('label', { for: 'pca-offset' }, 'First row'), offIn),
      h('div', { class: 'field' }, h('label', { for: 'pca-count' }, 'Rows'), cntIn, h('div', { class: 'hint' }, `2 … ${int(Math.min(n, MAX_ROWS))}`))));
  return () => {
    const off = Number(offIn.value), cnt = Number(cntIn.value);
    if (!(Number.isInteger(off) && off >= 0 && Number.isInteger(cnt) && cnt >= 2 && cnt <= MAX_ROWS && off + cnt <= n))
      throw new Error(`Choose whole numbers: a first row ≥ 0 and 2 … ${int(MAX_ROWS)} rows within the dataset's ${int(n)}.`);
    return { indices: Array.from({ length: cnt }, (_, k) => off + k) };
  };
}

/* ---- the result ---- */

async function showAnalysis(page, aid, px, py) {
  const { id, ctx, resultEl } = page;
  page.charts.splice(0).forEach((c) => c.destroy());
  fill(resultEl, h('p', { class: 'muted' }, `Loading analysis #${aid}…`));
  const [a, pts] = await Promise.all([get(`/analyses/${aid}`, ctx.signal), getNpy(`/analyses/${aid}/points.npy`, ctx.signal)]);
  const [n, k] = pts.shape;
  const comp = (c) => Math.min(Math.max(1, c), k);
  let cx = comp(px), cy = comp(py === px && k > 1 ? (px % k) + 1 : py);
  const ratio = a.explained_variance_ratio ?? [];
  const share = (r) => (r >= 0.01 ? pct(r) : `${Number((r * 100).toPrecision(2))}%`);
  const pcName = (c) => `PC${c}${ratio[c - 1] != null ? ` (${share(ratio[c - 1])})` : ''}`;
  const sel = (sid, v) => h('select', { id: sid }, Array.from({ length: k }, (_, i) => h('option', { value: i + 1, selected: i + 1 === v }, pcName(i + 1))));
  const xSel = sel('pca-x', cx), ySel = sel('pca-y', cy);
  const column = (c) => { const out = new Float32Array(n); for (let i = 0; i < n; i++) out[i] = pts.data[i * k + c - 1]; return out; };

  const scatterEl = h('div', { 'data-fig': 'pca' });
  const varEl = h('div', { 'data-fig': 'variance' });
  const legendEl = h('div', { id: 'pca-legend' });
  const spec = { xs: column(cx), ys: column(cy), xLabel: pcName(cx), yLabel: pcName(cy), height: 460, hidden: new Set() };
  const labels = a.labels;
  const cats = labels ? labelCounts(labels) : [];
  if (labels) {
    const index = new Map(cats.map((c, j) => [c.label, j]));
    spec.color = Uint16Array.from(labels, (l) => index.get(l ?? ''));
    spec.colors = cats.map((_, j) => categoryColor(j));
  } else spec.colors = [categoryColor(0)];
  spec.tip = (i) => `row ${a.rows?.[i] ?? i}${labels ? ` · ${labels[i] ?? '(no label)'}` : ''}\nPC${cx} ${spec.xs[i].toFixed(3)}, PC${cy} ${spec.ys[i].toFixed(3)}`;

  fill(resultEl, h('div', { class: 'card', id: 'pca-view', 'data-analysis': aid },
    h('div', { class: 'page-head' }, h('h2', {}, `Analysis #${aid}`), h('span', { class: 'muted small' },
      `${int(n)} rows of dataset #${a.dataset} · ${int(a.latents.length)} latents kept · ${k} components · job #${a.job}`),
    h('div', { class: 'actions' }, h('label', { for: 'pca-x' }, 'x '), xSel, h('label', { for: 'pca-y' }, ' y '), ySel)),
    scatterEl, legendEl),
  h('div', { class: 'grid2' },
    h('div', { class: 'card' }, h('h2', {}, 'Explained variance'), varEl),
    h('div', { class: 'card' }, h('h2', {}, 'Latents kept'), h('p', { class: 'small mono', id: 'pca-latents' }, a.latents.join(', ')),
      h('p', {}, link(`#/saes/${id}/jaccard?latents=${a.latents.slice(0, 64).join(',')}`, 'Their Jaccard co-activation')))));

  const chart = scatter(scatterEl, spec);
  page.charts.push(chart);
  if (labels) {
    fill(legendEl, legend(cats.map((c, j) => ({ label: c.label || '(empty)', count: c.count, color: spec.colors[j], key: j })), {
      hidden: spec.hidden, max: 60,
      onToggle: (j) => { spec.hidden.has(j) ? spec.hidden.delete(j) : spec.hidden.add(j); chart.update({ hidden: spec.hidden }); },
    }));
  }
  page.charts.push(barChart(varEl, { categories: Array.from({ length: k }, (_, i) => `PC${i + 1}`), height: 200, yLabel: 'share of variance',
    series: [{ label: 'explained variance ratio', values: ratio.length ? ratio : a.explained_variance, color: categoryColor(2) }],
    yFmt: ratio.length ? (v) => `${Math.round(v * 100)}%` : undefined,
    tip: (i) => `variance ${num(a.explained_variance[i], 4)}` }));

  const redraw = () => {
    cx = Number(xSel.value); cy = Number(ySel.value);
    history.replaceState(null, '', `#/saes/${id}/pca?analysis=${aid}&x=${cx}&y=${cy}`);
    Object.assign(spec, { xs: column(cx), ys: column(cy), xLabel: pcName(cx), yLabel: pcName(cy) });
    chart.update({ xs: spec.xs, ys: spec.ys, xLabel: spec.xLabel, yLabel: spec.yLabel });
  };
  xSel.addEventListener('change', redraw);
  ySel.addEventListener('change', redraw);
}
