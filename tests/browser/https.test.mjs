// https.test.mjs - Berth over HTTPS in a real browser that trusts the test CA
// the way a user's browser trusts a team's CA: through its NSS database
// (certutil), with no certificate errors ignored. run.sh (BERTH_BROWSER_TLS=1)
// makes the CA, berthd's certificate for berth.localhost and *.berth.localhost,
// the database, and starts berthd with --tls-cert/--tls-key/--http-redirect.
//
// Environment (set by run.sh):
//   BERTH_SERVER          the browser's origin, https://berth.localhost:PORT
//   BERTH_API             the same server for fetch, https://127.0.0.1:PORT
//                         (node trusts the CA through NODE_EXTRA_CA_CERTS)
//   BERTH_REDIRECT        berthd's plain-HTTP listener, which only redirects
//   BERTH_TLS_HOME        the HOME whose ~/.pki/nssdb trusts the test CA
//   BERTH_OTHER_CERT, BERTH_OTHER_KEY  a pair another CA signed, for
//                         berth.localhost too: the browser must refuse it
//   BERTH_ADMIN_PASSWORD, BERTH_TEST_REPO  as for dashboard.test.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { randomBytes } from 'node:crypto';
import { apiClient, launch, log, login, openTerminal, run, shot, waitTerm, watchErrors } from './lib.mjs';

const SERVER = (process.env.BERTH_SERVER || '').replace(/\/+$/, '');
const API = (process.env.BERTH_API || SERVER).replace(/\/+$/, '');
const REDIRECT = (process.env.BERTH_REDIRECT || '').replace(/\/+$/, '');
const ADMIN_PASSWORD = process.env.BERTH_ADMIN_PASSWORD || '';
const REPO = process.env.BERTH_TEST_REPO || '';
const NONCE = randomBytes(3).toString('hex');
const STEP = { timeout: 300_000 };
const api = apiClient(API);
const PORT = new URL(SERVER || 'https://x').port;
const DOMAIN = 'berth.localhost';

const st = { browser: null, ctx: null, page: null, token: null, id: null, name: `tls-${NONCE}`, errors: [] };

function need(...keys) {
  for (const k of keys) if (!st[k]) throw new Error(`skipped: an earlier step failed (no ${k})`);
}

describe('Berth over HTTPS in a browser that trusts the test CA', () => {
  before(async () => {
    for (const v of ['BERTH_SERVER', 'BERTH_REDIRECT', 'BERTH_TLS_HOME', 'BERTH_ADMIN_PASSWORD', 'BERTH_TEST_REPO'])
      assert.ok(process.env[v], `${v} is not set (run tests/browser/run.sh with BERTH_BROWSER_TLS=1)`);
    // berth.localhost and its port subdomains are this machine; the
    // certificate is checked against the name, as for any server
    st.browser = await launch([`--host-resolver-rules=MAP ${DOMAIN} 127.0.0.1, MAP *.${DOMAIN} 127.0.0.1`],
      { ...process.env, HOME: process.env.BERTH_TLS_HOME });
    st.ctx = await st.browser.newContext({ viewport: { width: 1280, height: 800 } });
    st.page = await st.ctx.newPage();
    watchErrors(st.errors, st.page, 'dashboard');
  });

  after(async () => {
    if (st.id && st.token) await api('DELETE', `/api/v1/workspaces/${st.id}`, undefined, st.token).catch(() => {});
    if (st.browser) await st.browser.close();
  });

  test('plain HTTP is redirected to the HTTPS origin, whose certificate the browser verifies', STEP, async () => {
    const page = st.page;
    const res = await page.goto(`${REDIRECT}/`);
    await page.waitForURL(`${SERVER}/login.html?next=%2F`, { timeout: 15_000 });
    assert.equal(new URL(page.url()).protocol, 'https:');
    const tls = await res.securityDetails();
    assert.ok(tls, 'the page came over TLS');
    log(`certificate: ${tls.subjectName} from ${tls.issuer}, ${tls.protocol}`);
    assert.equal(tls.issuer, 'berth-test-ca');
    assert.match(res.headers()['strict-transport-security'] || '', /max-age=\d+/);
  });

  test('logging in sets Secure, HttpOnly __Host- cookies, and the dashboard goes live over wss://', STEP, async () => {
    await login(st.page, SERVER, 'admin', ADMIN_PASSWORD);
    const cookies = await st.ctx.cookies(SERVER);
    const session = cookies.find((c) => c.name === '__Host-berth_session');
    assert.ok(session, `a __Host-berth_session cookie; got ${cookies.map((c) => c.name).join(', ')}`);
    assert.equal(session.secure, true);
    assert.equal(session.httpOnly, true);
    assert.equal(session.path, '/');
    assert.equal(session.domain, DOMAIN, 'host-only, for this name alone');
    assert.ok(!cookies.some((c) => c.name === 'berth_session'), 'no plain cookie beside it');
    const tok = await api('POST', '/api/v1/auth/login',
      { username: 'admin', password: ADMIN_PASSWORD, mode: 'token', token_name: `browser-tls-${NONCE}` });
    assert.equal(tok.status, 200, tok.text);
    st.token = tok.json.token;
  });

  test('a workspace created in the dashboard runs, and its terminal works over wss://', STEP, async () => {
    need('token');
    const page = st.page;
    await page.getByLabel('Repository').fill(REPO);
    await page.getByLabel(/Name/).fill(st.name);
    await page.getByRole('button', { name: 'Create workspace' }).click();
    const c = page.locator('li.ws-card').filter({ has: page.locator('h3', { hasText: st.name }) });
    await c.waitFor({ timeout: 15_000 });
    st.id = await c.getAttribute('data-id');
    await page.locator(`li.ws-card[data-id="${st.id}"][data-state="running"]`).waitFor({ timeout: 120_000 });
    const term = await st.ctx.newPage();
    watchErrors(st.errors, term, 'terminal');
    try {
      await term.goto(`${SERVER}/terminal.html?ws=${st.id}`);
      await openTerminal(term);
      await run(term, 'echo tls-$((6*7))');
      await waitTerm(term, /^tls-42$/m);
      await shot(term, 'https-terminal');
    } finally {
      await term.close();
    }
  });

  test('VS Code opens over https and shows the repository', STEP, async () => {
    need('id');
    const page = await st.ctx.newPage();
    watchErrors(st.errors, page, 'ide');
    try {
      await page.goto(`${SERVER}/w/${st.id}/ide/`);
      await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 120_000 });
      assert.equal(new URL(page.url()).origin, SERVER);
      await page.getByRole('treeitem', { name: /README\.md/ }).waitFor({ timeout: 60_000 });
      await shot(page, 'https-ide');
    } finally {
      await page.close();
    }
  });

  test('a forwarded port opens on its own subdomain under the wildcard certificate', STEP, async () => {
    need('id');
    const perl = 'use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", ' +
      'LocalPort => 8331, Listen => 5, ReuseAddr => 1) or die; while (my $c = $s->accept) { ' +
      'while (<$c>) { last if /^\\r?$/ } print $c "HTTP/1.0 200 OK\\r\\nContent-Type: text/html\\r\\n\\r\\n' +
      '<h1>hello over tls from 8331</h1>"; close $c }';
    const r = await api('POST', `/api/v1/workspaces/${st.id}/exec`,
      { cmd: ['sh', '-c', 'setsid perl -e "$1" </dev/null >/dev/null 2>&1 &', 'sh', perl] }, st.token);
    assert.equal(r.status, 200, r.text);
    const url = `https://8331-${st.name}.${DOMAIN}:${PORT}/`;
    const page = await st.ctx.newPage();
    watchErrors(st.errors, page, 'port');
    try {
      // the browser goes through the exchange on Berth's origin and back
      let res = null;
      for (let i = 0; i < 50; i++) {
        res = await page.goto(url);
        if (res && res.status() === 200) break;
        await new Promise((ok) => setTimeout(ok, 300));
      }
      await page.locator('h1', { hasText: 'hello over tls from 8331' }).waitFor({ timeout: 15_000 });
      assert.equal(new URL(page.url()).host, `8331-${st.name}.${DOMAIN}:${PORT}`);
      const tls = await res.securityDetails();
      assert.equal(tls && tls.issuer, 'berth-test-ca');
      const pass = (await st.ctx.cookies(url)).find((c) => c.name === '__Host-berth_port');
      assert.ok(pass && pass.secure, 'the subdomain holds a Secure __Host- pass of its own');
      await shot(page, 'https-port');
    } finally {
      await page.close();
    }
  });

  test('a certificate another CA signed is refused by the same browser', STEP, async () => {
    // the trust is real: the same name, a certificate the test CA did not
    // sign, served by an HTTPS server in this process (it serves connections
    // at once, where openssl s_server takes one at a time)
    const server = createHttpsServer({
      cert: readFileSync(process.env.BERTH_OTHER_CERT),
      key: readFileSync(process.env.BERTH_OTHER_KEY),
    }, (req, res) => res.end('served'));
    await new Promise((ok, fail) => {
      server.on('error', fail);
      server.listen(0, '127.0.0.1', ok);
    });
    const { port } = server.address();
    const page = await st.ctx.newPage();
    try {
      const err = await page.goto(`https://${DOMAIN}:${port}/`, { timeout: 30_000 })
        .then(() => null, (e) => e);
      assert.ok(err, 'the page loaded');
      assert.match(err.message, /ERR_CERT_AUTHORITY_INVALID/);
    } finally {
      await page.close();
      server.closeAllConnections();
      server.close();
    }
  });

  test('no script errors in any page', STEP, async () => {
    assert.deepEqual(st.errors, []);
  });
});
