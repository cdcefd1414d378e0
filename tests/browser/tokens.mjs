// tests/browser/tokens.mjs — the dashboard against a daemon that wants bearer
// tokens, run by run.mjs after the other pages.
//
// Starts a second saed of its own (fresh data directory, free port,
// --token-file with a write token, a "write:" one and a "read:" one) and
// first checks the contract with plain fetch: GET /v1/jobs without a token is
// 401 with WWW-Authenticate, with the read token (header or ?access_token=)
// 200, a POST with the read token 403; /v1/health and the dashboard's own
// files need none. Then, in a browser of its own: the page asks for a token
// (a mistyped one is refused in the dialog), the read token lists jobs and
// datasets, and creating a dataset or a job from the form shows the daemon's
// 403 detail and creates nothing. "forget token", a reload, and several
// requests that get their 401 together share one dialog, answered with the
// write token; a reload keeps it. A circles dataset and a small training job
// made from the form then run, the job's page following the event stream
// (which carries the token as ?access_token=) to 100% and success, and the
// SAE's download links carry the token too. A new tab asks again; Cancel
// leaves the daemon's 401 on the page and "enter token" in the header.
// The second daemon is stopped at the end, whatever happened.
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const WRITE = 'w-7f3c9a1e0b', WRITE2 = 'w2-51d0c8', READ = 'r-e2b84d6f/+=';   /* READ needs URL-encoding */
const TOKENS = `# saed test tokens\n\n${WRITE}\nwrite:${WRITE2}\nread:${READ}\n`;
const WAIT_MS = 60_000;   /* one wait for the page: a tiny job, and a hang must not use up run.mjs's time limit */
const DATASET = { name: 'tok', 'params.n_circles': 8, 'params.dim': 32, 'params.p_active': 0.1 };
const JOB = { 'sae.n_latents': 64, 'sae.sparsity_coef': 0.3, 'train.steps': 1200, 'train.batch_size': 512, 'train.lr': 0.003,
  'train.lr_warmup_steps': 30, 'train.sparsity_warmup_steps': 100, 'train.eval_every': 50 };

/* Records, from the first byte of every document, the big progress bar's values and the live indicator's states. */
function recorder() {
  window.__tok = { progress: [], live: [] };
  new MutationObserver((recs) => {
    for (const r of recs) {
      const t = r.target;
      if (r.attributeName === 'aria-valuenow' && t.closest?.('.progress.big')) window.__tok.progress.push(Number(t.getAttribute('aria-valuenow')));
      if (r.attributeName === 'data-status' && t.id === 'live') window.__tok.live.push(t.dataset.status);
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['aria-valuenow', 'data-status'] });
}

/* fetch of the daemon with an optional token: {status, type, auth, body}. */
async function call(d, method, p, tok, body) {
  const headers = { ...(tok ? { Authorization: `Bearer ${tok}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) };
  const r = await fetch(`${d.base}${p}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, type: r.headers.get('content-type') ?? '', auth: r.headers.get('www-authenticate') ?? '', body: json };
}

/* The API contract, with Node's fetch; returns the 403 problem's detail for a POST with the read token. */
async function testContract(t, d) {
  const { check } = t;
  const none = await call(d, 'GET', '/v1/jobs');
  check('tokens: GET /v1/jobs without a token is 401 problem+json with WWW-Authenticate',
    none.status === 401 && /problem\+json/.test(none.type) && /^Bearer realm="saed"/.test(none.auth), JSON.stringify(none));
  const bad = await call(d, 'GET', '/v1/jobs', 'nope');
  check('tokens: an unknown token is 401', bad.status === 401 && /^Bearer/.test(bad.auth), JSON.stringify(bad));
  const read = await call(d, 'GET', '/v1/jobs', READ);
  check('tokens: GET /v1/jobs with the read token is 200', read.status === 200 && Array.isArray(read.body?.items), JSON.stringify(read));
  const query = await call(d, 'GET', `/v1/jobs?access_token=${encodeURIComponent(READ)}`);
  check('tokens: a GET may carry the token as ?access_token=', query.status === 200, JSON.stringify(query));
  const post = await call(d, 'POST', '/v1/datasets', READ, { kind: 'circles', name: 'no', params: { n_circles: 4, dim: 8 } });
  check('tokens: a POST with the read token is 403 problem+json', post.status === 403 && /problem\+json/.test(post.type)
    && post.body?.detail, JSON.stringify(post));
  const del = await call(d, 'DELETE', '/v1/jobs/1', READ);
  check('tokens: a DELETE with the read token is 403', del.status === 403, JSON.stringify(del));
  const write2 = await call(d, 'POST', '/v1/datasets', WRITE2, {});
  check('tokens: a "write:" token may write (an empty body gets past the token to validation)',
    write2.status >= 400 && write2.status < 500 && ![401, 403].includes(write2.status), JSON.stringify(write2));
  const health = await call(d, 'GET', '/v1/health');
  check('tokens: GET /v1/health needs no token', health.status === 200, JSON.stringify(health));
  const files = await Promise.all(['/', '/js/app.js', '/js/token.js', '/style.css', '/vendor/uPlot.min.css'].map((p) => call(d, 'GET', p)));
  check('tokens: the dashboard\'s own files need no token', files.every((f) => f.status === 200), files.map((f) => f.status).join(' '));
  return post.body?.detail ?? '';
}

/* What the daemon holds, read with the write token. */
const count = async (d, what) => (await call(d, 'GET', `/v1/${what}`, WRITE)).body?.items?.length;

/* Waits for the token dialog and answers it. */
async function answer(page, tok) {
  await page.waitForSelector('#token-dialog[open]');
  await page.fill('#token-input', tok);
  await page.click('#token-ok');
}

/* An API URL of daemon d answered 401 (a console error for it, or the response). */
const is401 = (d) => (x) => x.url.startsWith(`${d.base}/v1/`) && /401/.test(x.text);

async function testRead(t, d, page, detail) {
  const { check, trouble } = t;
  trouble.excused = is401(d);
  await page.goto(`${d.base}/`);
  await page.waitForSelector('#token-dialog[open]');
  const text = await page.textContent('#token-dialog');
  check('tokens: the page asks for a token, saying where it is and that it is kept for this tab',
    /--token-file/.test(text) && /this tab/.test(text), text);
  await answer(page, 'not-a-token');
  await page.waitForFunction(() => /not accept/.test(document.querySelector('#token-error')?.textContent));
  await t.shot(page, 'tokens-dialog');
  check('tokens: a wrong token is refused in the dialog, which stays open', await page.locator('#token-dialog[open]').count() === 1);
  await page.fill('#token-input', READ);
  await page.click('#token-ok');
  await page.waitForSelector('text=No jobs yet');
  trouble.excused = null;
  check('tokens: with the read token the jobs list loads', await page.locator('#token-dialog').count() === 0);
  check('tokens: the token is kept in sessionStorage', await page.evaluate(() => sessionStorage.getItem('saed.token')) === READ);
  check('tokens: the header offers "forget token"', await page.locator('#forget-token').isVisible());
  await page.click('#nav a[data-nav="datasets"]');
  await page.waitForSelector('#datasets-table table');
  check('tokens: with the read token the datasets list loads', /seeded/.test(await page.textContent('#datasets-table tbody')));

  await page.click('#nav a[data-nav="new"]');
  await page.waitForSelector('form#new-job');
  await page.selectOption('#f-dataset', 'new');
  for (const [name, v] of Object.entries({ ...DATASET, ...JOB, name: 'refused' })) await page.fill(`[name="${name}"]`, String(v));
  for (const what of ['datasets', 'jobs']) {
    trouble.excused = (x) => x.url === `${d.base}/v1/${what}` && /403/.test(x.text);
    const res = page.waitForResponse((r) => r.url() === `${d.base}/v1/${what}` && r.request().method() === 'POST');
    await page.click('#submit');
    const status = (await res).status();
    await page.waitForFunction(() => !document.querySelector('#submit').disabled);
    const alert = await page.textContent('.alert');
    check(`tokens: ${what === 'datasets' ? 'creating a dataset' : 'submitting a job'} with the read token shows the 403 detail`,
      status === 403 && alert === detail, `${status} ${alert}`);
    await page.selectOption('#f-dataset', '1');   /* the seeded dataset: the job next */
  }
  trouble.excused = null;
  check('tokens: and nothing is created', await count(d, 'datasets') === 1 && await count(d, 'jobs') === 0,
    `${await count(d, 'datasets')} datasets, ${await count(d, 'jobs')} jobs`);
}

async function testWrite(t, d, page) {
  const { check, trouble, shot } = t;
  trouble.excused = is401(d);
  await page.click('#forget-token');
  await page.waitForSelector('#token-dialog[open]');
  check('tokens: "forget token" forgets it, and the page asks again', await page.evaluate(() => sessionStorage.getItem('saed.token')) === null);
  await page.evaluate(() => import('/js/api.js').then((api) => {   /* three calls that all get a 401 while the dialog is up */
    window.__all = Promise.all([api.get('/jobs'), api.get('/datasets'), api.get('/saes')]).then((r) => r.length);
  }));
  await page.waitForTimeout(300);
  check('tokens: requests that get a 401 together share one dialog', await page.locator('dialog').count() === 1);
  await answer(page, WRITE);
  check('tokens: once answered, each of them is retried and succeeds', await page.evaluate(() => window.__all) === 3);
  await page.waitForSelector('form#new-job');   /* the page it was on */
  trouble.excused = null;
  await page.reload();
  await page.waitForSelector('form#new-job');
  check('tokens: a reload keeps the token for the tab', await page.locator('#token-dialog').count() === 0);

  await page.selectOption('#f-dataset', 'new');
  for (const [name, v] of Object.entries({ ...DATASET, ...JOB })) await page.fill(`[name="${name}"]`, String(v));
  const stream = page.waitForResponse((r) => /\/v1\/jobs\/1\/events/.test(r.url()));
  await page.click('#submit');
  await page.waitForURL(/#\/jobs\/1$/);
  check('tokens: with the write token a circles dataset is made from the page', await count(d, 'datasets') === 2);
  const res = await stream;
  check('tokens: the event stream carries the token as ?access_token= and is let in',
    new URL(res.url()).searchParams.get('access_token') === WRITE && res.status() === 200, `${res.status()} ${res.url()}`);
  await page.waitForSelector('.badge[data-state="succeeded"]');
  const seen = await page.evaluate(() => window.__tok);
  check('tokens: the job\'s page streams it to 100% and success', seen.live.includes('live') && seen.progress.some((x) => x > 0 && x < 100)
    && seen.progress.at(-1) === 100, JSON.stringify(seen));
  await shot(page, 'tokens-job');

  await page.click('#open-sae');
  const href = await page.getAttribute('a[href*="/decoder.npy"]', 'href');
  const npy = await fetch(`${d.base}${href}`);
  check('tokens: the SAE\'s download links carry the token and work', new URL(href, d.base).searchParams.get('access_token') === WRITE
    && npy.status === 200 && Buffer.from(await npy.arrayBuffer()).subarray(1, 6).toString() === 'NUMPY', `${npy.status} ${href}`);
}

/* Another tab of the same browser asks again; Cancel leaves the 401 and "enter token". */
async function testOtherTab(t, d, context) {
  const { check, trouble } = t;
  const page = await context.newPage();
  trouble.watch(page);
  trouble.excused = is401(d);
  await page.goto(`${d.base}/#/datasets`);
  await page.waitForSelector('#token-dialog[open]');
  check('tokens: another tab asks for its own token', true);
  await page.click('#token-cancel');
  await page.waitForSelector('.alert');
  trouble.excused = null;
  check('tokens: Cancel leaves the daemon\'s 401 on the page and "enter token" in the header',
    /token/.test(await page.textContent('.alert')) && await page.locator('#enter-token').isVisible() && await page.locator('#token-dialog').count() === 0,
    await page.textContent('.alert'));
  await page.close();
}

export async function testTokens(t) {
  const { check } = t;
  const tokenFile = path.join(t.tmp, 'tokens');
  writeFileSync(tokenFile, TOKENS);
  const d = await t.startDaemon('tokens', ['--token-file', tokenFile]);
  let browser = null, page = null;
  try {
    const detail = await testContract(t, d);
    await call(d, 'POST', '/v1/datasets', WRITE, { kind: 'circles', name: 'seeded', params: { n_circles: 4, dim: 8 } });
    browser = await chromium.launch(t.launchOptions);
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    await context.addInitScript(recorder);
    page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    t.trouble.watch(page);
    await testRead(t, d, page, detail);
    await testWrite(t, d, page);
    await testOtherTab(t, d, context);
  } catch (e) {
    if (page) await t.shot(page, 'failed-tokens-page').catch(() => {});
    throw e;
  } finally {
    t.trouble.excused = null;
    await browser?.close().catch(() => {});
    const exit = await d.stop();
    check('tokens: the second saed exits cleanly', exit?.code === 0, JSON.stringify(exit));
    let log = '';
    try { log = readFileSync(d.logPath, 'utf8'); } catch { /* no log */ }
    check('tokens: its log has no sanitizer report', !/AddressSanitizer|LeakSanitizer|runtime error:/.test(log));
  }
}
