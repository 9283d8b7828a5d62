// Drives Debian's chromium, headless, through playwright-core for the
// dashboard test (test/integration/test_dashboard.py), which sends one JSON
// command a line on stdin and reads one JSON answer a line on stdout.
//
// BERTH_NODE_MODULES is the folder playwright-core was installed into (the
// test runs npm ci there from this folder's package-lock.json). The browser
// reaches 127.0.0.1 only: every name resolves to nothing, and any request
// to another origin is aborted and reported in "blocked". "mock" answers a
// path of the API with given JSON instead of the host.
import { createRequire } from 'node:module';
import readline from 'node:readline';

const require = createRequire(process.env.BERTH_NODE_MODULES + '/');
const { chromium } = require('playwright-core');

const browser = await chromium.launch({
  executablePath: process.env.BERTH_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    '--no-proxy-server',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});

let context = null;
let page = null;
let origin = null;
const errors = []; // console errors and uncaught exceptions of the open page
const blocked = []; // requests to anywhere but the host under test
const mocks = new Map(); // path (no query) -> JSON the page gets instead

async function open(url) {
  if (context) await context.close();
  errors.length = 0; // the errors of the page open now; blocked stays
  origin = new URL(url).origin;
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (mocks.has(new URL(u).pathname)) {
      return route.fulfill({ status: 200, contentType: 'application/json', body: mocks.get(new URL(u).pathname) });
    }
    if (u.startsWith(origin + '/')) return route.continue();
    blocked.push(u);
    return route.abort();
  });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
}

// What the page shows, as text, for the test to compare with the API.
function read() {
  const text = (e) => (e ? e.textContent.trim() : null);
  const rows = (sel, key) => {
    const out = {};
    for (const tr of document.querySelectorAll(sel)) {
      const f = {};
      for (const td of tr.querySelectorAll('[data-field]')) f[td.dataset.field] = text(td);
      f.actions = [...tr.querySelectorAll('button[data-action]')].map((b) => b.dataset.action);
      out[tr.dataset[key]] = f;
    }
    return out;
  };
  const tiers = {};
  for (const td of document.querySelectorAll('#tiers [data-tier]')) tiers[td.dataset.tier] = text(td);
  const errs = {};
  for (const p of document.querySelectorAll('[data-error]')) errs[p.dataset.error] = text(p);
  return {
    url: location.href,
    polls: Number(document.body.dataset.polls || 0),
    login: !document.querySelector('#login').hidden,
    main: !document.querySelector('#main').hidden,
    status: text(document.querySelector('#status')),
    message: text(document.querySelector('#message')),
    hosts: rows('#hosts tr[data-host]', 'host'),
    tiers,
    accounts: rows('#accounts tr[data-account]', 'account'),
    ships: rows('#ships tr[data-ship]', 'ship'),
    wakes: rows('#wakes tr[data-ship]', 'ship'),
    charts: [...document.querySelectorAll('[data-chart]')].map((c) => c.dataset.chart),
    lines: document.querySelectorAll('.chart polyline').length,
    part_errors: errs,
    token_kept: sessionStorage.getItem('berth-token') !== null,
  };
}

// Whether the page's policy lets an inline script run, or a request leave
// for another origin (both must not).
async function probeCsp() {
  const before = errors.length;
  const ran = await page.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = 'window.inlineRan = true;';
    document.body.append(s);
    let fetched = true;
    try {
      await fetch('http://127.0.0.2:9/');
    } catch (e) {
      fetched = false;
    }
    return { inline: window.inlineRan === true, fetched };
  });
  await page.waitForTimeout(200);
  const seen = errors.splice(before);
  return { ...ran, errors: seen };
}

async function handle(cmd) {
  switch (cmd.op) {
    case 'open':
      await open(cmd.url);
      return {};
    case 'read':
      return { page: await page.evaluate(read) };
    case 'wait_polls': {
      const now = await page.evaluate(() => Number(document.body.dataset.polls || 0));
      await page.waitForFunction((n) => Number(document.body.dataset.polls || 0) >= n, now + cmd.n,
        { timeout: cmd.timeout || 15000 });
      return { page: await page.evaluate(read) };
    }
    case 'mock':
      // What the host would say, for figures it does not have yet.
      mocks.set(cmd.path, JSON.stringify(cmd.body));
      return {};
    case 'legend':
      // A chart's legend: "series last-value" for each of its lines.
      return {
        legend: await page.$$eval(`[data-chart="${cmd.chart}"] .legend .key`, (keys) =>
          keys.map((k) => k.textContent.trim())),
      };
    case 'click':
      await page.click(cmd.selector, { timeout: 5000 });
      return {};
    case 'fill':
      await page.fill(cmd.selector, cmd.value, { timeout: 5000 });
      return {};
    case 'screenshot':
      await page.screenshot({ path: cmd.path, fullPage: true });
      return {};
    case 'probe_csp':
      return { probe: await probeCsp() };
    case 'checks':
      return { errors: errors.slice(), blocked: blocked.slice() };
    case 'close':
      if (context) await context.close();
      await browser.close();
      return {};
    default:
      throw new Error('unknown op ' + cmd.op);
  }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  let cmd = null;
  try {
    cmd = JSON.parse(line);
    const answer = await handle(cmd);
    process.stdout.write(JSON.stringify({ ok: true, ...answer }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, error: String(e && e.stack || e) }) + '\n');
  }
  if (cmd && cmd.op === 'close') break;
}
await browser.close().catch(() => {});
process.exit(0);
