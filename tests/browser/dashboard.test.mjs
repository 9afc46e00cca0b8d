// dashboard.test.mjs - the dashboard, the web terminal and VS Code in a real
// browser (Debian's chromium driven by playwright-core), against a running
// berthd. Run: node --test --test-reporter=tap tests/browser/
//
// Environment:
//   BERTH_SERVER          berthd's URL (default http://127.0.0.1:7878)
//   BERTH_ADMIN_PASSWORD  the password of the account 'admin'
//   BERTH_TEST_REPO       a local git repository whose HEAD has README.md
//   BERTH_ARTIFACTS       where screenshots go (default tests/artifacts)
//   BERTH_CHROMIUM        the browser (default /usr/bin/chromium)
//
// The steps share one workspace and run in order; a step whose prerequisite
// failed fails at once ("an earlier step failed") instead of waiting.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, apiClient, launch, log, login as loginAt, openTerminal, run, shot, waitTerm, watchErrors as watch } from './lib.mjs';

const SERVER = (process.env.BERTH_SERVER || 'http://127.0.0.1:7878').replace(/\/+$/, '');
const ADMIN_PASSWORD = process.env.BERTH_ADMIN_PASSWORD || '';
const REPO = process.env.BERTH_TEST_REPO || '';
const NONCE = randomBytes(3).toString('hex');
const RUNNING_TIMEOUT = 120_000;
const IDE_TIMEOUT = 120_000;
const STEP = { timeout: 300_000 };

const st = {
  browser: null,
  ctx: null, // the admin's browser context (1280x800)
  page: null, // the dashboard
  term: null, // the terminal page
  id: null, // the workspace
  name: `dash-${NONCE}`,
  createdAt: 0,
  running: false,
  pid: null,
  session: null,
  marker: null,
  adminToken: null,
  errors: [] // uncaught page errors: a broken script fails the run
};

const api = apiClient(SERVER);
const login = (page, user, password) => loginAt(page, SERVER, user, password);
const watchErrors = (page, who) => watch(st.errors, page, who);

function need(...keys) {
  for (const k of keys) if (!st[k]) throw new Error(`skipped: an earlier step failed (no ${k})`);
}

async function shellPid(page, tag) {
  await run(page, `echo pid-${tag}:$$:end`);
  const m = await waitTerm(page, new RegExp(`pid-${tag}:(\\d+):end`));
  return m[1];
}

function card(state) {
  return st.page.locator(`li.ws-card[data-id="${st.id}"]${state ? `[data-state="${state}"]` : ''}`);
}

describe('dashboard, terminal and VS Code in a browser', () => {
  before(async () => {
    assert.ok(ADMIN_PASSWORD, 'BERTH_ADMIN_PASSWORD is not set');
    assert.ok(REPO, 'BERTH_TEST_REPO is not set');
    st.browser = await launch();
    st.ctx = await st.browser.newContext({ viewport: { width: 1280, height: 800 } });
    st.page = await st.ctx.newPage();
    watchErrors(st.page, 'dashboard');
  });

  after(async () => {
    if (st.id && st.adminToken) {
      // Best effort: leave no container behind when a step failed early.
      await api('DELETE', `/api/v1/workspaces/${st.id}`, undefined, st.adminToken).catch(() => {});
    }
    if (st.browser) await st.browser.close();
  });

  test('logging in goes to the dashboard; a wrong password is refused', STEP, async () => {
    const page = st.page;
    await page.goto(SERVER + '/');
    await page.waitForURL(/\/login\.html\?next=%2F$/, { timeout: 15_000 });
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await assert.doesNotReject(page.getByRole('alert').filter({ hasText: /wrong username or password/i })
      .waitFor({ timeout: 10_000 }));
    await login(page, 'admin', ADMIN_PASSWORD);
    assert.match(await page.locator('#me').textContent(), /admin/);
    const tok = await api('POST', '/api/v1/auth/login',
      { username: 'admin', password: ADMIN_PASSWORD, mode: 'token', token_name: `browser-test-${NONCE}` });
    assert.equal(tok.status, 200, tok.text);
    st.adminToken = tok.json.token;
  });

  test('the login page follows ?next= only to paths of this site', STEP, async () => {
    need('adminToken');
    const page = await st.ctx.newPage();
    try {
      // Logged in already: the login page goes straight on.
      for (const bad of ['//127.0.0.2:9/x', '/\\127.0.0.2:9/x', 'http://127.0.0.2:9/x', 'javascript:alert(1)']) {
        await page.goto(`${SERVER}/login.html?next=${encodeURIComponent(bad)}`);
        await page.waitForURL(`${SERVER}/`, { timeout: 10_000 });
      }
      await page.goto(`${SERVER}/login.html?next=${encodeURIComponent('/index.html?x=1')}`);
      await page.waitForURL(`${SERVER}/index.html?x=1`, { timeout: 10_000 });
    } finally {
      await page.close();
    }
  });

  test('the create form creates a workspace and streams its log', STEP, async () => {
    need('adminToken');
    const page = st.page;
    await page.getByLabel('Repository').fill(REPO);
    await page.getByLabel(/Name/).fill(st.name);
    st.createdAt = Date.now();
    await page.getByRole('button', { name: 'Create workspace' }).click();
    const c = page.locator('li.ws-card').filter({ has: page.locator('h3', { hasText: st.name }) });
    await c.waitFor({ timeout: 15_000 });
    st.id = await c.getAttribute('data-id');
    assert.match(st.id, /^[0-9a-f]+$/);
    // The log panel opens by itself and fills as the clone runs.
    await c.locator('details.ws-log[open] pre.log').filter({ hasText: /\S/ }).waitFor({ timeout: 30_000 });
  });

  test('the state reaches running, live, and offers VS Code and a terminal', STEP, async () => {
    need('id');
    const c = card();
    await card('running').waitFor({ timeout: RUNNING_TIMEOUT }).catch(async (e) => {
        const state = await c.getAttribute('data-state');
        const err = await c.locator('.ws-error').textContent().catch(() => '');
        const logText = await c.locator('pre.log').textContent().catch(() => '');
        throw new Error(`state ${state} after ${RUNNING_TIMEOUT} ms: ${err}\n${logText.slice(-2000)}\n${e.message}`);
      });
    const ms = Date.now() - st.createdAt;
    log(`dashboard: ${ms} ms to running`);
    st.running = true;
    const logText = await c.locator('pre.log').textContent();
    assert.match(logText, /==> /, 'the creation log shows its steps');
    const ide = c.getByRole('link', { name: /Open VS Code/ });
    assert.equal(await ide.getAttribute('href'), `/w/${st.id}/ide/`);
    assert.equal(await ide.getAttribute('target'), '_blank');
    const termLink = c.getByRole('link', { name: /Terminal/ });
    assert.equal(await termLink.getAttribute('href'), `/terminal.html?ws=${st.id}`);
    for (const b of ['Stop', 'Rebuild', 'Delete']) {
      assert.ok(await c.getByRole('button', { name: new RegExp(`^${b}`) }).isVisible(), `${b} is offered`);
    }
    assert.ok(!(await c.getByRole('button', { name: /^Start/ }).isVisible()), 'Start is not offered while running');
    await shot(st.page, 'dashboard-1280x800');
  });

  test("a task's terminal is linked from the card and shows the task's output", STEP, async () => {
    need('running');
    const link = card().locator('.ws-tasks li[data-task="hello"] a');
    await link.waitFor({ timeout: 15_000 });
    const [page] = await Promise.all([st.ctx.waitForEvent('page', { timeout: 15_000 }), link.click()]);
    watchErrors(page, 'task terminal');
    try {
      await page.waitForURL(/task=hello/);
      await page.locator('#term-status[data-state="live"]').waitFor({ state: 'attached', timeout: 30_000 });
      assert.match(await page.locator('#term-title').textContent(), /task hello/);
      await waitTerm(page, /hello-from-task-42/);
      await waitTerm(page, /the task ended with status 0/);
      await run(page, 'echo still-a-shell-$((1+1))');
      await waitTerm(page, /^still-a-shell-2$/m);
    } finally {
      await page.close();
    }
  });

  test('the dashboard fits a 390x844 (mobile) screen', STEP, async () => {
    need('id');
    const ctx = await st.browser.newContext({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 2,
      storageState: await st.ctx.storageState()
    });
    try {
      const page = await ctx.newPage();
      watchErrors(page, 'mobile dashboard');
      await page.goto(SERVER + '/');
      await page.locator(`li.ws-card[data-id="${st.id}"] [data-action="ide"]`).waitFor({ timeout: 15_000 });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      await shot(page, 'dashboard-390x844', true);
      // The terminal too: full width, with the keys a touch keyboard lacks.
      await page.goto(`${SERVER}/terminal.html?ws=${st.id}`);
      await openTerminal(page);
      assert.ok(await page.getByRole('toolbar').getByRole('button', { name: 'Control C' }).isVisible());
      const termOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(termOverflow <= 0, `the terminal page is ${termOverflow}px wider than the screen`);
      await shot(page, 'terminal-390x844');
    } finally {
      await ctx.close();
    }
  });

  test('the terminal runs commands: output, UTF-8, colours, Ctrl-C, resize', STEP, async () => {
    need('running');
    const [page] = await Promise.all([
      st.ctx.waitForEvent('page', { timeout: 15_000 }),
      card().getByRole('link', { name: /Terminal/ }).click()
    ]);
    st.term = page;
    watchErrors(page, 'terminal');
    await page.waitForURL(new RegExp(`/terminal\\.html\\?ws=${st.id}`));
    st.session = await openTerminal(page);
    assert.ok(st.session, 'the page keeps the session id in its URL');

    st.marker = `hello-${NONCE}-`;
    await run(page, `echo ${st.marker}$((6*7))`);
    await waitTerm(page, new RegExp(`^${st.marker}42$`, 'm'));

    st.pid = await shellPid(page, 'a');

    // UTF-8 both ways: typed input, and output bytes.
    await run(page, 'printf %s "ü" | od -An -tx1 | tr -d " "');
    await waitTerm(page, /^c3bc$/m);
    await run(page, "printf 'utf8:caf\\303\\251-\\342\\234\\223\\n'");
    await waitTerm(page, /^utf8:café-✓$/m);

    // Colours reach the terminal as attributes.
    await run(page, "printf '\\033[31mred%s\\033[0m\\n' $((40+2))");
    await waitTerm(page, /^red42$/m);
    const red = await page.evaluate(() => {
      const b = window.berthTerminal.buffer.active;
      for (let i = b.length - 1; i >= 0; i--) {
        const l = b.getLine(i);
        if (l && l.translateToString(true) === 'red42') {
          const cell = l.getCell(0);
          return cell.isFgPalette() ? cell.getFgColor() : -1;
        }
      }
      return -2;
    });
    assert.equal(red, 1, 'the text is in palette colour 1 (red)');

    // Ctrl-C interrupts the foreground command.
    await run(page, 'sleep 600');
    await page.waitForTimeout(500);
    await page.keyboard.press('Control+C');
    await run(page, 'echo after-ctrl-c-$((1+1))');
    await waitTerm(page, /^after-ctrl-c-2$/m, 10_000);

    // Resizing the window resizes the shell's terminal.
    const before = await page.evaluate(() => [window.berthTerminal.cols, window.berthTerminal.rows]);
    await page.setViewportSize({ width: 900, height: 520 });
    await page.waitForFunction(([c, r]) => window.berthTerminal.cols !== c || window.berthTerminal.rows !== r,
      before, { timeout: 10_000 });
    await page.waitForTimeout(300);
    const size = await page.evaluate(() => [window.berthTerminal.rows, window.berthTerminal.cols]);
    await run(page, 'echo size:$(stty size | tr " " x)');
    await waitTerm(page, new RegExp(`^size:${size[0]}x${size[1]}$`, 'm'));
    await page.setViewportSize({ width: 1280, height: 800 });
    await shot(page, 'terminal');
  });

  test('reloading the terminal reattaches to the same shell', STEP, async () => {
    need('pid', 'term');
    const page = st.term;
    await page.reload();
    const session = await openTerminal(page);
    assert.equal(session, st.session, 'the same session after a reload');
    // The shell's recent output is replayed...
    await waitTerm(page, new RegExp(`^${st.marker}42$`, 'm'));
    // ...and it is the same process.
    assert.equal(await shellPid(page, 'b'), st.pid, 'the same shell PID after a reload');
  });

  test('a second terminal is a second shell', STEP, async () => {
    need('pid');
    const page = await st.ctx.newPage();
    try {
      watchErrors(page, 'second terminal');
      await page.goto(`${SERVER}/terminal.html?ws=${st.id}`);
      const session = await openTerminal(page);
      assert.notEqual(session, st.session);
      const pid2 = await shellPid(page, 'c');
      // PIDs are per container: a different shell has a different PID.
      assert.notEqual(pid2, st.pid);
      // When the shell exits the page says so and offers a new one.
      await run(page, 'exit 3');
      await page.locator('#term-status[data-state="down"]').waitFor({ state: 'attached', timeout: 10_000 });
      await waitTerm(page, /exited with status 3/);
      assert.ok(!(await page.evaluate(() => location.hash.includes('session='))), 'an ended session is forgotten');
      await page.getByRole('button', { name: 'New shell' }).click();
      const session3 = await openTerminal(page);
      assert.ok(session3 !== session && session3 !== st.session);
      const pid3 = await shellPid(page, 'd');
      assert.ok(pid3 !== pid2 && pid3 !== st.pid);
    } finally {
      await page.close();
    }
  });

  test('Open VS Code shows the workbench with README.md', STEP, async () => {
    need('running');
    const readme = execFileSync('git', ['-C', REPO, 'show', 'HEAD:README.md'], { encoding: 'utf8' });
    const firstLine = readme.split('\n').map((l) => l.trim()).find((l) => l.length > 0) || '';
    const t0 = Date.now();
    const [page] = await Promise.all([
      st.ctx.waitForEvent('page', { timeout: 15_000 }),
      card().getByRole('link', { name: /Open VS Code/ }).click()
    ]);
    await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: IDE_TIMEOUT }).catch(async (e) => {
      const text = await page.locator('body').innerText().catch(() => '');
      await shot(page, 'ide-failed').catch(() => {});
      throw new Error(`no VS Code workbench after ${IDE_TIMEOUT} ms at ${page.url()}; the page says: ` +
        `${text.slice(0, 500)}\n${e.message}`);
    });
    const ms = Date.now() - t0;
    log(`IDE first paint: ${ms} ms`);
    assert.equal(new URL(page.url()).pathname.startsWith(`/w/${st.id}/ide/`), true, page.url());

    const item = page.getByRole('treeitem', { name: /README\.md/ });
    await item.waitFor({ timeout: 60_000 });
    await item.click();
    const probe = firstLine.replace(/^#+\s*/, '').slice(0, 24);
    await page.waitForFunction((text) => {
      for (const e of document.querySelectorAll('.monaco-editor .view-lines')) {
        if (e.textContent.replace(/\u00a0/g, ' ').includes(text)) return true;
      }
      return false;
    }, probe, { timeout: 30_000 });
    await shot(page, 'ide');
    await page.close();
  });

  test('VS Code: typing keeps the workspace running; an open tab nobody touches does not', STEP, async () => {
    need('running');
    const ws = () => api('GET', `/api/v1/workspaces/${st.id}`, undefined, st.adminToken);
    const page = await st.ctx.newPage();
    try {
      await page.goto(`${SERVER}/w/${st.id}/ide/`);
      await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: IDE_TIMEOUT });
      await page.getByRole('treeitem', { name: /README\.md/ }).click({ timeout: 60_000 });
      const editor = page.locator('.editor-instance .monaco-editor .view-lines').first();
      await editor.waitFor({ timeout: 30_000 });
      await editor.click();
      // 5 idle minutes of a second each (run.sh: --test-idle-minute 1000)
      const set = await api('PUT', `/api/v1/workspaces/${st.id}/settings`, { idle_timeout: '5m' }, st.adminToken);
      assert.equal(set.status, 200, set.text);
      // three timeouts' worth of typing: the workspace stays up
      const until = Date.now() + 15_000;
      while (Date.now() < until) {
        await page.keyboard.type('a', { delay: 0 });
        await page.waitForTimeout(300);
        const r = await ws();
        assert.equal(r.json.state, 'running', `stopped while typing: ${JSON.stringify(r.json.idle)}`);
      }
      const typed = await ws();
      assert.equal(typed.json.idle.last_activity_kind, 'VS Code');
      // hands off, the tab open: it stops, for idleness
      const t0 = Date.now();
      let state = 'running';
      while (state === 'running' && Date.now() - t0 < 120_000) {
        await page.waitForTimeout(500);
        state = (await ws()).json.state;
      }
      log(`VS Code left alone: stopped after ${Date.now() - t0} ms`);
      assert.notEqual(state, 'running', 'an untouched VS Code tab kept the workspace running for 2 min');
      const ev = await api('GET', `/api/v1/workspaces/${st.id}/events`, undefined, st.adminToken);
      assert.match(ev.text, /idle 5 min: stopping \(last activity: VS Code/);
    } finally {
      await page.close();
      // the later steps need it running, whatever happened here
      await api('PUT', `/api/v1/workspaces/${st.id}/settings`, { idle_timeout: null }, st.adminToken);
      await card('running').or(card('stopped')).waitFor({ timeout: RUNNING_TIMEOUT }).catch(() => {});
      if ((await ws()).json.state !== 'running') {
        await api('POST', `/api/v1/workspaces/${st.id}/start`, undefined, st.adminToken);
        await card('running').waitFor({ timeout: RUNNING_TIMEOUT });
      }
    }
  });

  test("another user gets neither the terminal nor the IDE of this workspace", STEP, async () => {
    need('id', 'adminToken', 'session');
    const other = `dash-other-${NONCE}`;
    const password = `pw-${randomBytes(9).toString('hex')}`;
    const made = await api('POST', '/api/v1/users', { name: other, password }, st.adminToken);
    assert.equal(made.status, 201, made.text);
    const ctx = await st.browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await ctx.newPage();
      watchErrors(page, 'other user');
      await login(page, other, password);
      // Not listed, and 404 as if it did not exist.
      await page.waitForTimeout(500);
      assert.equal(await page.locator(`li.ws-card[data-id="${st.id}"]`).count(), 0);
      const ide = await page.goto(`${SERVER}/w/${st.id}/ide/`);
      assert.equal(ide.status(), 404, 'the IDE answers 404 to another user');
      assert.equal(await page.locator('.monaco-workbench').count(), 0);
      await page.goto(SERVER + '/');
      // The terminal: neither a new shell nor the owner's session.
      for (const q of ['', `&session=${encodeURIComponent(st.session)}`]) {
        const got = await page.evaluate(async (url) => {
          return new Promise((done) => {
            const frames = [];
            let opened = false;
            const s = new WebSocket(url);
            s.binaryType = 'arraybuffer';
            s.onopen = () => {
              opened = true;
              s.send(new Uint8Array([0x30, ...new TextEncoder().encode('echo leaked-$((3*3))\r')]));
            };
            s.onmessage = (e) => frames.push(Array.from(new Uint8Array(e.data)));
            const finish = () => done({ opened, frames });
            s.onclose = finish;
            setTimeout(() => {
              s.close();
              finish();
            }, 3000);
          });
        }, `${SERVER.replace(/^http/, 'ws')}/api/v1/workspaces/${st.id}/terminal?cols=80&rows=24${q}`);
        const text = got.frames.map((f) => String.fromCharCode(...f.slice(1))).join('');
        assert.ok(!got.frames.some((f) => [0, 1, 0x30, 0x31].includes(f[0])),
          `another user got terminal frames (${q || 'new'}): ${text.slice(0, 200)}`);
        assert.ok(!text.includes('leaked-9'));
      }
      const r = await page.evaluate(async (id) => (await fetch(`/api/v1/workspaces/${id}`)).status, st.id);
      assert.equal(r, 404);
    } finally {
      await ctx.close();
    }
  });

  test('a server started in the workspace appears under Ports with a notification that opens it', STEP, async () => {
    need('running');
    const page = st.page;
    await page.bringToFront();
    const c = card();
    await c.locator('.ws-ports:not([hidden])').waitFor({ timeout: 20_000 });
    const perl = 'use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", ' +
      'LocalPort => 8321, Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { ' +
      'while (<$c>) { last if /^\\r?$/ } print $c "HTTP/1.0 200 OK\\r\\nContent-Type: text/html\\r\\n\\r\\n' +
      '<h1>hello from 8321</h1>"; close $c }';
    const r = await api('POST', `/api/v1/workspaces/${st.id}/exec`,
      { cmd: ['sh', '-c', 'setsid perl -e "$1" </dev/null >/dev/null 2>&1 &', 'sh', perl] }, st.adminToken);
    assert.equal(r.status, 200, r.text);
    const toast = page.locator('.toast[data-port="8321"]');
    await toast.waitFor({ timeout: 20_000 });
    assert.match(await toast.textContent(), /Port 8321 of .* is available/);
    await c.locator('.ports-list li[data-port="8321"] a').waitFor({ timeout: 5_000 });
    const [popup] = await Promise.all([
      page.waitForEvent('popup'),
      toast.getByRole('link', { name: /Open/ }).click()
    ]);
    await popup.locator('h1', { hasText: 'hello from 8321' }).waitFor({ timeout: 15_000 });
    await shot(popup, 'port-8321');
    await popup.close();
  });

  test("a page served from a forwarded port cannot use the visitor's Berth session", STEP, async () => {
    need('running');
    // The path form is on Berth's own origin: without the sandbox this page's
    // script could read the API and act with the visitor's session cookie.
    const html = '<!doctype html><title>probe</title><p id="r"></p><script>' +
      'const out = ["origin:" + self.origin];' +
      'try { out.push("cookie:" + (document.cookie ? "readable" : "empty")); } catch (e) { out.push("cookie:" + e.name); }' +
      `fetch("/api/v1/workspaces", { credentials: "include" })` +
      '.then((r) => "read:" + r.status, (e) => "read:" + e.name)' +
      `.then((a) => { out.push(a); return fetch("/api/v1/workspaces/${st.id}", { method: "DELETE", credentials: "include" }); })` +
      '.then((r) => "delete:" + r.status, (e) => "delete:" + e.name)' +
      '.then((b) => { out.push(b); document.getElementById("r").textContent = out.join(" "); });' +
      '</script>';
    const perl = 'use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", ' +
      'LocalPort => 8322, Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { ' +
      'while (<$c>) { last if /^\\r?$/ } open(my $f, "<", "/tmp/probe.html") or die; local $/; my $b = <$f>; ' +
      'print $c "HTTP/1.0 200 OK\\r\\nContent-Type: text/html\\r\\n\\r\\n$b"; close $c }';
    const r = await api('POST', `/api/v1/workspaces/${st.id}/exec`,
      { cmd: ['sh', '-c', 'printf %s "$1" >/tmp/probe.html && (setsid perl -e "$2" </dev/null >/dev/null 2>&1 &)', 'sh', html, perl] },
      st.adminToken);
    assert.equal(r.status, 200, r.text);
    const page = await st.ctx.newPage();
    watchErrors(page, 'probe');
    try {
      // the session cookie is there: the dashboard is logged in
      assert.ok((await st.ctx.cookies(SERVER)).some((c) => c.name === 'berth_session'));
      let text = '';
      for (let i = 0; i < 50 && !text; i++) {
        const res = await page.goto(`${SERVER}/w/${st.id}/ports/8322/`);
        if (res && res.status() === 200) {
          await page.locator('#r').filter({ hasText: 'delete:' }).waitFor({ timeout: 15_000 });
          text = await page.locator('#r').textContent();
        } else {
          await new Promise((ok) => setTimeout(ok, 300));
        }
      }
      log(`probe page: ${text}`);
      assert.match(text, /origin:null/);
      assert.match(text, /cookie:SecurityError/);
      assert.doesNotMatch(text, /read:200/);
      assert.doesNotMatch(text, /delete:2\d\d/);
      const still = await api('GET', `/api/v1/workspaces/${st.id}`, undefined, st.adminToken);
      assert.equal(still.status, 200, still.text);
    } finally {
      await page.close();
    }
  });

  test('state changes made elsewhere show up live; stop, start, rebuild from the dashboard', STEP, async () => {
    need('running');
    const page = st.page;
    await page.bringToFront();
    const c = card();
    // Stopped through the API: only the event stream can tell the page.
    const stop = await api('POST', `/api/v1/workspaces/${st.id}/stop`, undefined, st.adminToken);
    assert.equal(stop.status, 202, stop.text);
    await card('stopped').waitFor({ timeout: RUNNING_TIMEOUT });
    await c.getByRole('button', { name: /^Start/ }).click();
    await card('running').waitFor({ timeout: RUNNING_TIMEOUT });
    await c.getByRole('button', { name: /^Stop/ }).click();
    await card('stopped').waitFor({ timeout: RUNNING_TIMEOUT });
    assert.ok(await c.getByRole('button', { name: /^Start/ }).isVisible());
    assert.ok(!(await c.getByRole('link', { name: /Open VS Code/ }).isVisible()));
    // Rebuild: the log panel follows the action's lines.
    await c.getByRole('button', { name: /^Rebuild/ }).click();
    await c.locator('pre.log').filter({ hasText: /rebuild/i }).waitFor({ timeout: RUNNING_TIMEOUT });
    await card('running').waitFor({ timeout: RUNNING_TIMEOUT });
  });

  test('a failed create shows the failed step and its message', STEP, async () => {
    need('adminToken');
    const page = st.page;
    const missing = `/nonexistent/berth-browser-${NONCE}`;
    await page.getByLabel('Repository').fill(missing);
    await page.getByRole('button', { name: 'Create workspace' }).click();
    const c = page.locator('li.ws-card[data-state="failed"]').filter({ hasText: missing });
    await c.waitFor({ timeout: RUNNING_TIMEOUT });
    const id = await c.getAttribute('data-id');
    try {
      const box = c.locator('.ws-error.is-failed');
      await box.locator('.error-title', { hasText: /while cloning/ }).waitFor({ timeout: 10_000 });
      const msg = await box.locator('.error-message').innerText();
      assert.ok(msg.trim().length > 0, 'the error has a message');
      assert.doesNotMatch(msg, /\bat .+:\d+:\d+|Traceback|\.c:\d+/, 'no stack trace');
      assert.ok(await c.locator('details.ws-log[open] pre.log').filter({ hasText: /==> failed/ }).isVisible(),
        'the log is open and shows the failure');
      assert.ok(await c.getByRole('button', { name: /^Retry/ }).isVisible(), 'a failed workspace can be retried');
      await shot(page, 'dashboard-failed');
    } finally {
      await api('DELETE', `/api/v1/workspaces/${id}`, undefined, st.adminToken);
    }
  });

  test('the Prebuilds panel shows a prebuild of the repository with its state and log', STEP, async () => {
    need('adminToken');
    const page = st.page;
    const made = await api('POST', '/api/v1/prebuilds', { repo: REPO }, st.adminToken);
    assert.equal(made.status, 201, made.text);
    const id = made.json.id;
    try {
      const row = page.locator(`.pb-panel tr[data-id="${id}"]`);
      await row.waitFor({ timeout: 30_000 });
      await page.locator(`.pb-panel tr[data-id="${id}"][data-state="ready"]`).waitFor({ timeout: RUNNING_TIMEOUT });
      assert.ok((await page.locator('.pb-panel').innerText()).includes(REPO), 'the repository heads its prebuilds');
      await row.locator('details.pb-log summary').click();
      await row.locator('pre.log').filter({ hasText: /==> ready/ }).waitFor({ timeout: 15_000 });
      await shot(page, 'dashboard-prebuilds', true);
      // "Prebuild again" starts a second one of the same branch
      await row.getByRole('button', { name: /Prebuild again/ }).click();
      await page.locator(`.pb-panel tr[data-id]:not([data-id="${id}"])`).first().waitFor({ timeout: 30_000 });
    } finally {
      const all = await api('GET', '/api/v1/prebuilds', undefined, st.adminToken);
      for (const pb of (all.json && all.json.prebuilds) || []) {
        await api('DELETE', `/api/v1/prebuilds/${pb.id}`, undefined, st.adminToken);
      }
    }
  });

  test('the SSH keys panel adds a key, refuses a malformed one with the reason, and removes it', STEP, async () => {
    need('page');
    const page = st.page;
    const dir = join(ARTIFACTS, `sshkey-${NONCE}`);
    mkdirSync(dir, { recursive: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'browser@test', '-f', join(dir, 'k')]);
    const pub = execFileSync('cat', [join(dir, 'k.pub')]).toString().trim();
    const fp = execFileSync('ssh-keygen', ['-lf', join(dir, 'k.pub')]).toString().split(' ')[1];
    const panel = page.locator('.sshkey-panel');
    await panel.locator('#sshkey-how').filter({ hasText: /ssh -p|gateway is off/ }).waitFor({ timeout: 15_000 });
    await panel.locator('#sshkey-key').fill('ssh-ed25519 AAAAnot-a-key');
    await panel.locator('#sshkey-submit').click();
    await panel.locator('#sshkey-error').filter({ hasText: /malformed|not taken/ }).waitFor({ timeout: 15_000 });
    await panel.locator('#sshkey-key').fill(pub);
    await panel.locator('#sshkey-name').fill('browser-key');
    await panel.locator('#sshkey-submit').click();
    const item = panel.locator('li.sshkey').filter({ hasText: fp });
    await item.waitFor({ timeout: 15_000 });
    assert.ok((await item.innerText()).includes('browser-key'), 'the key shows its name');
    assert.ok(await panel.locator('#sshkey-error').isHidden(), 'the earlier error is gone');
    await shot(page, 'dashboard-ssh-keys', true);
    await item.getByRole('button', { name: /Remove/ }).click();
    await item.waitFor({ state: 'detached', timeout: 15_000 });
  });

  test('delete asks for confirmation, then the workspace goes', STEP, async () => {
    need('id');
    const page = st.page;
    const c = card();
    await c.getByRole('button', { name: /^Delete/ }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor({ timeout: 5_000 });
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForTimeout(300);
    assert.equal(await c.count(), 1, 'Cancel keeps the workspace');
    await c.getByRole('button', { name: /^Delete/ }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await c.waitFor({ state: 'detached', timeout: RUNNING_TIMEOUT });
    const gone = await api('GET', `/api/v1/workspaces/${st.id}`, undefined, st.adminToken);
    assert.equal(gone.status, 404);
    st.id = null;
  });

  test('logging out ends the session', STEP, async () => {
    need('adminToken');
    const page = st.page;
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(/\/login\.html/, { timeout: 10_000 });
    await page.goto(SERVER + '/');
    await page.waitForURL(/\/login\.html\?next=/, { timeout: 10_000 });
    const me = await page.evaluate(async () => (await fetch('/api/v1/me')).status);
    assert.equal(me, 401);
  });

  test('no script errors in any page', STEP, async () => {
    assert.deepEqual(st.errors, []);
  });
});
