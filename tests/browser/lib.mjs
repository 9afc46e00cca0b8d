// lib.mjs - what the browser tests share: starting Debian's chromium, the
// API over fetch, logging in through the login page, reading the web
// terminal's buffer, screenshots.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = resolve(process.env.BERTH_ARTIFACTS || join(HERE, '..', 'artifacts'));
const CHROMIUM = process.env.BERTH_CHROMIUM || '/usr/bin/chromium';

export function log(msg) {
  // node --test shows what a test file prints as TAP comments ("# ...").
  console.log(msg);
}

// launch(extraArgs, env): chromium headless; env (optional) replaces the
// browser's environment (HOME decides which NSS database it trusts).
export function launch(extraArgs = [], env = undefined) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run', ...extraArgs],
    env
  });
}

export async function shot(page, name, fullPage = false) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `browser-${name}.png`);
  await page.screenshot({ path, fullPage, timeout: 15_000 });
  log(`screenshot: ${path}`);
}

// Uncaught page errors go to errors (a test asserts it stays empty).
export function watchErrors(errors, page, who) {
  page.on('pageerror', (e) => errors.push(`${who}: ${e.message}`));
}

// apiClient(base): api(method, path, body, token) -> { status, json, text }.
export function apiClient(base) {
  return async (method, path, body, token) => {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    });
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: res.status, json, text };
  };
}

// Logs in through the login page of server and waits for the live dashboard.
export async function login(page, server, user, password) {
  await page.goto(server + '/');
  await page.waitForURL(/\/login\.html\?next=/, { timeout: 15_000 });
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(server + '/', { timeout: 15_000 });
  await page.locator('#live[data-state="live"]').waitFor({ timeout: 15_000 });
}

// The terminal's whole buffer as text (wrapped lines joined).
export async function termText(page) {
  return page.evaluate(() => {
    const t = window.berthTerminal;
    if (!t) return '';
    const b = t.buffer.active;
    let out = '';
    for (let i = 0; i < b.length; i++) {
      const l = b.getLine(i);
      if (!l) continue;
      out += (l.isWrapped || i === 0 ? '' : '\n') + l.translateToString(true);
    }
    return out;
  });
}

export async function waitTerm(page, re, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let text = '';
  while (Date.now() < deadline) {
    text = await termText(page);
    const m = re.exec(text);
    if (m) return m;
    await page.waitForTimeout(100);
  }
  throw new Error(`terminal never showed ${re}; it shows:\n${text.trimEnd().split('\n').slice(-15).join('\n')}`);
}

// Types command and Enter into the terminal.
export async function run(page, command) {
  await page.locator('.xterm').click();
  await page.keyboard.type(command);
  await page.keyboard.press('Enter');
}

// Waits until the terminal page is attached; returns its session id.
export async function openTerminal(page) {
  await page.locator('#term-status[data-state="live"]').waitFor({ state: 'attached', timeout: 30_000 });
  await page.waitForFunction(() => location.hash.includes('session='), null, { timeout: 15_000 });
  return page.evaluate(() => decodeURIComponent(/session=([^&]*)/.exec(location.hash)[1]));
}
