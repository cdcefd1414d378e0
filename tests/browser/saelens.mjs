// tests/browser/saelens.mjs — an SAE imported from a SAELens folder, on the dashboard (run.mjs calls it).
//
// A tiny jumprelu SAE (group_size 1) is trained on dataset 1 through the API, its saelens.tar downloaded
// and posted back to /v1/saes: the imported SAE (job and dataset null) gets a page that says where it
// came from, lists its SAELens config, offers the saelens.tar download, and runs an analysis once the
// analyze form is given a dataset (which an SAE imported without one must name).
import { api, waitJob } from './analysis.mjs';

export async function testImported(t) {
  const { page, daemon, check, shot, WAIT_MS } = t;
  const job = await api(daemon, 'POST', '/jobs', { type: 'train', dataset: 1,
    sae: { arch: 'jumprelu', n_latents: 32, group_size: 1 }, train: { steps: 100, batch_size: 64 } });
  const src = (await waitJob(daemon, job.id, WAIT_MS)).result.sae;
  const tar = Buffer.from(await (await fetch(`${daemon.base}/v1/saes/${src}/saelens.tar`)).arrayBuffer());
  const imp = await api(daemon, 'POST', '/saes', tar, 'application/x-tar');
  check('the tar of a trained SAE imports', imp.job === null && imp.dataset === null && imp.config.arch === 'jumprelu',
    JSON.stringify(imp));
  await page.evaluate((id) => { location.hash = `#/saes/${id}`; }, imp.id);
  await page.waitForSelector('#provenance');
  check('an imported SAE says where it came from', /imported \(SAELens jumprelu\)/.test(await page.textContent('#provenance')),
    await page.textContent('#provenance'));
  check('its config shows the SAELens record', /"architecture":"jumprelu"/.test(await page.textContent('#config')));
  const href = await page.getAttribute('#weights a[href$="/saelens.tar"]', 'href');
  const res = await page.request.get(`${daemon.base}${href}`);
  check('the saelens.tar link downloads a tar', res.ok() && (await res.body()).subarray(257, 262).toString() === 'ustar');
  await page.waitForSelector('#analyze-dataset');
  await page.fill('#analyze-dataset', '1');
  await page.fill('#analyze-n', '2000');
  await page.click('#run-analyze');
  await page.waitForSelector('#density-chart[data-bars]', { timeout: WAIT_MS });
  check('an imported SAE is analysed from its page on the dataset given there', (await daemon.json(`/v1/saes/${imp.id}/analysis`))
    .dataset === 1);
  await shot(page, 'imported-sae');
}
