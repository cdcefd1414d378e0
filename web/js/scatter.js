// web/js/scatter.js — a scatter plot for tens of thousands of points on one
// canvas (PCA pairs, rows projected on a group's plane, decoder vectors in it).
//
// Points are bucketed by colour once (a counting sort), then drawn in one pass
// straight into a pixel buffer that goes onto the canvas in one drawImage: 20k
// points paint in a few milliseconds even on a software-rendered canvas, so a
// resize, a new pair of components or a legend toggle just redraws. Hover
// finds the nearest point through a grid of screen cells built during the
// draw (also one pass), so it stays instant whatever the count.
//
// scatter(el, spec) with spec:
//   {title?, height, xs, ys (arrays or typed arrays, same length),
//    color?: per-point category index (Uint16Array), colors?: [css per category],
//    hidden?: Set of category indices not drawn, equal?: same units on both axes,
//    xLabel?, yLabel?, tip?(i) → tooltip text, pointSize?,
//    arrows?: [{x, y, label, color}] drawn from the origin, unitCircle?: bool}
// Returns {update(patch), destroy()}; the container gets data-points = points drawn.
import { figure, scale, extent, axes, categoryColor, INK } from './plot.js';

const MARGIN = { l: 52, r: 14, t: 10, b: 42 };
const CELL = 8;          /* px: hover grid cell */
const HOVER_PX = 8;      /* how near the mouse must be to a point */

/* indices grouped by colour: {order: Uint32Array, starts: Int32Array(k + 1)} */
function bucket(color, n, k) {
  const starts = new Int32Array(k + 1);
  for (let i = 0; i < n; i++) starts[(color ? color[i] : 0) + 1]++;
  for (let c = 0; c < k; c++) starts[c + 1] += starts[c];
  const fillAt = starts.slice(0, k);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[fillAt[color ? color[i] : 0]++] = i;
  return { order, starts };
}

/* Data ranges: padded extents, widened so that one unit is as long on both axes when equal. */
function ranges(spec, box) {
  const geo = spec.arrows?.length || spec.unitCircle;   /* the origin, arrow tips and unit circle are in view too */
  const xs = geo ? [...(spec.arrows ?? []).map((a) => a.x), 0, ...(spec.unitCircle ? [-1, 1] : [])] : [];
  const ys = geo ? [...(spec.arrows ?? []).map((a) => a.y), 0, ...(spec.unitCircle ? [-1, 1] : [])] : [];
  let [x0, x1] = spec.xRange ?? extent(spec.xs, 0.05, xs);
  let [y0, y1] = spec.yRange ?? extent(spec.ys, 0.05, ys);
  if (spec.equal) {
    const kx = (box.r - box.l) / (x1 - x0), ky = (box.b - box.t) / (y1 - y0), k = Math.min(kx, ky);
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    const hw = (box.r - box.l) / k / 2, hh = (box.b - box.t) / k / 2;
    [x0, x1, y0, y1] = [cx - hw, cx + hw, cy - hh, cy + hh];
  }
  return { x: scale(x0, x1, box.l, box.r), y: scale(y0, y1, box.b, box.t) };
}

/* "Over" compositing of an opaque colour at alpha a onto pixel k of a non-premultiplied RGBA buffer:
   out alpha oa = a + da (1 - a), and each channel moves from D toward S by a / oa. */
function blend(d, k, R, G, B, a) {
  const da = d[k + 3] / 255;
  if (da === 0) { d[k] = R; d[k + 1] = G; d[k + 2] = B; d[k + 3] = a * 255; return; }
  const oa = a + da * (1 - a), t = a / oa;
  d[k] += (R - d[k]) * t;
  d[k + 1] += (G - d[k + 1]) * t;
  d[k + 2] += (B - d[k + 2]) * t;
  d[k + 3] = oa * 255;
}

/* [r, g, b] of a CSS colour (a canvas normalises any colour it accepts to #rrggbb). */
const rgbCache = new Map();
function toRgb(css) {
  if (!rgbCache.has(css)) {
    const c = document.createElement('canvas').getContext('2d');
    c.fillStyle = css;
    const hex = /^#([0-9a-f]{6})$/i.exec(c.fillStyle)?.[1] ?? '808080';
    rgbCache.set(css, [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16)));
  }
  return rgbCache.get(css);
}

/* Arrows from the origin, each labelled at its tip; a label that would sit on an earlier one moves down a line. */
function drawArrows(ctx, spec, x, y) {
  const placed = [];
  ctx.save();
  ctx.lineWidth = 2;
  ctx.font = '600 11px system-ui, sans-serif';
  for (const [i, a] of (spec.arrows ?? []).entries()) {
    const ox = x(0), oy = y(0), px = x(a.x), py = y(a.y);
    const ang = Math.atan2(py - oy, px - ox);
    ctx.strokeStyle = ctx.fillStyle = a.color ?? categoryColor(i);
    ctx.beginPath(); ctx.moveTo(ox, oy); ctx.lineTo(px, py); ctx.stroke();
    ctx.beginPath();
    ctx.moveTo(px, py);
    ctx.lineTo(px - 9 * Math.cos(ang - 0.4), py - 9 * Math.sin(ang - 0.4));
    ctx.lineTo(px - 9 * Math.cos(ang + 0.4), py - 9 * Math.sin(ang + 0.4));
    ctx.fill();
    if (a.label != null) {
      const lx = px + 6 * Math.cos(ang) + (Math.cos(ang) >= 0 ? 2 : -2);
      let ly = py + 10 * Math.sin(ang);
      while (placed.some(([qx, qy]) => Math.abs(qx - lx) < 30 && Math.abs(qy - ly) < 12)) ly += 12;
      placed.push([lx, ly]);
      ctx.fillStyle = INK;
      ctx.textAlign = Math.cos(ang) >= 0 ? 'left' : 'right';
      ctx.textBaseline = 'middle';
      ctx.fillText(a.label, lx, ly);
    }
  }
  ctx.restore();
}

function drawUnitCircle(ctx, x, y) {
  ctx.save();
  ctx.strokeStyle = '#b8bfcc';
  ctx.setLineDash([4, 4]);
  ctx.beginPath();
  ctx.ellipse(x(0), y(0), Math.abs(x(1) - x(0)), Math.abs(y(1) - y(0)), 0, 0, 2 * Math.PI);
  ctx.stroke();
  ctx.restore();
}

export function scatter(el, initial) {
  let spec = initial, buckets = null, grid = null, sx = null, sy = null;

  function prepare() {
    const n = spec.xs.length, k = Math.max(1, spec.colors?.length ?? 1);
    buckets = bucket(spec.color, n, k);
    sx = new Float32Array(n);
    sy = new Float32Array(n);
  }

  /* Points in one pass over a pixel buffer at device resolution, bucketed by colour and blended
     "over" at a fixed alpha, then put on the canvas with one drawImage (no per-point canvas calls:
     software-rendered canvases stay fast too). Fills the hover grid as it goes. */
  function drawPoints(ctx, w, hgt, x, y, box) {
    const n = spec.xs.length, dpr = window.devicePixelRatio || 1;
    const L = pixelLayer(Math.round(w * dpr), Math.round(hgt * dpr));
    const side = Math.max(1, Math.round((spec.pointSize ?? (n > 5000 ? 2.2 : 4)) * dpr));
    const alpha = n > 5000 ? 0.6 : 0.85, round = side >= 4;
    const [cl, ct, cr, cb] = [box.l, box.t, box.r, box.b].map((v) => Math.round(v * dpr));
    const gw = Math.ceil(w / CELL), gh = Math.ceil(hgt / CELL);
    const cellOf = new Int32Array(n).fill(-1);
    const counts = new Int32Array(gw * gh + 1);
    let drawn = 0;
    const k = buckets.starts.length - 1;
    for (let c = 0; c < k; c++) {
      if (spec.hidden?.has(c)) continue;
      const [R, G, B] = toRgb(spec.colors?.[c] ?? categoryColor(0));
      for (let j = buckets.starts[c]; j < buckets.starts[c + 1]; j++) {
        const i = buckets.order[j];
        const px = x(spec.xs[i]), py = y(spec.ys[i]);
        const X = Math.round(px * dpr - side / 2), Y = Math.round(py * dpr - side / 2);
        if (!(X >= cl && Y >= ct && X + side <= cr && Y + side <= cb)) continue;   /* also drops NaN */
        for (let dy = 0; dy < side; dy++) {
          for (let dx = 0; dx < side; dx++) {
            if (round && (dx === 0 || dx === side - 1) && (dy === 0 || dy === side - 1)) continue;   /* corners off: a dot */
            blend(L.data, ((Y + dy) * L.width + X + dx) * 4, R, G, B, alpha);
          }
        }
        sx[i] = px; sy[i] = py;
        const cell = Math.floor(py / CELL) * gw + Math.floor(px / CELL);
        cellOf[i] = cell; counts[cell + 1]++;
        drawn++;
      }
    }
    L.ctx.putImageData(L.img, 0, 0);
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(L.canvas, 0, 0);
    ctx.restore();
    for (let c = 0; c < gw * gh; c++) counts[c + 1] += counts[c];
    const items = new Uint32Array(counts[gw * gh]), at = counts.slice(0, gw * gh);
    for (let i = 0; i < n; i++) if (cellOf[i] >= 0) items[at[cellOf[i]]++] = i;
    grid = { gw, gh, starts: counts, items };
    return drawn;
  }

  /* The off-screen canvas and cleared pixel buffer the points are drawn into, W x H device px. */
  let layer = null;
  function pixelLayer(W, H) {
    if (!layer || layer.width !== W || layer.height !== H) {
      const canvas = document.createElement('canvas');
      canvas.width = W; canvas.height = H;
      const img = new ImageData(W, H);
      layer = { canvas, ctx: canvas.getContext('2d'), img, data: img.data, width: W, height: H };
    } else layer.data.fill(0);
    return layer;
  }

  function nearest(px, py) {
    if (!grid) return -1;
    const gx = Math.floor(px / CELL), gy = Math.floor(py / CELL);
    let best = -1, bestD = HOVER_PX * HOVER_PX;
    for (let cy = gy - 1; cy <= gy + 1; cy++) for (let cx = gx - 1; cx <= gx + 1; cx++) {
      if (cx < 0 || cy < 0 || cx >= grid.gw || cy >= grid.gh) continue;
      const c = cy * grid.gw + cx;
      for (let j = grid.starts[c]; j < grid.starts[c + 1]; j++) {
        const i = grid.items[j], d = (sx[i] - px) ** 2 + (sy[i] - py) ** 2;
        if (d < bestD) { bestD = d; best = i; }
      }
    }
    return best;
  }

  prepare();
  const fig = figure(el, {
    title: spec.title,
    height: spec.height ?? 360,
    draw(ctx, w, hgt) {
      const box = { l: MARGIN.l, r: w - MARGIN.r, t: MARGIN.t, b: hgt - MARGIN.b };
      const { x, y } = ranges(spec, box);
      axes(ctx, box, { x, y, xLabel: spec.xLabel, yLabel: spec.yLabel });
      if (spec.unitCircle) drawUnitCircle(ctx, x, y);
      const drawn = drawPoints(ctx, w, hgt, x, y, box);
      drawArrows(ctx, spec, x, y);
      el.dataset.points = String(drawn);
    },
    hover(px, py) {
      const i = nearest(px, py);
      return i < 0 ? null : (spec.tip ? spec.tip(i) : `row ${i}`);
    },
  });

  return {
    update(patch) {
      const reBucket = 'xs' in patch || 'color' in patch || 'colors' in patch;
      spec = { ...spec, ...patch };
      if (reBucket) prepare();
      fig.redraw();
    },
    destroy: fig.destroy,
    canvas: fig.canvas,
  };
}
