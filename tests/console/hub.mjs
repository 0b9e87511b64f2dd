// Helpers for the console suite: the real `socket-bridge` binary on a free port with its own data
// dir, tokens signed with its secret (expired ones too), publishing over HTTP, and Debian's
// Chromium driven by playwright-core. Every child process is killed when the tests end.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The binary under test: `$SOCKET_BRIDGE_BIN`, else the debug build of the repository. */
export const BIN = process.env.SOCKET_BRIDGE_BIN
  ? path.resolve(process.env.SOCKET_BRIDGE_BIN)
  : path.resolve(here, '../../target/debug/socket-bridge');

/** Where screenshots go: `$CONSOLE_SCREENSHOTS`, else tests/console/output. */
export const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS
  ? path.resolve(process.env.CONSOLE_SCREENSHOTS)
  : path.join(here, 'output');

/** Debian's Chromium (`apt-get install chromium`); never a downloaded browser. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const SECRET = `console-e2e-secret-${randomBytes(12).toString('hex')}`;

const WAIT_MS = 15000;
const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An HS256 token for `sub` with `permissions`, expiring `ttlSeconds` from now (negative: expired). */
export function token(sub, permissions, ttlSeconds = 3600) {
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ sub, permissions, exp: Math.floor(Date.now() / 1000) + ttlSeconds });
  const signature = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${signature}`;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A hub process; `start` again after `stop` serves the same data dir on the same port. */
export class Hub {
  constructor(port, dir, args) {
    this.port = port;
    this.dir = dir;
    this.args = args;
    this.base = `http://127.0.0.1:${port}`;
    this.child = null;
  }

  static async start(args = []) {
    const dir = await mkdtemp(path.join(tmpdir(), 'console-e2e-'));
    const hub = new Hub(await freePort(), dir, args);
    await hub.start();
    return hub;
  }

  async start() {
    const child = spawn(BIN, ['--listen', `127.0.0.1:${this.port}`, '--data-dir', path.join(this.dir, 'data'), ...this.args], {
      env: { PATH: process.env.PATH, JWT_SECRET: SECRET, LOG_FORMAT: 'json', RUST_LOG: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
    this.child = child;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the hub did not start')), WAIT_MS);
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        if (line.includes('socket-bridge listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`the hub exited with ${code}`)));
    });
  }

  /** Stops the process (SIGTERM) and waits for it. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  async destroy() {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Publishes events (one or an array) as a producer; the answer's JSON. */
  async publish(events) {
    const res = await fetch(`${this.base}/api/events`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token('producer', ['events:publish'])}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(events),
    });
    if (!res.ok) throw new Error(`publish: ${res.status} ${await res.text()}`);
    return res.json();
  }

  /** GET `path` with `bearer`: its JSON. */
  async get(urlPath, bearer) {
    const res = await fetch(`${this.base}${urlPath}`, { headers: { Authorization: `Bearer ${bearer}` } });
    return res.json();
  }
}

/** Headless Chromium (Debian's), with the flags that keep it off the network. */
export async function launchBrowser() {
  // Chromium has been seen closing right after its launch (the suite's setup failed, and the
  // same suite passed when run again): a failed start is tried again, twice at most, and said;
  // what the tests check is unchanged.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
    } catch (error) {
      if (attempt === 3) throw error;
      console.error(`chromium did not start (attempt ${attempt}): ${error.message.split('\n')[0]}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** A page at 1360x860 that records console errors and refused requests into `problems`. */
export async function openPage(browser, problems) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 }, acceptDownloads: true, timezoneId: 'UTC' });
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  page.setDefaultTimeout(WAIT_MS);
  return page;
}

/** Saves a screenshot of `page` as `<name>.png` under SCREENSHOTS. */
export async function screenshot(page, name, { fullPage = false } = {}) {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage });
}
