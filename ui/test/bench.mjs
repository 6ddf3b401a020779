// The browser side of `iogrid bench ui` (bench/ui.cpp starts it): headless chromium against a head the bench
// holds. Prints lines the bench reads:
//   PAINT view ms        first meaningful paint of a view (navigation start to its table holding data)
//   WATCH node           the console shows `node` alive; the bench kills it now
//   DEAD node unix_ms    the page showed it dead (wall clock, to compare with when the head knew)
//   TABS n               n tabs hold the console open (the bench measures its CPU meanwhile)
// usage: node bench.mjs URL KEY NODE[,NODE...] TABS HOLD_SECONDS RUNS [TAB_VIEW]
//   TAB_VIEW: the view the tabs hold open, explorer (default: the public stream) or console (the full stream:
//   the whole status document, megabytes at 10,000 nodes, to every tab)
import puppeteer from 'puppeteer-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromeFlags, findChromium } from './cluster.mjs';

const [url, key, victims, tabs, hold, runs, tabView = 'explorer'] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'iogrid-bench-ui-'));
// Tabs share a few renderer processes (fifty of them would each take a slice of two cores).
const browser = await puppeteer.launch({
  executablePath: findChromium(),
  headless: true,
  protocolTimeout: 600000,
  args: [...chromeFlags, `--user-data-dir=${profile}`, '--renderer-process-limit=4'],
});
const say = (line) => process.stdout.write(line + '\n');

// `context`: a browser context to open it in (default: the browser's own).
async function loggedInPage(context = browser) {
  const page = await context.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  page.setDefaultTimeout(60000);
  await page.goto(url + '/api/v1/session');
  await page.evaluate(async (k) => {
    const r = await fetch('/api/v1/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ key: k }) });
    if (!r.ok) throw new Error('login: ' + r.status);
  }, key);
  return page;
}

// A view's first meaningful paint: when its main table first shows data (a MutationObserver in the page
// notes performance.now(), counted from the navigation's start).
const views = {
  explorer: ['#/explorer', `(() => { const b = document.querySelector('#supply tbody'); return b && b.rows.length > 0 && !b.querySelector('td.muted'); })()`],
  worker: ['#/worker', `(() => { const b = document.querySelector('#worker-nodes tbody'); return b && b.rows.length > 1; })()`],
  console: ['#/console/nodes', `(() => { const b = document.querySelector('#console-nodes tbody'); return b && b.rows.length > 1; })()`],
};
for (let r = 0; r < Number(runs); r++)
  for (const [name, [hash, cond]] of Object.entries(views)) {
    const page = await loggedInPage();
    await page.evaluateOnNewDocument((c) => {
      window.__painted = null;
      const check = () => {
        if (window.__painted === null && eval(c)) window.__painted = performance.now();
      };
      new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true });
    }, cond);
    await page.goto(url + '/' + hash);
    await page.waitForFunction(() => window.__painted !== null, { polling: 50 });
    say(`PAINT ${name} ${(await page.evaluate(() => window.__painted)).toFixed(1)}`);
    await page.close();
  }

// A node's death, from the head knowing it to the page showing it.
{
  const page = await loggedInPage();
  await page.goto(url + '/#/console/nodes');
  await page.waitForSelector('#console-nodes input[type=search]');
  for (const node of victims.split(',')) {
    await page.$eval('#console-nodes input[type=search]', (e) => (e.value = ''));
    await page.type('#console-nodes input[type=search]', node);
    await page.waitForFunction((n) => new RegExp(n + '\\s*alive').test(document.querySelector('#console-nodes tbody').textContent), { polling: 'raf' }, node);
    await page.evaluate((n) => {
      window.__dead = null;
      const body = document.querySelector('#console-nodes tbody');
      const check = () => {
        if (window.__dead === null && new RegExp(n + '\\s*dead').test(body.textContent)) window.__dead = Date.now();
      };
      new MutationObserver(check).observe(body, { subtree: true, childList: true, characterData: true });
    }, node);
    say(`WATCH ${node}`);
    await page.waitForFunction(() => window.__dead !== null, { polling: 'raf', timeout: 30000 });
    say(`DEAD ${node} ${await page.evaluate(() => window.__dead)}`);
  }
  await page.close();
}

// Many tabs at once, each with its own event stream: five to a browser context (a browser keeps at most six
// connections to one host, and each open tab's stream holds one), as ten people's browsers would hold them.
{
  const pages = [];
  const [hash, table] = tabView === 'console' ? ['#/console/nodes', '#console-nodes'] : ['#/explorer', '#supply'];
  let context = null;
  for (let i = 0; i < Number(tabs); i++) {
    if (i % 5 === 0) context = await browser.createBrowserContext();
    const t0 = Date.now();
    const p = await loggedInPage(context);
    p.setDefaultTimeout(300000);  // fifty tabs share this machine's cores with the head
    await p.goto(url + '/' + hash);
    pages.push(p);
    say(`# tab ${i + 1} open in ${Date.now() - t0} ms`);
  }
  await Promise.all(pages.map((p) => p.waitForFunction((t) => document.querySelector(t + ' tbody')?.rows.length > 0, { polling: 500 }, table)));
  say(`TABS ${pages.length} ${tabView}`);
  await new Promise((r) => setTimeout(r, Number(hold) * 1000));
  say('TABS 0');
}
await browser.close();
rmSync(profile, { recursive: true, force: true });
