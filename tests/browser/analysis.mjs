// tests/browser/analysis.mjs — the analysis pages in the browser, run by
// run.mjs after its own flow has trained SAE #1 on a small circles dataset.
//
// Setup goes through the API (a second, wider SAE on the same circles for the
// feature-splitting comparison; an uploaded .npy dataset of 20,000 rows on a
// "months" circle with one label per row, and a small SAE trained on it);
// everything under test is done on the pages: an analyze job run from the SAE
// page and followed live, the recovery / circle-FVE / density histograms, the
// second SAE chosen to compare, the groups table sorted by Jaccard and paged,
// a group's cosine heatmap, singular values, plane and projection, the
// Jaccard heatmap of a group and its neighbours, and a PCA job run from the
// page whose 20k-point scatter is drawn with a legend of labels, then
// redrawn for PC3 vs PC4 and with a label hidden. "Drawn" is checked twice:
// the figure reports how many marks it drew (data-points, data-bars,
// data-cells), and the canvas holds that many coloured pixels (axes and grid
// are grey, so a blank or axes-only canvas fails).

export const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October',
  'November', 'December'];
const MONTH_ROWS = 20000, MONTH_DIM = 16;
const monthRows = (m) => Math.floor((MONTH_ROWS - 1 - m) / 12) + 1;   /* row i is month i mod 12 */
const SECOND_RGB = [232, 116, 59];   /* plot.js categoryColor(1), #e8743b: the second SAE's bars */

/* ---- in the page ---- */

/* Pixels on the canvas under `sel` whose colour is saturated (not white, grey or black). */
export function colouredPixels(sel) {
  const c = document.querySelector(`${sel} canvas`);
  if (!c || !c.width || !c.height) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] < 200) continue;
    const hi = Math.max(d[i], d[i + 1], d[i + 2]), lo = Math.min(d[i], d[i + 1], d[i + 2]);
    if (hi - lo > 50) n++;
  }
  return n;
}

/* Moves the mouse over the scatter under sel, place after place, until a tooltip shows; returns its text. */
async function hoverUntilTip(page, sel) {
  const box = await page.locator(`${sel} canvas`).boundingBox();
  const tip = page.locator(`${sel} .tip`);
  let text = '';
  for (let k = 0; k < 120 && !text; k++) {
    await page.mouse.move(box.x + 60 + ((k * 97) % (box.width - 80)), box.y + 15 + ((k * 53) % (box.height - 65)));
    if (await tip.isVisible()) text = await tip.textContent();
  }
  await page.mouse.move(0, 0);
  return text;
}

/* Moves the mouse to the middle of cell (i, j) of the heatmap under sel (it reports its geometry). */
async function hoverCell(page, sel, i, j) {
  const box = await page.locator(`${sel} canvas`).boundingBox();
  const [x0, y0, cell] = (await page.getAttribute(sel, 'data-geometry')).split(',').map(Number);
  await page.mouse.move(box.x + x0 + (j + 0.5) * cell, box.y + y0 + (i + 0.5) * cell);
}

/* Pixels on the canvas under sel within a small distance of colour rgb. */
function pixelsOf([sel, rgb]) {
  const c = document.querySelector(`${sel} canvas`);
  if (!c || !c.width || !c.height) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (d[i + 3] > 200 && Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) < 40) n++;
  return n;
}

const attr = (page, sel, name) => page.getAttribute(sel, name).then((v) => Number(v));

/* ---- setup through the API ---- */

/* A deterministic PRNG (mulberry32), so the data set is the same on every run. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/* A .npy v1.0 '<f4' (rows, dim) file. */
function npyBytes(data, rows, dim) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${dim}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const out = Buffer.alloc(10 + header.length + data.byteLength);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = 1; out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 10 + header.length);
  return out;
}

/* Row i is month i mod 12 on a circle in the first two dimensions (plus a little noise everywhere). */
function monthsData() {
  const rnd = prng(7);
  const data = new Float32Array(MONTH_ROWS * MONTH_DIM);
  const labels = [];
  for (let i = 0; i < MONTH_ROWS; i++) {
    const m = i % 12, a = (2 * Math.PI * m) / 12 + (rnd() - 0.5) * 0.3;
    for (let j = 0; j < MONTH_DIM; j++) data[i * MONTH_DIM + j] = (rnd() - 0.5) * 0.1;
    data[i * MONTH_DIM] += Math.cos(a);
    data[i * MONTH_DIM + 1] += Math.sin(a);
    labels.push(MONTHS[m]);
  }
  return { npy: npyBytes(data, MONTH_ROWS, MONTH_DIM), labels: `${labels.join('\n')}\n` };
}

export async function api(daemon, method, p, body, type = 'application/json') {
  const r = await fetch(`${daemon.base}/v1${p}`, {
    method, body: body == null ? undefined : (type === 'application/json' ? JSON.stringify(body) : body),
    headers: body == null ? {} : { 'Content-Type': type },
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: HTTP ${r.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

export async function waitJob(daemon, id, waitMs) {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const j = await daemon.json(`/v1/jobs/${id}`);
    if (['succeeded', 'failed', 'cancelled'].includes(j.state)) {
      if (j.state !== 'succeeded') throw new Error(`job ${id} ${j.state}: ${j.error}`);
      return j;
    }
    if (Date.now() > deadline) throw new Error(`job ${id} still ${j.state}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const TRAIN = { steps: 1500, batch_size: 512, lr: 0.003, lr_warmup_steps: 30, sparsity_warmup_steps: 100, eval_every: 500 };

/* Queues the API-side setup; returns {wide, months} promises resolving to their SAE ids (wide is analysed too). */
export function setup(daemon, waitMs) {
  const wideJob = api(daemon, 'POST', '/jobs', { type: 'train', dataset: 1, sae: { arch: 'relu', n_latents: 128, group_size: 2, sparsity_coef: 0.3 }, train: TRAIN });
  const months = (async () => {
    const { npy, labels } = monthsData();
    const ds = await api(daemon, 'POST', '/datasets?kind=npy&name=months', npy, 'application/octet-stream');
    await api(daemon, 'PUT', `/datasets/${ds.id}/labels`, labels, 'text/plain');
    const job = await api(daemon, 'POST', '/jobs', { type: 'train', dataset: ds.id,
      sae: { arch: 'relu', n_latents: 64, group_size: 2, sparsity_coef: 0.05 },
      train: { steps: 400, batch_size: 256, lr: 0.003, lr_warmup_steps: 30, sparsity_warmup_steps: 50, eval_every: 200, eval_rows: 1000 } });
    const sae = (await waitJob(daemon, job.id, waitMs)).result.sae;
    const a = await api(daemon, 'POST', '/jobs', { type: 'analyze', sae });
    await waitJob(daemon, a.id, waitMs);
    return { sae, dataset: ds.id };
  })();
  const wide = (async () => {
    const sae = (await waitJob(daemon, (await wideJob).id, waitMs)).result.sae;
    const a = await api(daemon, 'POST', '/jobs', { type: 'analyze', sae, n_samples: 20000 });
    await waitJob(daemon, a.id, waitMs);
    return sae;
  })();
  wide.catch(() => {}); months.catch(() => {});   /* awaited later; no unhandled rejection meanwhile */
  return { wide, months };
}

/* ---- the steps ---- */

/* Runs an analyze job from SAE #1's page and checks every figure it brings. */
export async function testAnalyze(t) {
  const { page, check, shot, daemon } = t;
  await page.evaluate(() => { location.hash = '#/saes/1'; });
  await page.waitForSelector('#run-analyze');
  check('an unanalysed SAE offers to run an analysis, and draws nothing', await page.locator('#analysis-section canvas').count() === 0);
  await page.fill('#analyze-n', '20000');
  await page.click('#run-analyze');
  await page.waitForSelector('#analysis-status .jobline');
  check('the analyze job is followed on the page', /analyze job #\d+/.test(await page.textContent('#analysis-status .jobline')));
  await page.waitForSelector('#recovery-chart[data-bars]', { timeout: t.WAIT_MS });
  await page.waitForSelector('#density-chart[data-bars]', { timeout: t.WAIT_MS });
  const rec = await daemon.json('/v1/saes/1/recovery');
  const recBars = rec.per_plane_hist.filter((c) => c > 0).length;
  check('the recovery histogram draws one bar per non-empty bin', await attr(page, '#recovery-chart', 'data-bars') === recBars,
    `${await attr(page, '#recovery-chart', 'data-bars')} vs ${JSON.stringify(rec.per_plane_hist)}`);
  check('the recovery histogram is on its canvas', await page.evaluate(colouredPixels, '#recovery-chart') > 200);
  check('the circle-FVE histogram is drawn', await attr(page, '#circle-fve-chart', 'data-bars') > 0
    && await page.evaluate(colouredPixels, '#circle-fve-chart') > 100);
  check('the density histogram is drawn', await attr(page, '#density-chart', 'data-bars') > 0
    && await page.evaluate(colouredPixels, '#density-chart') > 100);
  check('the summary shows circles found', (await page.textContent('[data-stat="circles_found"] .value')).replace(/\s/g, '')
    === `${rec.circles_found}/${rec.n_circles}`);
  const gp = rec.groups_per_plane_hist, gp99 = rec.groups_per_plane_hist_99;
  check('groups of 2 are scored as subspaces: every circle counted once at each cut', Array.isArray(gp) && Array.isArray(gp99)
    && gp.reduce((a, b) => a + b, 0) === rec.n_circles && gp99.reduce((a, b) => a + b, 0) === rec.n_circles
    && rec.circles_one_group === (gp[1] ?? 0), JSON.stringify([gp, gp99, rec.circles_one_group]));
  const held = gp.slice(1).reduce((a, b) => a + b, 0);
  check('groups per held plane: null when none is held, else at least 1 (and the histogram\'s mean below its last bin, to the reply\'s 7 digits)',
    held === 0 ? rec.groups_per_held_plane === null
      : rec.groups_per_held_plane >= 1 && (gp.length > 10 || Math.abs(rec.groups_per_held_plane
        - gp.reduce((a, c, k) => a + k * c, 0) / held) < 1e-5), JSON.stringify([gp, rec.groups_per_held_plane]));
  const gBars = gp.filter((c) => c > 0).length + gp99.filter((c) => c > 0).length;
  check('the groups-per-plane histogram draws both cuts, one bar per non-empty bin',
    await attr(page, '#groups-per-plane-chart', 'data-bars') === gBars, `${await attr(page, '#groups-per-plane-chart', 'data-bars')} vs ${gBars}`);
  check('the summary shows the circles held by one group', (await page.textContent('[data-stat="circles_one_group"] .value'))
    .replace(/\s/g, '') === `${rec.circles_one_group}/${rec.n_circles}`);
  const lat = await daemon.json('/v1/saes/1/latents?limit=1000');
  const dead = lat.items.filter((l) => l.density === 0).length;
  check('the density panel counts the dead latents', new RegExp(`${dead} dead`).test(await page.textContent('[data-slot="density"]')));

  // The 8x-vs-16x figure: the wider SAE beside this one.
  const wide = await t.setup.wide;
  await page.selectOption('#compare-sae', String(wide));
  await page.waitForFunction(() => /compare=\d+/.test(location.hash));
  const wideRec = await daemon.json(`/v1/saes/${wide}/recovery`);
  const both = recBars + wideRec.per_plane_hist.filter((c) => c > 0).length;
  await page.waitForFunction((n) => Number(document.querySelector('#recovery-chart')?.dataset.bars) === n, both);
  check('a second SAE adds its bars to the recovery histogram', await page.evaluate(pixelsOf, ['#recovery-chart', SECOND_RGB]) > 200);
  check('the comparison names both SAEs', new RegExp(`SAE #1:.*SAE #${wide}:`).test(await page.textContent('[data-slot="recovery"]')));
  await shot(page, 'sae-analysis');
}

/* The groups table: sort by Jaccard, page, open a group and check its four figures. */
export async function testGroups(t) {
  const { page, check, shot, daemon } = t;
  await page.click('#open-groups');
  await page.waitForSelector('#groups-table');
  check('the groups table opens from the SAE page', page.url().endsWith('#/saes/1/groups'));
  const nGroups = (await daemon.json('/v1/saes/1/analysis')).n_groups;
  check('the table shows the first page of groups', await page.locator('#groups-table tbody tr').count() === Math.min(50, nGroups));
  await page.click('th[data-sort="jaccard"] a');
  await page.waitForSelector('th[data-sort="jaccard"][aria-sort="descending"]');
  const jac = await page.$$eval('#groups-table td[data-col="jaccard"]', (tds) => tds.map((td) => Number(td.textContent)));
  check('sorting by Jaccard puts the largest first', jac.length > 1 && jac.every((v, i) => i === 0 || v <= jac[i - 1]), JSON.stringify(jac.slice(0, 6)));
  const api = await daemon.json('/v1/saes/1/groups?sort=jaccard&limit=1');
  const first = await page.getAttribute('#groups-table tbody tr:first-child', 'data-group');
  check('the first row is the API\'s most co-active group', Number(first) === api.items[0].group, `${first} vs ${api.items[0].group}`);
  await page.click('th[data-sort="max_cos"] a');
  await page.waitForSelector('th[data-sort="max_cos"][aria-sort="descending"]');
  const cos = await page.$$eval('#groups-table td[data-col="max_cos"]', (tds) => tds.map((td) => Number(td.textContent)));
  check('sorting by max cosine (in the browser) works too', cos.every((v, i) => i === 0 || v <= cos[i - 1]), JSON.stringify(cos.slice(0, 6)));
  await page.click('th[data-sort="jaccard"] a');
  await page.waitForSelector('th[data-sort="jaccard"][aria-sort="descending"]');
  await shot(page, 'groups');

  await page.click('#groups-table tbody tr:first-child td:nth-child(3)');
  await page.waitForSelector('[data-fig="projection"][data-points]');
  const g = Number(first);
  check('a row opens its group', page.url().endsWith(`#/saes/1/groups/${g}`), page.url());
  const detail = await daemon.json(`/v1/saes/1/groups/${g}`);
  const proj = await daemon.json(`/v1/saes/1/groups/${g}/projection?limit=500`);
  const s = detail.members.length;
  check('the cosine heatmap has every member pair', await attr(page, '[data-fig="cosine"]', 'data-cells') === s * s
    && await page.evaluate(colouredPixels, '[data-fig="cosine"]') > 200);
  check('the singular values are drawn', await attr(page, '[data-fig="singular"]', 'data-bars') === detail.singular_values.filter((v) => v > 0).length
    && await page.evaluate(colouredPixels, '[data-fig="singular"]') > 100);
  check('the members are drawn in the plane', await attr(page, '[data-fig="plane"]', 'data-arrows') === s
    && await page.evaluate(colouredPixels, '[data-fig="plane"]') > 30);
  check('the projection draws every row the API gives', await attr(page, '[data-fig="projection"]', 'data-points') === proj.points.length
    && proj.points.length > 0 && await page.evaluate(colouredPixels, '[data-fig="projection"]') > proj.points.length);
  check('the members table lists each member', await page.locator('#members tbody tr').count() === s);

  // Hover the top-right cosine cell: the tooltip gives the exact value.
  await hoverCell(page, '[data-fig="cosine"]', 0, s - 1);
  const tip = page.locator('[data-fig="cosine"] .tip');
  await tip.waitFor({ state: 'visible' });
  check('hovering a heatmap cell shows its value', (await tip.textContent()).includes(detail.cosine[0][s - 1].toFixed(4)), await tip.textContent());
  await page.mouse.move(0, 0);
  await shot(page, 'group');
  return g;
}

/* The Jaccard heatmap of a group and its neighbours, checked against the API. */
export async function testJaccard(t, g) {
  const { page, check, shot, daemon } = t;
  await page.click('#open-jaccard');
  await page.waitForSelector('[data-fig="jaccard"][data-cells]');
  check('"Jaccard with neighbours" opens the heatmap for the group', page.url().endsWith(`#/saes/1/jaccard?group=${g}`), page.url());
  const members = (await daemon.json(`/v1/saes/1/groups/${g}`)).members;
  const cells = await attr(page, '[data-fig="jaccard"]', 'data-cells');
  const n = Math.round(Math.sqrt(cells));
  check('the heatmap holds the group and its neighbours', n * n === cells && n > members.length, `${cells} cells, ${members.length} members`);
  check('the Jaccard heatmap is on its canvas', await page.evaluate(colouredPixels, '[data-fig="jaccard"]') > 500);
  await shot(page, 'jaccard');

  // A typed list of latents: the matrix matches the API's.
  await page.fill('#jac-latents', '0, 1, 2, 3');
  await page.click('#jac-show-list');
  await page.waitForFunction(() => /latents=0/.test(location.hash) && document.querySelector('[data-fig="jaccard"]')?.dataset.cells === '16');
  const want = await daemon.json('/v1/saes/1/jaccard?latents=0,1,2,3');
  await hoverCell(page, '[data-fig="jaccard"]', 0, 1);
  const tip = page.locator('[data-fig="jaccard"] .tip');
  await tip.waitFor({ state: 'visible' });
  check('a typed list of latents gives the API\'s matrix (hover)', (await tip.textContent()).includes(want.matrix[0][1].toFixed(4)), await tip.textContent());
  await page.mouse.move(0, 0);
}

/* A PCA job run from the page on the labelled months data, then the scatter. */
export async function testPca(t) {
  const { page, check, shot } = t;
  const { sae } = await t.setup.months;
  await page.evaluate((id) => { location.hash = `#/saes/${id}/pca`; }, sae);
  await page.waitForSelector('#pca-labels .check');
  check('the PCA form lists the dataset\'s labels with counts', await page.locator('#pca-labels .check').count() === 12
    && /January\s*1,667/.test(await page.textContent('#pca-labels')));
  check('with no PCA yet the page says so', /No PCA of this SAE yet/.test(await page.textContent('#pca-result')));
  await page.click('.label-tools button:has-text("none")');
  for (const m of ['January', 'April', 'July', 'October']) await page.check(`#pca-labels input[data-label="${m}"]`);
  await page.fill('#pca-components', '4');
  await page.click('#run-pca');
  await page.waitForSelector('[data-fig="pca"][data-points]', { timeout: t.WAIT_MS });
  const four = await attr(page, '[data-fig="pca"]', 'data-points');
  const want = [0, 3, 6, 9].reduce((sum, m) => sum + monthRows(m), 0);
  check('a PCA by four labels draws their rows', four === want, `${four} vs ${want}`);
  check('the legend names the four labels', JSON.stringify(await page.$$eval('#pca-legend .item', (els) => els.map((e) => e.dataset.label)))
    === JSON.stringify(['January', 'April', 'July', 'October']));

  await page.click('.label-tools button:has-text("all")');
  await page.fill('#pca-components', '5');
  await page.click('#run-pca');
  await page.waitForFunction((n) => Number(document.querySelector('[data-fig="pca"]')?.dataset.points) === n, 20000, { timeout: t.WAIT_MS });
  check('a PCA of every label draws all 20,000 rows', true);
  check('the legend counts each month\'s rows', /January\s*1,667/.test(await page.textContent('#pca-legend')));
  check('its legend has the twelve months in order', JSON.stringify(await page.$$eval('#pca-legend .item', (els) => els.map((e) => e.dataset.label)))
    === JSON.stringify(MONTHS));
  check('the scatter is on its canvas', await page.evaluate(colouredPixels, '[data-fig="pca"]') > 3000);
  check('the explained variance is drawn', await attr(page, '[data-fig="variance"]', 'data-bars') === 5);
  check('the earlier runs list both', await page.locator('#pca-runs tbody tr').count() === 2);
  await shot(page, 'pca');

  await page.selectOption('#pca-x', '3');
  await page.selectOption('#pca-y', '4');
  await page.waitForFunction(() => /x=3&y=4/.test(location.hash));
  check('PC3 vs PC4 redraws every point', await attr(page, '[data-fig="pca"]', 'data-points') === 20000
    && await page.evaluate(colouredPixels, '[data-fig="pca"]') > 3000);
  await page.click('#pca-legend .item[data-label="January"]');
  await page.waitForFunction((n) => Number(document.querySelector('[data-fig="pca"]')?.dataset.points) === n, MONTH_ROWS - monthRows(0));
  check('a legend click hides that label\'s rows', true);
  await page.click('#pca-legend .item[data-label="January"]');
  await shot(page, 'pca-pc3-pc4');

  const text = await hoverUntilTip(page, '[data-fig="pca"]');
  check('hovering a point shows its row and label', new RegExp(`row \\d+ · (${MONTHS.join('|')})`).test(text), text);
  await page.mouse.move(0, 0);
}

/* Of the 16 densest groups, the one whose projected rows go furthest round the origin (most 30° sectors
   holding a row): the months circle seen through that group, the picture worth a screenshot. */
async function roundestGroup(daemon, sae) {
  const groups = (await daemon.json(`/v1/saes/${sae}/groups?sort=density&limit=16`)).items;
  let best = groups[0].group, bestCover = -1;
  for (const { group } of groups) {
    const { points } = await daemon.json(`/v1/saes/${sae}/groups/${group}/projection?limit=500`);
    const sectors = new Set(points.map(([u, v]) => Math.floor(((Math.atan2(v, u) + Math.PI) / (2 * Math.PI)) * 12) % 12));
    if (sectors.size > bestCover) { bestCover = sectors.size; best = group; }
  }
  return best;
}

/* A group of the SAE on the labelled months data: its projection is coloured by label, with the label on hover. */
export async function testLabelledGroup(t) {
  const { page, check, shot, daemon } = t;
  const { sae } = await t.setup.months;
  const g = await roundestGroup(daemon, sae);
  await page.evaluate((id) => { location.hash = `#/saes/${id}/groups?sort=density`; }, sae);
  await page.waitForSelector('th[data-sort="density"][aria-sort="descending"]');
  await page.click(`#groups-table tbody tr[data-group="${g}"] td:nth-child(2)`);
  await page.waitForSelector('[data-fig="projection"][data-points]');
  const proj = await daemon.json(`/v1/saes/${sae}/groups/${g}/projection?limit=500`);
  const labels = [...new Set(proj.labels)];
  check('a labelled group\'s projection draws its rows', await attr(page, '[data-fig="projection"]', 'data-points') === proj.points.length
    && await page.evaluate(colouredPixels, '[data-fig="projection"]') > proj.points.length);
  const shown = await page.$$eval('#projection-legend .item', (els) => els.map((e) => e.dataset.label));
  check('its legend lists the labels of those rows', shown.length === labels.length && shown.every((l) => labels.includes(l)),
    `${JSON.stringify(shown)} vs ${JSON.stringify(labels)}`);
  const text = await hoverUntilTip(page, '[data-fig="projection"]');
  const row = Number(/row (\d+)/.exec(text)?.[1]);
  check('hovering a projected row shows its label', text.includes(` · ${MONTHS[row % 12]}`), text);
  await shot(page, 'group-labelled');
}
