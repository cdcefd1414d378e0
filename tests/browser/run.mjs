#!/usr/bin/env node
// tests/browser/run.mjs — the dashboard in a real browser against a real saed.
//
// Starts $BUILD/saed (default build/) on a free loopback port with a temporary
// data directory, drives Debian's Chromium (/usr/bin/chromium) through
// playwright-core, and does what a person would: creates a small circles
// dataset and a short training job from the form (after a deliberate
// validation error), watches the progress bar and curves grow until the job
// succeeds, opens the SAE, looks at the lists, starts a long job, restarts the
// daemon under it (the page must reconnect by itself), cancels and deletes it.
// Then the analysis pages (analysis.mjs): an analyze job run from the SAE
// page, its histograms, the groups table, a group, the Jaccard heatmap, and a
// PCA job run from the page on an uploaded, labelled dataset, and an SAE imported
// from a SAELens folder (saelens.mjs). Then the group
// space of groupspace jobs (groupspace.mjs): the scatter played through its
// snapshots, a running job's slider growing, latents' densities on hover.
// Last, a second saed with --token-file (tokens.mjs): the token dialog, a
// read token's 403s, a write token's dataset and live job.
// Any console error, page error or failed request that was not provoked on
// purpose is a failure. Screenshots go to tests/browser/artifacts/.
// Last line: "N passed, N failed"; exit status 1 when anything failed.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, openSync, closeSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { setup, testAnalyze, testGroups, testJaccard, testPca, testLabelledGroup } from './analysis.mjs';
import { testGroupSpace, testGroupSpaceLive, testGroupSpaceLatents } from './groupspace.mjs';
import { testTokens } from './tokens.mjs';
import { testImported } from './saelens.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUILD = process.env.BUILD || 'build';
const SAED = path.resolve(ROOT, BUILD, 'saed');
const ARTIFACTS = path.join(ROOT, 'tests/browser/artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const HARD_LIMIT_MS = 170_000;   /* the whole run; a hang must not stall `make test` */
const WAIT_MS = 240_000;         /* one wait for the page: generous, since a loaded machine and the sanitizer build train slowly */
const LAUNCH = {   /* Chromium's options, for run.mjs's browser and tokens.mjs's own */
  executablePath: CHROMIUM, headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
};
const SERIES_RGB = [[47, 111, 223], [232, 116, 59]]; /* charts.js PALETTE[0..1], #2f6fdf #e8743b */

let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}${detail ? `: ${detail}` : ''}`); }
  return ok;
}

/* ---- the daemon ---- */

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Daemon {
  constructor(port, dataDir, logPath, args = []) { Object.assign(this, { port, dataDir, logPath, args, proc: null }); }

  async start() {
    const fd = openSync(this.logPath, 'a');
    this.proc = spawn(SAED, ['--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir,
      '--web-dir', path.join(ROOT, 'web'), ...this.args], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, sig) => resolve({ code, sig })));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      try {
        const r = await fetch(`${this.base}/v1/health`);
        if (r.ok) return;
      } catch { /* not up yet */ }
      if (this.proc.exitCode != null) break;
      await sleep(100);
    }
    throw new Error(`saed did not answer /v1/health; see ${this.logPath}`);
  }

  get base() { return `http://127.0.0.1:${this.port}`; }

  /* SIGTERM, then SIGKILL if it has not gone after a while; resolves with {code, sig}. */
  async stop() {
    if (!this.proc || this.proc.exitCode != null || this.proc.signalCode != null) return this.exited;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 20_000);
    const res = await this.exited;
    clearTimeout(t);
    return res;
  }

  async json(p) {
    const r = await fetch(`${this.base}${p}`);
    if (!r.ok) throw new Error(`${p}: HTTP ${r.status}`);
    return r.json();
  }
}

/* ---- what the browser reports ---- */

/* Console errors, page errors and failed requests. While `excused` is set, the
   ones it accepts (provoked on purpose) are kept apart instead of failing. */
class Trouble {
  constructor() { this.unexpected = []; this.excusedSeen = []; this.excused = null; }
  note(kind, text, url = '') {
    const item = { kind, text, url };
    if (this.excused && this.excused(item)) this.excusedSeen.push(item);
    else this.unexpected.push(item);
  }
  watch(page) {
    page.on('console', (m) => { if (m.type() === 'error') this.note('console', m.text(), m.location()?.url ?? ''); });
    page.on('pageerror', (e) => this.note('pageerror', e.message));
    page.on('requestfailed', (req) => {
      const err = req.failure()?.errorText ?? '';
      if (err === 'net::ERR_ABORTED') return;   /* a stream closed or a request aborted by leaving a page */
      this.note('requestfailed', err, req.url());
    });
    page.on('response', (res) => { if (res.status() >= 400) this.note('http', `HTTP ${res.status()}`, res.url()); });
  }
}

/* Records, from the first byte of every document, each value the progress bar
   and the charts take, so the test sees them move without racing the page. */
function recorder() {
  window.__seen = { progress: [], points: [] };
  new MutationObserver((recs) => {
    for (const r of recs) {
      const t = r.target;
      if (r.attributeName === 'aria-valuenow' && t.closest?.('.progress.big'))
        window.__seen.progress.push(Number(t.getAttribute('aria-valuenow')));
      if (r.attributeName === 'data-points' && t.dataset?.chart === 'loss')
        window.__seen.points.push(Number(t.dataset.points));
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['aria-valuenow', 'data-points'] });
}

/* Pixels in the series' colours on each chart canvas: [{chart, count}]. */
function seriesPixels(colours) {
  return [...document.querySelectorAll('[data-chart]')].map((card) => {
    const c = card.querySelector('canvas');
    if (!c || !c.width || !c.height) return { chart: card.dataset.chart, count: 0 };
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let count = 0;
    for (let i = 0; i < d.length; i += 4)
      if (d[i + 3] > 200 && colours.some((c) => Math.abs(d[i] - c[0]) + Math.abs(d[i + 1] - c[1]) + Math.abs(d[i + 2] - c[2]) < 60)) count++;
    return { chart: card.dataset.chart, count };
  });
}

/* ---- steps ---- */

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function fillForm(page, values) {
  for (const [name, v] of Object.entries(values)) await page.fill(`[name="${name}"]`, String(v));
}

/* Small enough to train in seconds, sparse enough that the SAE finds most of the 8 circles (the analysis steps look at them). */
const SMALL_DATASET = { name: 'c8', 'params.n_circles': 8, 'params.dim': 32, 'params.p_active': 0.1 };
const SMALL_JOB = { 'sae.n_latents': 64, 'sae.sparsity_coef': 0.3, 'train.steps': 1500, 'train.batch_size': 512, 'train.lr': 0.003,
  'train.lr_warmup_steps': 30, 'train.sparsity_warmup_steps': 100, 'train.eval_every': 50 };

async function testEmptyAndForm(page, trouble, base) {
  await page.goto(`${base}/`);
  await page.waitForSelector('.page-head h1');
  check('/ opens the jobs page', page.url().endsWith('#/jobs'), page.url());
  check('an empty daemon says there are no jobs', await page.locator('text=No jobs yet').isVisible());

  await page.click('#nav a[data-nav="new"]');
  await page.waitForSelector('form#new-job');
  const v = async (n) => page.inputValue(`[name="${n}"]`);
  check('the form starts at the seed experiment', await v('params.n_circles') === '1600' && await v('params.dim') === '200'
    && await v('params.p_active') === '0.002' && await v('sae.n_latents') === '12800' && await v('sae.arch') === 'relu'
    && await v('sae.group_size') === '2' && await v('train.steps') === '20000',
  `${await v('params.n_circles')} ${await v('params.dim')} ${await v('params.p_active')} ${await v('sae.n_latents')}`);
  check('with no datasets the form creates a new one', await page.inputValue('#f-dataset') === 'new');
  // Each architecture shows its own fields: k for topk, bandwidth for jumprelu; back to relu for the rest.
  const shown = async (n) => page.locator(`[name="${n}"]`).isVisible();
  await page.selectOption('[name="sae.arch"]', 'topk');
  check('topk shows k and hides sparsity_coef', await shown('sae.k') && !await shown('sae.sparsity_coef') && !await shown('sae.bandwidth'));
  await page.selectOption('[name="sae.arch"]', 'jumprelu');
  check('jumprelu shows bandwidth and sparsity_coef, not k', await shown('sae.bandwidth') && await shown('sae.sparsity_coef') && !await shown('sae.k'));
  await page.selectOption('[name="sae.arch"]', 'relu');
  check('relu hides k and bandwidth', !await shown('sae.k') && !await shown('sae.bandwidth') && await shown('sae.threshold'));
  await shot(page, 'new-job');

  // A job the daemon refuses (65 latents do not split into groups of 2): the error lands on the field.
  await fillForm(page, { ...SMALL_DATASET, ...SMALL_JOB, 'sae.n_latents': 65 });
  trouble.excused = (t) => /\/v1\/jobs$/.test(t.url) && (t.kind === 'http' ? t.text === 'HTTP 422' : /422/.test(t.text));
  await page.click('#submit');
  const err = page.locator('.field.invalid:has([name="sae.n_latents"]) .err');
  await err.waitFor({ timeout: WAIT_MS });
  trouble.excused = null;
  check('a 422 from the daemon is shown beside sae.n_latents', /multiple/.test(await err.textContent()), await err.textContent());
  check('the dataset made on the way is selected for the retry', await page.inputValue('#f-dataset') === '1'
    && await page.locator('#circles-fields').isHidden());

  await fillForm(page, { 'sae.n_latents': 64 });
  await page.click('#submit');
  await page.waitForURL(/#\/jobs\/1$/, { timeout: WAIT_MS });
  check('submitting opens the new job', true);
}

async function testTraining(page, daemon) {
  await page.waitForSelector('.badge[data-state="succeeded"]', { timeout: WAIT_MS });
  check('the job succeeds on the page', true);
  await page.waitForFunction(() => document.querySelector('[data-chart="loss"]')?.dataset.points !== '0');
  const seen = await page.evaluate(() => window.__seen);
  const mid = seen.progress.filter((x) => x > 0 && x < 100);
  check('the progress bar moved through intermediate values', mid.length >= 1, JSON.stringify(seen.progress));
  check('the progress bar ends full', seen.progress.at(-1) === 100, String(seen.progress.at(-1)));
  const metrics = await daemon.json('/v1/jobs/1/metrics');
  const n = metrics.step.length;
  const grew = seen.points.filter((p) => p > 0 && p < n);
  check('the curves grew while the job trained', grew.length >= 1 && seen.points.at(-1) === n, `${JSON.stringify(seen.points)} of ${n}`);
  const points = await page.$$eval('[data-chart]', (els) => els.map((e) => [e.dataset.chart, Number(e.dataset.points)]));
  check('four charts hold every metrics row', points.length === 4 && points.every(([, p]) => p === n), JSON.stringify(points));
  const pixels = await page.evaluate(seriesPixels, SERIES_RGB);
  check('every chart has its curve drawn on the canvas', pixels.length === 4 && pixels.every((p) => p.count > 80), JSON.stringify(pixels));
  check('the step counter reads 1,500 / 1,500', /1,500 \/ 1,500/.test(await page.textContent('#stat-step')));
  check('latest metrics are listed', /fve/.test(await page.textContent('#latest')));
  await shot(page, 'job');
}

async function testSae(page, daemon) {
  await page.click('#open-sae');
  await page.waitForSelector('#metrics');
  check('"Open SAE" opens the SAE page', page.url().endsWith('#/saes/1'), page.url());
  const sae = await daemon.json('/v1/saes/1');
  const fve = await page.textContent('[data-metric="fve"] .value');
  check('the SAE page shows the final FVE', Math.abs(Number(fve) - sae.metrics.fve) < 1e-3 * Math.max(1, Math.abs(sae.metrics.fve)), `${fve} vs ${sae.metrics.fve}`);
  check('the SAE page shows its config', /64/.test(await page.textContent('#config')) && /relu/.test(await page.textContent('#config')));
  await page.waitForSelector('#run-analyze');
  check('before an analysis the page offers one, with no made-up figures',
    /not been analysed/.test(await page.textContent('#analysis-status')) && await page.locator('#analysis-section canvas').count() === 0);
  const href = await page.getAttribute('a[href$="/decoder.npy"]', 'href');
  const res = await page.request.get(`${daemon.base}${href}`);
  check('the decoder download link works', res.ok() && (await res.body()).subarray(1, 6).toString() === 'NUMPY');
  await shot(page, 'sae');

  await page.click('#nav a[data-nav="saes"]');
  await page.waitForSelector('#saes-table table');
  check('the SAE list shows the new SAE', await page.locator('#saes-table tbody tr').count() === 1);
  await shot(page, 'saes');
  await page.click('#nav a[data-nav="datasets"]');
  await page.waitForSelector('#datasets-table table');
  check('the dataset list shows c8', /c8/.test(await page.textContent('#datasets-table tbody')));
  await shot(page, 'datasets');
}

/* The step a "1,234 / 1,000,000" counter shows. */
const stepOf = async (page, sel) => Number((await page.textContent(sel)).split('/')[0].replace(/\D/g, ''));

/* Waits until the step counter at sel moves past `from`. */
async function waitStepPast(page, sel, from) {
  await page.waitForFunction(([s, f]) => Number(document.querySelector(s)?.textContent.split('/')[0].replace(/\D/g, '')) > f,
    [sel, from], { timeout: WAIT_MS });
}

async function testLongJob(page, daemon, trouble) {
  await page.click('#nav a[data-nav="new"]');
  await page.waitForSelector('form#new-job');
  check('a second job defaults to the existing dataset', await page.inputValue('#f-dataset') === '1');
  await fillForm(page, { ...SMALL_JOB, 'train.steps': 1000000, 'train.eval_every': 50 });
  await page.click('#submit');
  await page.waitForURL(/#\/jobs\/2$/, { timeout: WAIT_MS });
  await page.waitForSelector('.badge[data-state="running"]', { timeout: WAIT_MS });
  const steps = '#stat-step .value';
  await waitStepPast(page, steps, 0);

  await page.click('#nav a[data-nav="jobs"]');
  await page.waitForSelector('#jobs-table');
  check('the job list shows both jobs', await page.locator('#jobs-table tbody tr').count() === 2);
  check('the job list shows their states', await page.locator('tr[data-job="1"] .badge').textContent() === 'succeeded'
    && await page.locator('tr[data-job="2"] .badge').textContent() === 'running');
  const rowSteps = 'tr[data-job="2"] td[data-col="steps"]';
  const before = await stepOf(page, rowSteps);
  await waitStepPast(page, rowSteps, before);
  check('the running job moves in the list', true);
  check('the list shows its ETA', /\d+ (s|min|h)/.test(await page.textContent('tr[data-job="2"] td[data-col="eta"]')));
  check('the list shows its progress bar', await page.locator('tr[data-job="2"] [role=progressbar]').isVisible());
  await shot(page, 'jobs');

  // Restart the daemon under the open job page: the stream must come back by itself.
  await page.click('tr[data-job="2"] a');
  await page.waitForSelector('#live[data-status="live"]', { timeout: WAIT_MS });
  trouble.excused = (t) => t.kind !== 'pageerror' && new URL(t.url || 'x:/').pathname.startsWith('/v1/');
  const stopped = await daemon.stop();
  check('saed stops on SIGTERM with a job running', stopped.code === 0, JSON.stringify(stopped));
  await page.waitForSelector('#live[data-status="reconnecting"]', { timeout: WAIT_MS });
  check('the job page notices the daemon went away', true);
  await daemon.start();
  await page.waitForSelector('#live[data-status="live"]', { timeout: WAIT_MS });
  trouble.excused = null;
  check('the job page reconnects by itself', true);
  await page.waitForSelector('.badge[data-state="running"]', { timeout: WAIT_MS });
  const after = await stepOf(page, steps);
  await waitStepPast(page, steps, after);
  check('progress moves again after the restart', true);

  page.once('dialog', (d) => d.accept());
  await page.click('#cancel');
  await page.waitForSelector('.badge[data-state="cancelled"]', { timeout: WAIT_MS });
  check('cancel stops the job', (await daemon.json('/v1/jobs/2')).state === 'cancelled');
  await shot(page, 'job-cancelled');
  page.once('dialog', (d) => d.accept());
  await page.click('#delete');
  await page.waitForURL(/#\/jobs$/, { timeout: WAIT_MS });
  await page.waitForSelector('#jobs-table');
  check('delete removes the job', await page.locator('tr[data-job="2"]').count() === 0);
}

async function testNotFound(page) {
  await page.evaluate(() => { location.hash = '#/no/such/page'; });
  await page.waitForSelector('text=Not found');
  check('an unknown route says so', true);
}

/* ---- main ---- */

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const f of readdirSync(ARTIFACTS)) if (f.endsWith('.png')) rmSync(path.join(ARTIFACTS, f));   /* no stale screenshots */
  const tmp = mkdtempSync(path.join(tmpdir(), 'saed-browser-'));
  const logPath = path.join(ARTIFACTS, 'saed.log');
  rmSync(logPath, { force: true });
  const daemon = new Daemon(await freePort(), path.join(tmp, 'data'), logPath);
  mkdirSync(daemon.dataDir);
  const others = [];   /* daemons a step starts (tokens.mjs); it stops them, the watchdog kills them */
  async function startDaemon(name, args) {
    const d = new Daemon(await freePort(), path.join(tmp, `data-${name}`), path.join(ARTIFACTS, `saed-${name}.log`), args);
    mkdirSync(d.dataDir);
    rmSync(d.logPath, { force: true });
    others.push(d);
    await d.start();
    return d;
  }
  let browser = null;
  const watchdog = setTimeout(async () => {
    check('finishes within the time limit', false, `${HARD_LIMIT_MS / 1000} s`);
    console.log(`${passed} passed, ${failed} failed`);
    for (const d of [daemon, ...others]) d.proc?.kill('SIGKILL');
    process.exit(1);
  }, HARD_LIMIT_MS);

  const trouble = new Trouble();
  try {
    await daemon.start();
    browser = await chromium.launchPersistentContext(path.join(tmp, 'profile'), { ...LAUNCH, viewport: { width: 1360, height: 900 } });
    const page = browser.pages()[0] ?? await browser.newPage();
    page.setDefaultTimeout(WAIT_MS);
    await page.addInitScript(recorder);
    trouble.watch(page);

    const t = { page, daemon, trouble, check, shot, WAIT_MS, setup: null, group: 0,   /* for analysis.mjs, groupspace.mjs, tokens.mjs */
      tmp, startDaemon, launchOptions: LAUNCH };
    for (const [name, step] of [
      ['form', () => testEmptyAndForm(page, trouble, daemon.base)],
      ['training', () => testTraining(page, daemon)],
      ['sae', () => testSae(page, daemon)],
      ['long job', () => testLongJob(page, daemon, trouble)],
      ['analyze', () => { t.setup = setup(daemon, WAIT_MS); return testAnalyze(t); }],
      ['groups', async () => { t.group = await testGroups(t); }],
      ['jaccard', () => testJaccard(t, t.group)],
      ['pca', () => testPca(t)],
      ['labelled group', () => testLabelledGroup(t)],
      ['imported SAE', () => testImported(t)],
      ['group space', () => testGroupSpace(t)],
      ['group space live', () => testGroupSpaceLive(t)],
      ['group space of latents', () => testGroupSpaceLatents(t)],
      ['tokens', () => testTokens(t)],
      ['not found', () => testNotFound(page)],
    ]) {
      const t0 = Date.now();
      try { await step(); } catch (e) {
        trouble.excused = null;
        check(`${name} steps run to the end`, false, e.message.split('\n')[0]);
        await shot(page, `failed-${name.replace(/ /g, '-')}`).catch(() => {});
      }
      console.log(`#    ${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    for (const t of trouble.excusedSeen) console.log(`#    provoked on purpose: ${t.kind} ${t.text} ${t.url}`);
    check('no console error, page error or failed request', trouble.unexpected.length === 0,
      trouble.unexpected.map((t) => `${t.kind} ${t.text} ${t.url}`).join(' | '));
  } catch (e) {
    check('the browser and daemon start', false, e.message.split('\n')[0]);
  } finally {
    await browser?.close().catch(() => {});
    for (const d of others) await d.stop();   /* stopped already, unless its step broke off early */
    const exit = await daemon.stop();
    check('saed exits cleanly at the end', exit?.code === 0, JSON.stringify(exit));
    let log = '';
    try { log = readFileSync(logPath, 'utf8'); } catch { /* no log */ }
    check('the daemon log has no sanitizer report', !/AddressSanitizer|LeakSanitizer|runtime error:/.test(log));
    rmSync(tmp, { recursive: true, force: true });
    clearTimeout(watchdog);
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
