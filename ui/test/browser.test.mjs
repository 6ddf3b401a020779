// The web UI in a real browser (Debian's chromium, headless, driven by puppeteer-core): a head and two
// declared-GPU nodes with telemetry; each view shows what the API holds; a reservation is made from the page
// (and a refused one shows the CLI's error); a node killed mid-test turns dead on the page within 5 s through
// the event stream; history is still there after the head restarts. Screenshots of each view go to
// $IOGRID_SCREENSHOTS (build/ui-screenshots from ctest).
// Run: IOGRID_BIN=build/release/bin/iogrid node --test ui/test/   (ctest: ui.browser)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { chromeFlags, Cluster, findChromium } from './cluster.mjs';

const bin = process.env.IOGRID_BIN;
const chromium = findChromium();
const shots = process.env.IOGRID_SCREENSHOTS || '';
const skip = !bin ? 'IOGRID_BIN is not set' : !chromium ? 'no chromium (scripts/setup installs Debian\'s)' : false;

const telemetry = (t, p) => [
  { index: 0, temperature_c: t, power_w: p, power_limit_w: 700, utilization_pct: 87, memory_used_gib: 61.5, sm_clock_mhz: 1980, memory_clock_mhz: 2619 },
  { index: 1, temperature_c: t - 6, power_w: p - 120, power_limit_w: 700, utilization_pct: 54, memory_used_gib: 22, sm_clock_mhz: 1755, memory_clock_mhz: 2619 },
];

let cluster, browser, page;

async function shot(name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await new Promise((r) => setTimeout(r, 300)); // charts settle
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

const text = (sel) => page.$eval(sel, (e) => e.textContent);

// Waits for a condition in the page; on a timeout, says what the page showed (and keeps a screenshot).
async function until(fn, what, timeout = 15000) {
  try {
    await page.waitForFunction(fn, { timeout });
  } catch (e) {
    const shown = await page.$eval('main', (m) => m.innerText).catch(() => '?');
    if (shots) await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
    throw new Error(`${what}: not within ${timeout} ms. The page showed:\n${shown.slice(0, 3000)}`);
  }
}

before(async () => {
  if (skip) return;
  cluster = new Cluster(bin);
  await cluster.startHead();
  cluster.startNode('gpu-eu-1', ['--num-cpus', '4', '--gpus', 'H100:80:9.0x2', '--labels', 'region=eu', '--price', '2.4'], telemetry(71, 650));
  cluster.startNode('gpu-us-1', ['--num-cpus', '2', '--gpus', 'RTX4090:24:8.9', '--labels', 'region=us', '--price', '0.6'], []);
  await cluster.waitFor(async () => (await cluster.api('/api/v1/status')).nodes.length === 2, 20000, 'two nodes joined');
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: [...chromeFlags, `--user-data-dir=${join(cluster.dir, 'chromium-profile')}`],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  page.setDefaultTimeout(15000);
});

after(async () => {
  if (browser) await browser.close();
  if (cluster) await cluster.stop();
});

test('the explorer shows supply by model and region, prices and verification without a login', { skip }, async () => {
  await page.goto(cluster.url + '/#/explorer');
  await page.waitForFunction(() => document.querySelector('#supply tbody')?.textContent.includes('RTX4090'));
  const supply = await text('#supply tbody');
  assert.match(supply, /H100\s*eu\s*2/);
  assert.match(supply, /RTX4090\s*us\s*1/);
  assert.match(await text('#prices'), /\$2\.40/);
  assert.match(await text('main'), /nodes alive/);
  // Posted prices per market: each opened at its only provider's ask, with the tiers' prices.
  await until(() => document.querySelector('#market tbody')?.textContent.includes('RTX4090/us'), 'the posted prices');
  const market = await text('#market tbody');
  assert.match(market, /H100\/eu\s*\$2\.40\s*\$1\.44\s*\$3\.60/);
  assert.match(market, /RTX4090\/us\s*\$0\.60/);
  assert.match(await text('#market-note'), /posted price × its tier/);
  // No host or job leaks into the public page.
  assert.doesNotMatch(await page.content(), /127\.0\.0\.1:\d+ /);
  await shot('explorer');
});

test('the console asks for a login, refuses a wrong key, and shows the nodes after the right one', { skip }, async () => {
  await page.goto(cluster.url + '/#/console/nodes');
  await page.waitForSelector('#login-form');
  await page.type('#login-key', 'not-the-token');
  await page.click('#login-form button');
  await page.waitForFunction(() => document.querySelector('#login-form .error')?.textContent.includes('unknown key'));
  await page.$eval('#login-key', (e) => (e.value = ''));
  await page.type('#login-key', cluster.key());
  await page.click('#login-form button');
  await page.waitForFunction(() => document.querySelector('#console-nodes tbody')?.textContent.includes('gpu-us-1'));
  assert.match(await text('#console-nodes tbody'), /gpu-eu-1\s*alive/);
  // Each node's reach: on this machine the head dials every node back.
  await until(() => /127\.0\.0\.1\s*public/.test(document.querySelector('#console-nodes tbody')?.textContent || ''), 'the nodes\' reach');
  await shot('console-nodes');
});

test('the worker view shows a node\'s live telemetry and its charts from the history', { skip }, async () => {
  await page.goto(cluster.url + '/#/worker/gpu-eu-1');
  await page.waitForFunction(() => document.querySelector('.gpus')?.textContent.includes('650 / 700 W'));
  const gpus = await text('.gpus');
  assert.match(gpus, /GPU 0: H100/);
  assert.match(gpus, /71 °C/);
  assert.match(await text('#node-state'), /alive/);
  // The history has points by now (recorded every 500 ms): the charts draw them.
  await page.waitForFunction(() => [...document.querySelectorAll('figure.chart figcaption')].some((c) => /points/.test(c.textContent)), { timeout: 20000 });
  assert.ok(await page.$('figure.chart canvas'));
  await shot('worker');
});

test('a reservation is made and deleted from the page, and a refused one shows the CLI\'s error', { skip }, async () => {
  await page.goto(cluster.url + '/#/console/reservations');
  await page.waitForSelector('#reservation-form');
  // More GPUs than the cluster has: the page shows the head's own refusal, as `iogrid cluster create` prints it.
  await page.$eval('#reservation-form input[name=gpus]', (e) => (e.value = '9'));
  await page.click('#reservation-form button');
  await page.waitForFunction(() => document.querySelector('#reservation-error')?.textContent.length > 0);
  const pageError = await text('#reservation-error');
  let cliError = '';
  try {
    execFileSync(bin, ['cluster', 'create', '--gpus', '9', '--address', `127.0.0.1:${cluster.port}`, '--token-file', cluster.token], { stdio: 'pipe' });
  } catch (e) {
    cliError = e.stderr.toString().trim();
  }
  assert.ok(cliError.length > 0, 'the CLI refused too');
  assert.equal(pageError, cliError);
  await page.$eval('#reservation-form input[name=gpus]', (e) => (e.value = '2'));
  await page.type('#reservation-form input[name=gpu_model]', 'H100');
  await page.click('#reservation-form button');
  await page.waitForFunction(() => document.querySelector('#console-reservations tbody')?.textContent.includes('2 × H100'));
  const list = await cluster.api('/api/v1/reservations');
  assert.equal(list.length, 1);
  assert.equal(list[0].gpus, 2);
  assert.match(list[0].owner, /^ui:operator$/);
  await shot('console-reservations');
  // The explorer shows it healthy.
  await page.goto(cluster.url + '/#/explorer');
  await page.waitForFunction(() => document.querySelector('#reservations tbody')?.textContent.includes('healthy'));
  await page.goto(cluster.url + '/#/console/reservations');
  await page.waitForFunction(() => document.querySelector('#console-reservations tbody')?.textContent.includes('2 × H100'));
  await page.click('#console-reservations tbody button.danger');
  await page.waitForFunction(() => document.querySelector('#console-reservations tbody')?.textContent.includes('no reservations'));
  assert.equal((await cluster.api('/api/v1/reservations')).length, 0);
});

test('a job\'s tasks show on the page: counts, the failure with its cause, the timeline', { skip: skip || (!process.env.IOGRID_DRIVER && 'IOGRID_DRIVER is not set') }, async () => {
  // A real driver program: a task that crashes its worker (retried once, then failed) and a graph of 50 tasks.
  const out = execFileSync(process.env.IOGRID_DRIVER, ['crash'], {
    env: { ...process.env, IOGRID_ADDRESS: `127.0.0.1:${cluster.port}`, IOGRID_TOKEN_FILE: cluster.token },
    stdio: 'pipe',
    timeout: 120000,
  }).toString();
  assert.match(out, /ok/i);
  // The driver's last report reaches the head as it exits; the status document is rebuilt at most every 250 ms.
  const job = await cluster.waitFor(async () => {
    const s = await cluster.api('/api/v1/status');
    const j = s.jobs[s.jobs.length - 1];
    return j && j.tasks && j.tasks.task.failed === 1 && j.tasks.task.finished >= 50 && j;
  }, 5000, 'the job\'s failure and its finished tasks in the status');
  assert.ok(job.tasks.task.finished >= 50, `finished ${job.tasks.task.finished}`);
  await page.goto(cluster.url + `/#/console/tasks/${job.id}`);
  await until(() => /crash/.test(document.querySelector('#task-failures tbody')?.textContent || ''), 'the failure on the page');
  assert.match(await text('#task-failures tbody'), /2 attempts/);
  await until(() => /finished/.test(document.querySelector('#task-counts')?.textContent || ''), 'the task counts');
  await shot('console-tasks');
  // Its actors: the one killed for good says why; the restarted one says how often (both ended with the job).
  await page.goto(cluster.url + `/#/console/actors/${job.id}`);
  await until(() => /was killed/.test(document.querySelector('#console-actors tbody')?.textContent || ''), 'the killed actor');
  const actors = await cluster.api(`/api/v1/actors?job=${job.id}`);
  assert.equal(actors.total, 2);
  assert.deepEqual(actors.actors.map((a) => a.restarts).sort(), [0, 1]);
  assert.match(await text('#actor-counts'), /2\s*dead/);
  await shot('console-actors');
  await page.goto(cluster.url + `/#/console/timeline/${job.id}`);
  await until(() => /\d+ task spans/.test(document.querySelector('main .tools')?.textContent || ''), 'the timeline');
  await shot('console-timeline');
  // The queue view shows the head's users (the driver ran as the default user; its workers may still hold
  // leases for a moment, or nobody holds anything any more).
  assert.ok(Array.isArray((await cluster.api('/api/v1/status')).users));
  await page.goto(cluster.url + '/#/console/queue');
  await until(() => /no user has work|default/.test(document.querySelector('#console-queue tbody')?.textContent || ''), 'the queue table');
  await shot('console-queue');
});

test('a node killed mid-test turns dead on the page within 5 s through the event stream', { skip }, async () => {
  await page.goto(cluster.url + '/#/console/nodes');
  await page.waitForFunction(() => /gpu-us-1\s*alive/.test(document.querySelector('#console-nodes tbody')?.textContent || ''));
  const t0 = Date.now();
  await cluster.kill('gpu-us-1');
  await page.waitForFunction(() => /gpu-us-1\s*dead/.test(document.querySelector('#console-nodes tbody')?.textContent || ''), { timeout: 5000 });
  const seconds = (Date.now() - t0) / 1000;
  assert.ok(seconds <= 5, `dead on the page after ${seconds} s`);
  console.log(`node death to page: ${seconds.toFixed(2)} s`);
  await shot('console-node-dead');
});

test('history (events, telemetry) is still there after the head restarts', { skip }, async () => {
  await cluster.kill('head');
  await cluster.startHead();
  await cluster.waitFor(async () => (await cluster.api('/api/v1/status')).nodes.length === 1, 20000, 'the node rejoined');
  // The session died with the head: the page notices (its stream is refused) and asks for the login again.
  await page.waitForSelector('#login-form', { timeout: 20000 });
  await page.goto(cluster.url + '/#/console/events');
  await page.waitForSelector('#login-key');
  await page.type('#login-key', cluster.key());
  await page.click('#login-form button');
  await until(() => /gpu-us-1\s*dead/.test(document.querySelector('#console-events tbody')?.textContent || ''), 'the death in the events');
  const events = await text('#console-events tbody');
  assert.match(events, /gpu-eu-1\s*rejoined/);
  await shot('console-events');
  await page.goto(cluster.url + '/#/worker/gpu-eu-1');
  await page.waitForFunction(() => [...document.querySelectorAll('figure.chart figcaption')].some((c) => /points/.test(c.textContent)), { timeout: 20000 });
});
