// Browser half of the status-page e2e test: the Rust test starts the controller, runs this with
// Node, reads the "ready" line from stdout, starts a release, and waits for "done" and exit 0.
// It drives Debian's Chromium through playwright-core (both installed by scripts/ensure-deps).
// Any failure: a message on stderr, exit 1. Node 18 (Debian 12's) is enough.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

// playwright-core lives in the repo's own npm prefix, not beside this file.
const require = createRequire(new URL('../../target/node/package.json', import.meta.url));
const { chromium } = require('playwright-core');

class Failure extends Error {}
const fail = (msg) => { throw new Failure(msg); };

const env = process.env;
const need = (name) => env[name] || fail(`${name} is not set`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => process.stderr.write(`drive.mjs: ${msg}\n`);
// The Rust side reads stdout line by line; wait for the write so "ready" is out before we poll.
const emit = (obj) => new Promise((r) => process.stdout.write(JSON.stringify(obj) + '\n', r));
const cssString = (s) => '"' + s.replace(/["\\]/g, '\\$&') + '"';

let browser;
try {
  const pageUrl = new URL(need('SLUICE_PAGE_URL'));
  const token = env.SLUICE_TOKEN || '';
  const ns = need('SLUICE_NAMESPACE');
  const name = need('SLUICE_ROLLOUT');
  const finalPhase = env.SLUICE_FINAL_PHASE || 'Succeeded';
  const shots = need('SLUICE_SCREENSHOT_DIR');
  const deadline = Date.now() + (Number(env.SLUICE_TIMEOUT_MS) || 120000);
  // One deadline for the whole run, so the Rust side knows when to give up on us.
  const left = () => Math.max(1, deadline - Date.now());
  mkdirSync(shots, { recursive: true });

  browser = await chromium.launch({
    executablePath: env.SLUICE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Root can't use Chromium's sandbox; /dev/shm may be small in a VM; there is no GPU. Even with
    // Playwright's own flags Chromium looks up Google's hosts (autofill on the sign-in form, sign-in,
    // updates); resolving nothing but the page's host keeps every lookup inside the browser.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
      `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE ${pageUrl.hostname}`],
    timeout: left(),
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();

  const problems = [];
  page.on('pageerror', (e) => { log(`page error: ${e.message}`); problems.push(`page error: ${e.message}`); });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // Chromium fetches /favicon.ico on its own; a 404 there is no fault of the page's.
    if (new URL(m.location().url || 'about:blank').pathname === '/favicon.ico') return;
    log(`console error: ${m.text()}`);
    problems.push(`console error: ${m.text()}`);
  });
  // The page must work offline: everything it loads comes from the controller itself.
  const ownHost = (u) => !/^(https?|wss?):$/.test(u.protocol) || u.host === pageUrl.host;
  const checkUrl = (what, raw) => {
    const u = new URL(raw);
    if (!ownHost(u)) problems.push(`${what} to another host: ${raw}`);
    if (token && raw.includes(token)) problems.push(`${what} with the token in its URL: ${raw}`);
  };
  context.on('request', (r) => checkUrl('request', r.url()));
  page.on('websocket', (w) => checkUrl('websocket', w.url()));
  let signInStatus = null;
  page.on('response', (r) => {
    if (r.request().method() === 'POST' && new URL(r.url()).pathname.endsWith('/sign-in')) signInStatus = r.status();
  });

  // a. Sign in, if the server wants a token.
  await page.goto(pageUrl.href, { waitUntil: 'domcontentloaded', timeout: left() });
  const form = page.locator('form#sign-in');
  if (token) {
    await form.waitFor({ timeout: Math.min(left(), 10000) })
      .catch(() => fail(`SLUICE_TOKEN is set but ${page.url()} shows no form#sign-in`));
    if (await form.locator('input[name=token]').count() !== 1) fail('form#sign-in has no input[name=token]');
    const early = await page.locator('section.rollout').count();
    if (early) fail(`the sign-in page already shows ${early} rollout section(s)`);
    await form.locator('input[name=token]').fill(token);
    // The POST answers 303 to /: the URL stays "/", so wait for the new document, not a URL.
    const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: left() });
    await form.evaluate((f) => f.requestSubmit());
    await navigated;
    await page.waitForLoadState('domcontentloaded', { timeout: left() });
    if (signInStatus !== null && signInStatus !== 303) fail(`POST /sign-in answered ${signInStatus}, not 303`);
    if (page.url().includes(token)) fail(`the URL after sign-in holds the token: ${page.url()}`);
    if (await form.count()) fail('still on the sign-in form after submitting the token (wrong token?)');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'sluice_session');
    if (!session) fail(`no sluice_session cookie after sign-in; cookies: ${cookies.map((c) => c.name).join(', ') || 'none'}`);
    if (!session.httpOnly) fail('the sluice_session cookie is not HttpOnly');
    if (session.sameSite !== 'Strict') fail(`the sluice_session cookie has SameSite=${session.sameSite}, not Strict`);
    if ((await page.evaluate(() => document.cookie)).includes(token)) fail('document.cookie exposes the token to scripts');
  } else if (await form.count()) {
    fail('SLUICE_TOKEN is unset but the page shows form#sign-in');
  }

  // b. Our rollout's section and its chart.
  const selector = `section.rollout[data-namespace=${cssString(ns)}][data-name=${cssString(name)}]`;
  const section = page.locator(selector);
  await section.waitFor({ state: 'visible', timeout: left() })
    .catch(() => fail(`no ${selector} on the page`));
  await section.locator('svg.release-chart').waitFor({ state: 'visible', timeout: left() })
    .catch(() => fail(`${selector} has no svg.release-chart`));

  // c. Live updates on, and a marker that a reload would wipe.
  const live = () => page.evaluate(() => document.documentElement.dataset.live ?? null);
  await page.waitForFunction(() => document.documentElement.dataset.live === 'connected', null, { timeout: left() })
    .catch(async () => fail(`the page's event stream never connected (data-live=${JSON.stringify(await live())})`));
  await page.evaluate(() => { window.__sluiceNotReloaded = true; });

  // Sections are replaced by outerHTML on each event: query afresh every time.
  const readState = () => page.evaluate((sel) => {
    if (window.__sluiceNotReloaded !== true) return { reloaded: true };
    const all = document.querySelectorAll(sel);
    if (all.length !== 1) return { count: all.length };
    const d = all[0].dataset;
    return { phase: d.phase || null, weight: d.weight ? Number.parseInt(d.weight, 10) : null, step: d.step || null };
  }, selector).catch((e) => fail(`the page went away while being read (reloaded, or the browser closed): ${e.message}`));
  const same = (a, b) => a.phase === b.phase && a.weight === b.weight && a.step === b.step;

  // d. Tell the Rust side to start the release.
  const ready = await readState();
  if ('count' in ready) fail(`${ready.count} sections match ${selector}`);
  await emit({ event: 'ready', phase: ready.phase, weight: ready.weight });

  // e. Watch the section change, without reloading, until the final phase.
  const states = [ready];
  let changed = false;
  let midShot = false;
  for (;;) {
    if (Date.now() >= deadline) {
      fail(`timed out waiting for phase ${finalPhase}; states seen: ${JSON.stringify(states)}`);
    }
    const s = await readState();
    if (s.reloaded) fail(`the page was reloaded during the release; states seen: ${JSON.stringify(states)}`);
    if ('count' in s) {
      if (s.count > 1) fail(`${s.count} sections match ${selector}`);
    } else {
      if (!same(s, states[states.length - 1])) states.push(s);
      if (!same(s, ready)) changed = true;
      // Only a state of the release itself counts as "mid": not the one we started from, not the end.
      if (!midShot && changed && s.weight > 0 && s.phase !== finalPhase) {
        midShot = true;
        await page.screenshot({ path: join(shots, 'mid-release.png'), fullPage: true });
      }
      if (changed && s.phase === finalPhase) break;
    }
    await sleep(100);
  }
  if (!midShot) log('note: no state with weight > 0 before the final phase was seen, so no mid-release.png');

  // f. The final page: same document, chart with a check marker, and clean.
  if (await page.evaluate(() => window.__sluiceNotReloaded) !== true) fail('the page was reloaded during the release');
  const checks = await section.locator('svg.release-chart .check').count();
  if (checks < 1) fail(`${selector} reached ${finalPhase} but its chart has no .check marker`);
  await page.screenshot({ path: join(shots, 'status-page.png'), fullPage: true });
  if (problems.length) fail(`the page was not clean:\n  ${problems.join('\n  ')}`);
  await emit({ event: 'done', states });
} catch (e) {
  log(e instanceof Failure ? `FAIL: ${e.message}` : `FAIL: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser?.close().catch(() => {});
}
