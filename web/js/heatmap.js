// web/js/heatmap.js — a matrix as coloured cells on canvas (a group's decoder
// cosines, the Jaccard co-activation of chosen latents), with a colour bar,
// row/column labels, separator lines between blocks (a group and its
// neighbours), the values written in the cells when they are big enough, and
// the exact value on hover.
//
// heatmap(el, spec) with spec:
//   {title?, rows: [labels], cols?: [labels] (default rows), values: [[number]],
//    domain: [lo, hi], scheme: 'diverging' | 'sequential', name?: what a value is,
//    breaks?: [k, ...] draw a line before row/column k, tip?(i, j, v) → text}
// Returns {destroy()}; the container gets data-cells = cells drawn and
// data-geometry = "x0,y0,cell" (where the cells start and their size, CSS px).
import { figure, SCHEMES, INK, MUTED, FONT, tickText } from './plot.js';

const LEFT = 56, TOP = 8, BAR = 14, BAR_GAP = 14, BAR_TEXT = 40, MAX_CELL = 64, MIN_FOR_TEXT = 30;

function layout(spec, w) {
  const n = spec.rows.length, m = (spec.cols ?? spec.rows).length;
  const avail = w - LEFT - BAR_GAP - BAR - BAR_TEXT;
  const cell = Math.max(2, Math.min(MAX_CELL, Math.floor(avail / m), Math.floor(520 / Math.max(1, n))));
  const bottom = m * cell > 0 ? (cell >= 14 ? 44 : 16) : 16;
  return { n, m, cell, x0: LEFT, y0: TOP, height: TOP + n * cell + bottom };
}

function labelEvery(cell) { return cell >= 13 ? 1 : Math.ceil(13 / cell); }

function drawLabels(ctx, spec, L) {
  const cols = spec.cols ?? spec.rows, every = labelEvery(L.cell);
  ctx.fillStyle = MUTED;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  spec.rows.forEach((r, i) => { if (i % every === 0) ctx.fillText(String(r), L.x0 - 5, L.y0 + (i + 0.5) * L.cell); });
  ctx.save();
  const yb = L.y0 + L.n * L.cell + 5;
  cols.forEach((c, j) => {
    if (j % every) return;
    const x = L.x0 + (j + 0.5) * L.cell;
    if (L.cell >= 28) { ctx.textAlign = 'center'; ctx.textBaseline = 'top'; ctx.fillText(String(c), x, yb); return; }
    ctx.save(); ctx.translate(x, yb); ctx.rotate(-Math.PI / 4);
    ctx.textAlign = 'right'; ctx.textBaseline = 'middle'; ctx.fillText(String(c), 0, 0); ctx.restore();
  });
  ctx.restore();
}

function drawBreaks(ctx, spec, L) {
  ctx.strokeStyle = INK;
  ctx.lineWidth = 1.5;
  for (const k of spec.breaks ?? []) {
    const p = Math.round(k * L.cell) + 0.5;
    ctx.beginPath(); ctx.moveTo(L.x0 + p, L.y0); ctx.lineTo(L.x0 + p, L.y0 + L.n * L.cell); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(L.x0, L.y0 + p); ctx.lineTo(L.x0 + L.m * L.cell, L.y0 + p); ctx.stroke();
  }
}

function drawColorBar(ctx, spec, L, colorOf) {
  const x = L.x0 + L.m * L.cell + BAR_GAP, hgt = Math.max(60, L.n * L.cell), y0 = L.y0;
  const [lo, hi] = spec.domain;
  for (let k = 0; k < hgt; k++) {
    ctx.fillStyle = colorOf(hi - (k / (hgt - 1)) * (hi - lo));
    ctx.fillRect(x, y0 + k, BAR, 1);
  }
  ctx.strokeStyle = '#c8ced9';
  ctx.strokeRect(x + 0.5, y0 + 0.5, BAR - 1, hgt - 1);
  ctx.fillStyle = MUTED;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  for (const v of [hi, (lo + hi) / 2, lo]) ctx.fillText(tickText(v), x + BAR + 4, y0 + ((hi - v) / (hi - lo)) * (hgt - 1));
}

export function heatmap(el, spec) {
  const colorOf = (v) => SCHEMES[spec.scheme](v, spec.domain[0], spec.domain[1]);
  let L = null;
  const fig = figure(el, {
    title: spec.title,
    height: (w) => Math.max(90, layout(spec, w).height),
    draw(ctx, w) {
      L = layout(spec, w);
      let cells = 0;
      for (let i = 0; i < L.n; i++) for (let j = 0; j < L.m; j++) {
        const v = spec.values[i][j];
        ctx.fillStyle = Number.isFinite(v) ? colorOf(v) : '#ddd';
        ctx.fillRect(L.x0 + j * L.cell, L.y0 + i * L.cell, L.cell, L.cell);
        cells++;
      }
      if (L.cell >= MIN_FOR_TEXT) writeValues(ctx, spec, L);
      drawBreaks(ctx, spec, L);
      drawLabels(ctx, spec, L);
      drawColorBar(ctx, spec, L, colorOf);
      el.dataset.cells = String(cells);
      el.dataset.geometry = `${L.x0},${L.y0},${L.cell}`;   /* where cell (0, 0) starts and its size, CSS px */
    },
    hover(px, py) {
      if (!L) return null;
      const j = Math.floor((px - L.x0) / L.cell), i = Math.floor((py - L.y0) / L.cell);
      if (i < 0 || j < 0 || i >= L.n || j >= L.m) return null;
      const v = spec.values[i][j];
      if (spec.tip) return spec.tip(i, j, v);
      return `${spec.rows[i]} × ${(spec.cols ?? spec.rows)[j]}\n${spec.name ?? 'value'} ${Number.isFinite(v) ? v.toFixed(4) : '—'}`;
    },
  });
  return { destroy: fig.destroy, canvas: fig.canvas };
}

function writeValues(ctx, spec, L) {
  ctx.font = FONT;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  const [lo, hi] = spec.domain;
  for (let i = 0; i < L.n; i++) for (let j = 0; j < L.m; j++) {
    const v = spec.values[i][j];
    if (!Number.isFinite(v)) continue;
    const t = (v - lo) / (hi - lo);
    const dark = spec.scheme === 'sequential' ? t > 0.55 : Math.abs(t - 0.5) > 0.3;
    ctx.fillStyle = dark ? '#fff' : INK;
    ctx.fillText(v.toFixed(2), L.x0 + (j + 0.5) * L.cell, L.y0 + (i + 0.5) * L.cell);
  }
}
