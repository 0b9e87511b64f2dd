// The library in Chromium without a bundler: the page loads the built ESM and socket.io-client's
// ESM build through an import map, keeps its seqs in localStorage, and gets tokens from an async
// getToken. The network drops while events keep coming; the page's handlers get every event once,
// in order. A screenshot of the page is saved under test-output/.

import assert from 'node:assert/strict';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { ev, sleep, startHub, token, uid } from './support/hub.mjs';
import { Proxy } from './support/proxy.mjs';
import { Ledger, until } from './support/recorder.mjs';
import { startStaticServer } from './support/static-server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUTPUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test-output');
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const cleanup = [];
after(async () => {
  for (const close of cleanup.reverse()) await close();
});

test('in Chromium via an import map: a dropped connection, every event once, in order, seqs in localStorage', async () => {
  await access(CHROMIUM).catch(() => {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it (Debian: apt-get install -y chromium) or set CHROMIUM_PATH`);
  });
  // The page is served from another origin than the hub: the polling transport needs CORS.
  const hub = await startHub({ env: { ALLOWED_ORIGINS: '*' } });
  cleanup.push(() => hub.close());
  const proxy = await Proxy.start(hub.url);
  cleanup.push(() => proxy.close());
  const site = await startStaticServer();
  cleanup.push(site.close);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  cleanup.push(() => browser.close());

  const user = uid('u');
  const photo = uid('p');
  const photoRoom = `photo:${photo}`;
  const ledger = new Ledger();
  await ledger.publish(hub, [ev.uploaded(photo, user), ev.progress(photo, 10)]);

  const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  let tokens = 0;
  await page.exposeFunction('getToken', () => {
    tokens += 1;
    return token(user);
  });
  const query = new URLSearchParams({ hub: proxy.url, clientId: uid('tab'), photo });
  await page.goto(`${site.url}/?${query}`);
  const seen = () => page.evaluate(() => window.seen);
  await until(() => page.evaluate(() => window.subscribed?.ok), 'the page to subscribe');

  for (let i = 1; i <= 4; i += 1) await ledger.publish(hub, [ev.progress(photo, 10 + i), ev.maintenance({ i })]);
  proxy.cut(400);
  await sleep(50);
  for (let i = 5; i <= 8; i += 1) await ledger.publish(hub, [ev.progress(photo, 10 + i), ev.maintenance({ i })]);
  await ledger.publish(hub, [ev.completed(photo)]);
  await until(async () => (await seen()).states.filter((s) => s === 'live').length >= 2, 'the page to be live again');

  const expected = ledger.expected(photoRoom);
  await until(async () => (await seen()).events.filter((e) => e.room === photoRoom).length >= expected.length, 'every photo event');
  await sleep(100);
  const { events, states } = await seen();
  assert.deepEqual(events.filter((e) => e.room === photoRoom).map((e) => [e.seq, e.eventId]), expected);
  assert.deepEqual(states.slice(0, 4), ['connecting', 'connected', 'resuming', 'live']);
  assert.ok(states.includes('offline'), 'the page saw the connection drop');
  assert.ok(events.some((e) => e.room === photoRoom && e.state === 'resuming'), 'missed events came by the resume');
  assert.ok(tokens >= 2, 'getToken was called for the reconnect');
  assert.deepEqual(errors, []);

  const saved = JSON.parse(await page.evaluate((key) => localStorage.getItem(key), `socket-bridge:${proxy.url}`));
  assert.equal(saved.epoch, hub.epoch);
  assert.equal(saved.seqs[photoRoom], expected.at(-1)[0]);

  await mkdir(OUTPUT, { recursive: true });
  await page.screenshot({ path: path.join(OUTPUT, 'browser.png'), fullPage: true });
});
