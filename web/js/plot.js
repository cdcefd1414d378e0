// web/js/plot.js — the small canvas kit under the analysis figures (bars.js,
// scatter.js, heatmap.js): a sized hi-DPI canvas that redraws on resize and
// shows a tooltip on hover, linear scales with "nice" ticks, axes, and the
// colour scales (categorical for labels, diverging for cosines, sequential
// for Jaccard and counts).
//
// figure(el, {height, draw, hover}) owns el: it puts a title, a canvas and a
// tooltip in it. draw(ctx, w, h) paints in CSS pixels; hover(x, y) returns
// the tooltip text for the mouse position (or null). Figures never fetch:
// pages hand them arrays.
import { h } from './dom.js';

export const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif';
export const INK = '#1d2330', MUTED = '#667085', GRID = '#eceef2', AXIS = '#98a2b3';

/* el: the container; spec: {title?, height, draw(ctx, w, h), hover?(x, y) → string|null}. */
export function figure(el, spec) {
  const canvas = h('canvas', {});
  const tip = h('div', { class: 'tip', hidden: true });
  const wrap = h('div', { class: 'fig-canvas' }, canvas, tip);
  el.classList.add('fig');
  el.replaceChildren(...(spec.title ? [h('div', { class: 'title' }, spec.title)] : []), wrap);
  let width = 0, height = 0, frame = 0;

  function paint() {
    frame = 0;
    width = Math.max(200, wrap.clientWidth);
    height = typeof spec.height === 'function' ? spec.height(width) : spec.height;
    const dpr = window.devicePixelRatio || 1;
    const W = Math.round(width * dpr), H = Math.round(height * dpr);
    if (canvas.width !== W || canvas.height !== H) {   /* reallocating the backing store is slow: only on a new size */
      canvas.width = W;
      canvas.height = H;
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = FONT;
    spec.draw(ctx, width, height);
  }
  const schedule = () => { if (!frame) frame = requestAnimationFrame(paint); };

  function move(ev) {
    if (!spec.hover) return;
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left, y = ev.clientY - r.top;
    const text = spec.hover(x, y);
    if (text == null) { tip.hidden = true; return; }
    tip.textContent = text;
    tip.hidden = false;
    const tw = tip.offsetWidth, th = tip.offsetHeight;
    tip.style.left = `${Math.min(x + 14, width - tw - 2)}px`;
    tip.style.top = `${y + 16 + th > height ? Math.max(0, y - th - 10) : y + 16}px`;
  }
  canvas.addEventListener('mousemove', move);
  canvas.addEventListener('mouseleave', () => { tip.hidden = true; });
  const resize = new ResizeObserver(() => { if (Math.abs(wrap.clientWidth - width) > 1) schedule(); });
  resize.observe(wrap);
  paint();

  return {
    canvas,
    redraw: paint,
    size: () => ({ width, height }),
    destroy() { resize.disconnect(); if (frame) cancelAnimationFrame(frame); },
  };
}

/* A linear map from [d0, d1] to [r0, r1], with invert. */
export function scale(d0, d1, r0, r1) {
  const k = (r1 - r0) / (d1 - d0 || 1);
  const f = (v) => r0 + (v - d0) * k;
  f.invert = (p) => d0 + (p - r0) / k;
  f.domain = [d0, d1];
  return f;
}

/* About n round tick values covering [lo, hi]. */
export function ticks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/* [lo, hi] of the finite values (and of `more`), padded by a fraction; a flat range is widened. */
export function extent(values, pad = 0.05, more = []) {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo) lo = v;   /* NaN compares false both ways: left out */
    if (v > hi) hi = v;
  }
  for (const v of more) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = Infinity; hi = -Infinity; }
  if (lo === Infinity) return [0, 1];
  if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; }
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

export function tickText(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(4)));
}

/* Axes with ticks, grid lines and labels around box {l, t, r, b} (CSS px).
   opt: {x, y (scales), xTicks?, yTicks?, xFmt?, yFmt?, xLabel?, yLabel?, noXTicks?} */
export function axes(ctx, box, opt) {
  const xFmt = opt.xFmt ?? tickText, yFmt = opt.yFmt ?? tickText;
  ctx.save();
  ctx.font = FONT;
  ctx.lineWidth = 1;
  const yt = opt.yTicks ?? ticks(...opt.y.domain.slice().sort((a, b) => a - b), 5);
  ctx.fillStyle = MUTED;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const v of yt) {
    const py = Math.round(opt.y(v)) + 0.5;
    ctx.strokeStyle = GRID;
    ctx.beginPath(); ctx.moveTo(box.l, py); ctx.lineTo(box.r, py); ctx.stroke();
    ctx.fillText(yFmt(v), box.l - 5, py);
  }
  if (!opt.noXTicks) {
    const xt = opt.xTicks ?? ticks(...opt.x.domain.slice().sort((a, b) => a - b), Math.max(2, Math.floor((box.r - box.l) / 80)));
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (const v of xt) {
      const px = Math.round(opt.x(v)) + 0.5;
      ctx.strokeStyle = GRID;
      ctx.beginPath(); ctx.moveTo(px, box.t); ctx.lineTo(px, box.b); ctx.stroke();
      ctx.fillText(xFmt(v), px, box.b + 5);
    }
  }
  ctx.strokeStyle = AXIS;
  ctx.beginPath(); ctx.moveTo(box.l + 0.5, box.t); ctx.lineTo(box.l + 0.5, box.b + 0.5); ctx.lineTo(box.r, box.b + 0.5); ctx.stroke();
  ctx.fillStyle = INK;
  if (opt.xLabel) { ctx.textAlign = 'center'; ctx.textBaseline = 'bottom'; ctx.fillText(opt.xLabel, (box.l + box.r) / 2, box.b + 36); }
  if (opt.yLabel) {
    ctx.translate(12, (box.t + box.b) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
    ctx.fillText(opt.yLabel, 0, 0);
  }
  ctx.restore();
}

/* ---- colours ---- */

/* Twelve well-separated categorical colours (then golden-angle hues). */
const CATEGORICAL = ['#2f6fdf', '#e8743b', '#19a979', '#c23030', '#945ecf', '#13a4b4',
  '#d4a017', '#e05d9b', '#5b7c2b', '#8c564b', '#1d2330', '#7f8fa6'];
export function categoryColor(i) {
  if (i < CATEGORICAL.length) return CATEGORICAL[i];
  const hue = (i * 137.508) % 360;
  return `hsl(${hue.toFixed(0)}, 62%, ${i % 2 ? 42 : 55}%)`;
}

function lerpStops(stops, t) {
  t = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const k = Math.min(stops.length - 2, Math.floor(t * (stops.length - 1)));
  const f = t * (stops.length - 1) - k;
  const a = stops[k], b = stops[k + 1];
  return `rgb(${[0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f)).join(',')})`;
}
/* blue (−1) → white (0) → red (+1), the usual picture of a cosine matrix */
const DIVERGING = [[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199], [239, 138, 98], [178, 24, 43]];
/* white (0) → deep blue (1) */
const SEQUENTIAL = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
export const SCHEMES = {
  diverging: (v, lo = -1, hi = 1) => lerpStops(DIVERGING, (v - lo) / (hi - lo)),
  sequential: (v, lo = 0, hi = 1) => lerpStops(SEQUENTIAL, (v - lo) / (hi - lo)),
};

/* A legend of coloured swatches; items [{label, color, count?, key}]; onToggle(key) makes it clickable. */
export function legend(items, { onToggle, hidden = new Set(), max = 40 } = {}) {
  const shown = items.slice(0, max);
  const el = h('div', { class: 'legend' }, shown.map((it) => {
    const entry = h(onToggle ? 'button' : 'span', {
      type: onToggle ? 'button' : null, class: `item${hidden.has(it.key) ? ' off' : ''}`, 'data-label': it.label,
      title: onToggle ? 'click to hide or show' : null,
      onclick: onToggle ? () => { onToggle(it.key); entry.classList.toggle('off'); } : null,
    }, h('span', { class: 'swatch', style: { background: it.color } }), it.label,
    it.count != null ? h('span', { class: 'muted' }, ` ${it.count.toLocaleString('en-US')}`) : null);
    return entry;
  }), items.length > max ? h('span', { class: 'muted' }, `… and ${items.length - max} more`) : null);
  return el;
}

/* A tiny inline bar chart (a latent's activation histogram in a table cell): a canvas, w × h CSS px. */
export function sparkBars(values, { width = 120, height = 26, color = '#2f6fdf', title } = {}) {
  const c = h('canvas', { class: 'spark', title });
  const dpr = window.devicePixelRatio || 1;
  c.width = Math.round(width * dpr); c.height = Math.round(height * dpr);
  c.style.width = `${width}px`; c.style.height = `${height}px`;
  const ctx = c.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const max = Math.max(1, ...values), bw = width / Math.max(1, values.length);
  ctx.fillStyle = color;
  values.forEach((v, i) => { if (v > 0) { const bh = Math.max(1, (v / max) * (height - 1)); ctx.fillRect(i * bw, height - bh, Math.max(1, bw - 0.5), bh); } });
  ctx.fillStyle = '#d0d5dd';
  ctx.fillRect(0, height - 0.5, width, 0.5);
  return c;
}
