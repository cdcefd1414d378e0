// tests/browser/groupspace.mjs — a groupspace job's page in the browser, run
// by run.mjs after the analysis pages (SAE #1 is analysed by then).
//
// The jobs are submitted through the API; the page is what is tested: the
// scatter of a finished toy job (disjoint pairs) draws every item, the slider
// and the play button move it through the snapshots (the step shown and the
// drawn points change while the axes, drawn in the canvas margins, stay
// put), pause stops it, the colouring switches between true pairs and
// learned groups, hovering a dot names its item, pair, learned group and
// position (checked against the API's snapshot), and the result's numbers
// and history charts are there. A long job shows its slider growing as
// snapshots appear while it runs, and keeps them once cancelled. A group
// space of SAE #1's latents shows, on hover, each latent's density, read
// from the API when first hovered.
import { api, waitJob, colouredPixels } from './analysis.mjs';

const FIG = '[data-fig="groupspace"]';   /* the scatter, on the page of the job opened last (openJob) */
const MARGIN = { l: 52, b: 42 };   /* scatter.js: the left and bottom margins, where the tick labels are */
const TOY = { type: 'groupspace', sets: { toy: { items: 40, p: 0 } }, steps: 2000, snapshots: 10, lr: 0.005 };

/* ---- in the page ---- */

/* FNV-1a hashes of the scatter's canvas under sel, once a redraw the page has scheduled (a resize) is done:
   the plot area, and the left and bottom margins (axes and tick labels; 2 px of the axis lines left out),
   which change only when the axis limits do. */
async function canvasHashes([sel, margin]) {
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const c = document.querySelector(`${sel} canvas`);
  const dpr = window.devicePixelRatio || 1, d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const l = Math.round(margin.l * dpr) - 2, b = c.height - Math.round(margin.b * dpr) + 2;
  let plot = 0x811c9dc5, edge = 0x811c9dc5;
  for (let y = 0; y < c.height; y++) {
    for (let x = 0; x < c.width; x++) {
      const k = (y * c.width + x) * 4, v = d[k] | (d[k + 1] << 8) | (d[k + 2] << 16) | (d[k + 3] << 24);
      if (x < l || y > b) edge = Math.imul(edge ^ v, 16777619);
      else plot = Math.imul(plot ^ v, 16777619);
    }
  }
  return { plot, edge, width: c.width };
}

/* Page coordinates of the middle of a drawn dot on the canvas under sel: the first saturated pixel
   in reading order is on the dot's top edge (6 px dots, corners off). */
function dotPosition(sel) {
  const c = document.querySelector(`${sel} canvas`);
  const dpr = window.devicePixelRatio || 1, d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let k = 0; k < d.length; k += 4) {
    if (d[k + 3] < 200 || Math.max(d[k], d[k + 1], d[k + 2]) - Math.min(d[k], d[k + 1], d[k + 2]) <= 50) continue;
    const r = c.getBoundingClientRect(), px = (k / 4) % c.width, py = Math.floor(k / 4 / c.width);
    return { x: r.left + px / dpr + 2, y: r.top + py / dpr + 3 };
  }
  return null;
}

/* Records every data-step the scatter takes, from now on, in window.__gsSteps. */
function recordSteps(sel) {
  window.__gsSteps = [];
  new MutationObserver((recs) => { for (const r of recs) window.__gsSteps.push(Number(r.target.dataset.step)); })
    .observe(document.querySelector(sel), { attributes: true, attributeFilter: ['data-step'] });
}

/* ---- helpers ---- */

const attr = (page, name) => page.getAttribute(FIG, name).then(Number);

/* The API's positions of job id at step (a snapshot), as a Float32Array (items × dim). */
async function positions(daemon, id, step) {
  const r = await fetch(`${daemon.base}/v1/jobs/${id}/positions.npy?step=${step}`);
  const buf = await r.arrayBuffer();
  const headerLen = new DataView(buf).getUint16(8, true);
  return new Float32Array(buf.slice(10 + headerLen));
}

/* Moves the mouse onto a drawn dot and returns the tooltip's text. */
async function hoverDot(page) {
  const at = await page.evaluate(dotPosition, FIG);
  if (!at) return '';
  await page.mouse.move(at.x, at.y);
  const tip = page.locator(`${FIG} .tip`);
  await tip.waitFor({ state: 'visible', timeout: 5000 }).catch(() => {});
  return (await tip.isVisible()) ? tip.textContent() : '';
}

/* Opens job id's page and waits until its group space holds at least `frames` snapshots and is drawn. */
async function openJob(page, id, frames, timeout) {
  await page.evaluate((j) => { location.hash = `#/jobs/${j}`; }, id);
  await page.waitForSelector(`#groupspace[data-job="${id}"]`);
  await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.dataset.frames) >= n
    && document.querySelector(sel)?.dataset.points != null, [FIG, frames], { timeout });
}

/* ---- the steps ---- */

/* A finished toy job: the scatter, the slider, play and pause, the colouring, hover, the numbers. */
export async function testGroupSpace(t) {
  const { page, check, shot, daemon } = t;
  const job = await waitJob(daemon, (await api(daemon, 'POST', '/jobs', TOY)).id, t.WAIT_MS);
  const r = job.result;
  await openJob(page, job.id, r.snapshots.length);
  await page.waitForSelector('[data-chart="gs-truth"][data-points="10"]');
  check('the group space draws every item', await attr(page, 'data-points') === 40
    && await page.evaluate(colouredPixels, FIG) > 40 * 10, `${await attr(page, 'data-points')} points`);
  check('it opens on the final positions', await attr(page, 'data-step') === 2000
    && /step 2,000 of 2,000 \(final\) · snapshot 10 \/ 10/.test(await page.textContent('#gs-step')), await page.textContent('#gs-step'));
  check('the slider spans the snapshots', await page.getAttribute('#gs-slider', 'max') === '9');
  check('the result\'s numbers are shown', Number(await page.textContent('[data-stat="n_groups"] .value')) === r.n_groups
    && (await page.textContent('[data-stat="true_near_frac"] .value')) === `${(r.truth.true_near_frac * 100).toFixed(1)}%`
    && (await page.textContent('[data-stat="radius_cv"] .value')) === String(Number(r.radius.cv.toPrecision(3))));
  check('the history is charted', await page.locator('#gs-history [data-chart]').count() === 4);

  await page.focus('#gs-slider');
  await page.keyboard.press('Home');
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.step === '200', FIG);
  const first = await page.evaluate(canvasHashes, [FIG, MARGIN]);
  check('the slider shows the first snapshot', /^step 200 of 2,000 · snapshot 1 \/ 10$/.test(await page.textContent('#gs-step')),
    await page.textContent('#gs-step'));
  await shot(page, 'groupspace-first');
  await page.keyboard.press('End');
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.step === '2000', FIG);
  const last = await page.evaluate(canvasHashes, [FIG, MARGIN]);
  check('the points move between snapshots', first.plot !== last.plot);
  check('the axis limits hold over the whole run', first.edge === last.edge, `${first.width} vs ${last.width} px wide`);

  await page.keyboard.press('Home');
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.step === '200', FIG);
  await page.evaluate(recordSteps, FIG);
  await page.click('#gs-play');
  check('play turns into pause', (await page.textContent('#gs-play')) === 'Pause');
  await page.waitForFunction(() => document.querySelector('#gs-play').textContent === 'Play', null, { timeout: 10_000 });
  const seen = await page.evaluate(() => window.__gsSteps);
  check('play goes through every snapshot to the last, and stops', JSON.stringify(seen) === JSON.stringify(r.snapshots.slice(1)),
    JSON.stringify(seen));
  await page.click('#gs-play');
  await page.waitForFunction((sel) => Number(document.querySelector(sel).dataset.step) > 200, FIG);
  await page.click('#gs-play');
  const paused = await attr(page, 'data-step');
  await page.waitForTimeout(500);
  check('pause stops it', await attr(page, 'data-step') === paused && paused < 2000, String(paused));
  await page.focus('#gs-slider');
  await page.keyboard.press('End');

  check('true pairs colour it, learned groups on request', await page.getAttribute(FIG, 'data-colour') === 'truth'
    && await page.locator('#gs-colour').isVisible());
  await page.selectOption('#gs-colour', 'learned');
  check('the colouring switches to learned groups', await page.getAttribute(FIG, 'data-colour') === 'learned');

  const text = await hoverDot(page);
  const m = /^item (\d+) · true pair (\d+) · learned group (\d+)\n\((-?[\d.]+), (-?[\d.]+)\)$/.exec(text);
  const item = Number(m?.[1]);
  const pos = m ? await positions(daemon, job.id, 2000) : null;
  const groups = (await daemon.json(`/v1/jobs/${job.id}/groups`)).groups;
  check('hovering a point names its item, pair and learned group', m && Number(m[2]) === item >> 1
    && groups[Number(m[3])]?.includes(item), text);
  check('and gives its position as the API has it', m && Math.abs(Number(m[4]) - pos[item * 2]) < 1e-3
    && Math.abs(Number(m[5]) - pos[item * 2 + 1]) < 1e-3, `${text} vs ${pos?.[item * 2]}, ${pos?.[item * 2 + 1]}`);
  await shot(page, 'groupspace');
  await page.mouse.move(0, 0);
}

/* A long job: the slider grows while it runs; cancelled, what was read stays. */
export async function testGroupSpaceLive(t) {
  const { daemon } = t;
  const spec = { ...TOY, steps: 1_000_000, snapshots: 30, batch: 64 };   /* some 10 s or more: cancelled long before */
  const job = await api(daemon, 'POST', '/jobs', spec);
  try {
    await liveSteps(t, job.id, spec);
  } finally {
    await api(daemon, 'POST', `/jobs/${job.id}/cancel`, {}).catch(() => {});   /* whatever happened: the worker is needed next */
  }
}

async function liveSteps(t, id, spec) {
  const { page, check, shot, daemon, trouble } = t;
  await openJob(page, id, 1, t.WAIT_MS);
  const before = await attr(page, 'data-frames');
  await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.dataset.frames) > n, [FIG, before], { timeout: t.WAIT_MS });
  const now = await page.evaluate((sel) => ({   /* at one moment: a snapshot may come in between two reads */
    running: document.querySelector('.badge[data-state="running"]') != null, frames: Number(document.querySelector(sel).dataset.frames),
    step: Number(document.querySelector(sel).dataset.step), max: Number(document.querySelector('#gs-slider').max) }), FIG);
  const frames = now.frames;
  check('the slider grows as snapshots appear while the job runs', now.running && now.max === frames - 1, `${before} then ${JSON.stringify(now)}`);
  check('it follows the newest snapshot', now.step === Math.floor((spec.steps * frames) / spec.snapshots), JSON.stringify(now));
  /* a snapshot asked for as the job is cancelled may be gone already: a 404 then is expected */
  trouble.excused = (x) => /positions\.npy\?step=/.test(x.url) && /404/.test(x.text);
  await api(daemon, 'POST', `/jobs/${id}/cancel`, {});
  await page.waitForSelector('.badge[data-state="cancelled"]');
  await page.waitForTimeout(200);
  trouble.excused = null;
  check('once cancelled, the snapshots read stay on the page', /was cancelled/.test(await page.textContent('#gs-note'))
    && await attr(page, 'data-frames') >= frames && await attr(page, 'data-points') === 40);
  await shot(page, 'groupspace-cancelled');
}

/* The latents of SAE #1 as items: hover reads the latent's density. */
export async function testGroupSpaceLatents(t) {
  const { page, check, daemon } = t;
  const spec = { type: 'groupspace', sets: { from_analysis: 1, min_jaccard: 0.1 }, weight: 'npmi', steps: 2000, snapshots: 5 };
  const job = await waitJob(daemon, (await api(daemon, 'POST', '/jobs', spec)).id, t.WAIT_MS);
  await openJob(page, job.id, 5);
  await page.waitForFunction((sel) => document.querySelector(sel).dataset.colour === 'learned', FIG);
  check('a group space of latents draws each latent, coloured by learned group', await attr(page, 'data-points') === job.result.items
    && await page.locator('#gs-colour').isHidden());
  await hoverDot(page);
  const tip = page.locator(`${FIG} .tip`);
  await page.waitForFunction((sel) => /density \d/.test(document.querySelector(`${sel} .tip`)?.textContent), FIG, { timeout: 10_000 })
    .catch(() => {});
  const text = await tip.textContent();
  const m = /^latent (\d+) · learned group \d+\ndensity ([\d.e+-]+) · SAE group (\d+)\n/.exec(text);
  const latent = m ? await daemon.json(`/v1/saes/1/latents/${m[1]}`) : null;
  check('hovering a latent shows its density and SAE group, read when hovered', m
    && Math.abs(Number(m[2]) - latent.density) <= 0.005 * latent.density && Number(m[3]) === latent.group, text);
  await page.mouse.move(0, 0);
}
