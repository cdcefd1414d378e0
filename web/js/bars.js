// web/js/bars.js — bar charts on canvas: grouped bars over named categories
// (decoder rows per circle plane, SAE A beside SAE B; singular values) and
// histograms over numeric bin edges (latent density, activations).
//
// barChart(el, spec) with spec:
//   {title?, height?, xLabel?, yLabel?, series: [{label, values, color?}],
//    categories: [names]      — one group of bars per category, or
//    edges: [n+1 numbers]     — a histogram (one series; bar i spans edges[i]..edges[i+1]),
//    xFmt?, yFmt?, tip?(i) → extra tooltip text}
// The container gets data-bars = the number of non-zero bars drawn (for tests
// and the inspector). Returns {destroy()}.
import { figure, scale, ticks, axes, categoryColor, INK, MUTED } from './plot.js';

const MARGIN = { l: 52, r: 14, t: 10, b: 42 }, LEGEND_H = 20;

function yScale(series, box) {
  let max = 0;
  for (const s of series) for (const v of s.values) if (Number.isFinite(v) && v > max) max = v;
  if (!(max > 0)) max = 1;
  const t = ticks(0, max, 4);
  const step = t.length > 1 ? t[1] - t[0] : max;
  return scale(0, Math.ceil(max / step - 1e-9) * step, box.b, box.t);
}

function drawCategories(ctx, spec, box, y) {
  const n = spec.categories.length, k = spec.series.length;
  const band = (box.r - box.l) / n, inner = band * 0.8, bw = inner / k;
  let drawn = 0;
  spec.series.forEach((s, si) => {
    ctx.fillStyle = s.color ?? categoryColor(si);
    s.values.forEach((v, i) => {
      if (!(v > 0)) return;
      const x0 = box.l + i * band + (band - inner) / 2 + si * bw;
      ctx.fillRect(x0, y(v), Math.max(1, bw - (k > 1 ? 1 : 0)), box.b - y(v));
      drawn++;
    });
  });
  ctx.fillStyle = MUTED;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const every = Math.ceil(n / Math.max(1, Math.floor((box.r - box.l) / 36)));
  spec.categories.forEach((c, i) => { if (i % every === 0) ctx.fillText(c, box.l + (i + 0.5) * band, box.b + 5); });
  return drawn;
}

function drawHistogram(ctx, spec, box, x, y) {
  const s = spec.series[0];
  ctx.fillStyle = s.color ?? categoryColor(0);
  let drawn = 0;
  s.values.forEach((v, i) => {
    if (!(v > 0)) return;
    const x0 = x(spec.edges[i]), x1 = x(spec.edges[i + 1]);
    ctx.fillRect(x0 + 0.5, y(v), Math.max(1, x1 - x0 - 1), box.b - y(v));
    drawn++;
  });
  return drawn;
}

function seriesLegend(ctx, spec, box) {
  if (spec.series.length < 2) return;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  let px = box.l + 8;
  const y = box.t - LEGEND_H + 2;
  for (const [si, s] of spec.series.entries()) {
    ctx.fillStyle = s.color ?? categoryColor(si);
    ctx.fillRect(px, y, 10, 10);
    ctx.fillStyle = INK;
    ctx.fillText(s.label, px + 14, y + 5);
    px += 24 + ctx.measureText(s.label).width;
  }
}

export function barChart(el, spec) {
  let box = null, x = null;
  const fig = figure(el, {
    title: spec.title,
    height: spec.height ?? 220,
    draw(ctx, w, hgt) {
      box = { l: MARGIN.l, r: w - MARGIN.r, t: MARGIN.t + (spec.series.length > 1 ? LEGEND_H : 0), b: hgt - MARGIN.b };
      const y = yScale(spec.series, box);
      if (spec.edges) x = scale(spec.edges[0], spec.edges.at(-1), box.l, box.r);
      axes(ctx, box, { x: x ?? scale(0, 1, box.l, box.r), y, noXTicks: !spec.edges, xFmt: spec.xFmt, yFmt: spec.yFmt,
        xLabel: spec.xLabel, yLabel: spec.yLabel, yTicks: ticks(0, y.domain[1], 4) });
      const drawn = spec.edges ? drawHistogram(ctx, spec, box, x, y) : drawCategories(ctx, spec, box, y);
      seriesLegend(ctx, spec, box);
      el.dataset.bars = String(drawn);
    },
    hover(px, py) {
      if (!box || px < box.l || px > box.r || py < box.t || py > box.b + 20) return null;
      if (spec.edges) {
        const v = x.invert(px);
        const i = spec.edges.findIndex((e, k) => k < spec.edges.length - 1 && v >= e && v < spec.edges[k + 1]);
        if (i < 0) return null;
        const fmt = spec.xFmt ?? ((t) => String(Number(t.toPrecision(3))));
        return `${fmt(spec.edges[i])} … ${fmt(spec.edges[i + 1])}: ${spec.series[0].values[i].toLocaleString('en-US')}${spec.tip ? `\n${spec.tip(i)}` : ''}`;
      }
      const i = Math.floor((px - box.l) / ((box.r - box.l) / spec.categories.length));
      if (i < 0 || i >= spec.categories.length) return null;
      const lines = spec.series.map((s) => `${spec.series.length > 1 ? `${s.label}: ` : ''}${fmtValue(s.values[i])}`);
      return [`${spec.xLabel ? `${spec.xLabel} ` : ''}${spec.categories[i]}`, ...lines, spec.tip?.(i)].filter(Boolean).join('\n');
    },
  });
  return { destroy: fig.destroy, canvas: fig.canvas };
}

function fmtValue(v) {
  if (v == null || !Number.isFinite(v)) return '—';
  return Number.isInteger(v) ? v.toLocaleString('en-US') : String(Number(v.toPrecision(4)));
}
