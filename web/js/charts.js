// web/js/charts.js — charts on canvas, drawn by uPlot (web/vendor, copied from
// node_modules by `make web`; nothing is fetched from elsewhere at run time).
//
// lineChart(el, spec) draws y-series against a shared x (training step) and
// returns {setData(x, ys), destroy()}. It sizes itself to its container and
// follows resizes. The container gets data-points = number of x values drawn
// (handy for tests and for a glance in the inspector). The analysis figures
// (histograms, 20k-point scatters, heatmaps) are drawn by the small canvas kit
// in plot.js, bars.js, scatter.js and heatmap.js instead.
import uPlot from '../vendor/uPlot.esm.js';
import { h } from './dom.js';

export const PALETTE = ['#2f6fdf', '#e8743b', '#19a979', '#945ecf', '#c23030', '#13a4b4'];
const HEIGHT = 190;

function axisSize(u, values) {
  if (!values) return 40;
  const longest = values.reduce((m, v) => Math.max(m, String(v ?? '').length), 0);
  return Math.max(40, longest * 7 + 18);
}

/* spec: {title, xLabel, series: [{label, color?}], log?, range?} — log draws y on a log10 scale (values ≤ 0
   are left out); range is uPlot's y range function (u, min, max) → [lo, hi]. */
export function lineChart(el, spec) {
  const title = h('div', { class: 'title' }, spec.title);
  const host = h('div');
  el.classList.add('chart');
  el.replaceChildren(title, host);
  el.dataset.points = '0';
  let data = [[], ...spec.series.map(() => [])];

  const opts = {
    width: Math.max(300, el.clientWidth - 4),
    height: HEIGHT,
    scales: { x: { time: false }, y: spec.log ? { distr: 3 } : spec.range ? { range: spec.range } : {} },
    axes: [
      { label: spec.xLabel ?? 'step', labelSize: 18, size: 36 },
      { size: axisSize },
    ],
    series: [
      { label: spec.xLabel ?? 'step' },
      ...spec.series.map((s, i) => ({
        label: s.label, stroke: s.color ?? PALETTE[i % PALETTE.length], width: 1.5,
        value: (u, v) => (v == null ? '—' : Number(v.toPrecision(4)).toString()),
      })),
    ],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
  };
  const plot = new uPlot(opts, data, host);
  const resize = new ResizeObserver(() => {
    const w = Math.max(300, el.clientWidth - 4);
    if (Math.abs(w - plot.width) > 1) plot.setSize({ width: w, height: HEIGHT });
  });
  resize.observe(el);

  return {
    setData(x, ys) {
      const clean = (arr) => (spec.log ? arr.map((v) => (v != null && v > 0 ? v : null)) : arr);
      data = [x, ...ys.map(clean)];
      plot.setData(data);
      el.dataset.points = String(x.length);
    },
    destroy() {
      resize.disconnect();
      plot.destroy();
    },
  };
}
