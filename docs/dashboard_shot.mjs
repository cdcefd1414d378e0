#!/usr/bin/env node
// docs/dashboard_shot.mjs — a screenshot of one dashboard page of a running saed, for the docs.
//
//   node docs/dashboard_shot.mjs URL OUT.png [WIDTH HEIGHT [SELECTOR]]
//   e.g. node docs/dashboard_shot.mjs 'http://127.0.0.1:8321/#/saes/2/pca?analysis=3&x=3&y=4' docs/figures/pca.png \
//          1100 900 '#pca-result'
//
// Drives Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) through playwright-core (npm ci), waits
// until the page has drawn its figures (a canvas marked data-points) and saves the viewport, or only the
// element SELECTOR picks (the whole of it).
import { chromium } from 'playwright-core';

const [url, out, width = '1280', height = '900', selector] = process.argv.slice(2);
if (!url || !out) {
  console.error('usage: node docs/dashboard_shot.mjs URL OUT.png [WIDTH HEIGHT [SELECTOR]]');
  process.exit(2);
}
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true });
try {
  const page = await browser.newPage({ viewport: { width: Number(width), height: Number(height) } });
  await page.goto(url);
  await page.waitForSelector('[data-points]', { timeout: 60000 });
  await page.waitForTimeout(500);
  if (selector) await page.locator(selector).screenshot({ path: out });
  else await page.screenshot({ path: out, fullPage: false });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
