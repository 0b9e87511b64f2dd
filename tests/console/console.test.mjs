// The support console in headless Chromium against the real binary: sign-in, photo lookup
// (status card, timeline, pruned prefix, export), the live tail (a new event appears; pause and
// resume lose nothing; the hub going away and coming back), a user's photos, the hub overview,
// and the forbidden and expired-token messages. Each view is saved as a screenshot.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';

import { Hub, launchBrowser, openPage, screenshot, token } from './hub.mjs';

const support = token('amy', ['support:read']);
let hub;
let browser;

const minutesAgo = (m) => new Date(Date.now() - m * 60000).toISOString();

/** A photo's events with producer timestamps spread over the last minutes. */
function story(photoId, steps, startMinutesAgo) {
  return steps.map(([type, data], i) => ({
    id: `${photoId}-${i + 1}`,
    type,
    data: { photoId, ...data },
    timestamp: minutesAgo(startMinutesAgo - i * 0.35),
  }));
}

before(async () => {
  // Retention keeps 10 events per room and runs every 2 s, so that p2 (13 events) shows a pruned
  // prefix while u1's room (10 events by the end) keeps all of its own.
  hub = await Hub.start(['--retention-max-events', '10', '--prune-schedule', '*/2 * * * * *']);
  await hub.publish(story('p1', [
    ['photo.uploaded', { userId: 'u1', filename: 'IMG_4032.jpg', size: 4821933 }],
    ['photo.processing.started', {}],
    ['photo.processing.progress', { progress: 20, stage: 'decode' }],
    ['photo.processing.progress', { progress: 45, stage: 'resize' }],
    ['photo.processing.progress', { progress: 60, stage: 'thumbnails' }],
    ['photo.processing.failed', { error: 'decoder ran out of memory at 8064x6048' }],
  ], 14));
  await hub.publish(story('p2', [
    ['photo.uploaded', { userId: 'u1', filename: 'beach.png' }],
    ['photo.processing.started', {}],
    ...[10, 20, 30, 40, 50, 60, 70, 80, 90, 100].map((progress, i) => ['photo.processing.progress', { progress, stage: i < 4 ? 'resize' : 'thumbnails' }]),
    ['photo.processing.completed', { thumbnails: [{ size: 256 }, { size: 1024 }] }],
  ], 11));
  await hub.publish(story('p4', [
    ['photo.uploaded', { userId: 'u1', filename: 'old.webp' }],
    ['photo.processing.completed', {}],
    ['photo.deleted', {}],
  ], 7));
  await hub.publish(story('p3', [
    ['photo.uploaded', { userId: 'u1', filename: 'cat.jpg' }],
    ['photo.processing.started', {}],
    ['photo.processing.progress', { progress: 30, stage: 'resize' }],
  ], 3));
  for (let i = 0; ; i += 1) {
    const info = await hub.get('/api/rooms/photo:p2', support);
    if (info.oldestSeq === 4) break;
    assert.ok(i < 100, `retention did not prune photo:p2: ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hub?.destroy();
});

async function signedIn(bearer = support) {
  const problems = [];
  const page = await openPage(browser, problems);
  await page.goto(`${hub.base}/console`);
  await page.fill('textarea[name=token]', bearer);
  await page.click('button:has-text("Sign in")');
  await page.waitForSelector('#identity .who');
  return { page, problems };
}

const seqs = (page) => page.locator('table.events tr.event').evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));

test('sign in, look up a photo: status card and timeline', async () => {
  const { page, problems } = await signedIn();
  const who = await page.textContent('#identity');
  assert.match(who, /amy/);
  assert.match(who, /support:read/);
  assert.match(who, /expires in/);
  await page.fill('input[name="Photo id"]', 'p1');
  await page.click('button:has-text("Look up")');
  await page.waitForSelector('.status-card .badge');
  assert.equal(await page.textContent('.status-card .badge'), 'failed');
  assert.equal(await page.textContent('.progress.large .pct'), '60%');
  assert.equal(await page.textContent('.status-card .facts a'), 'u1');
  assert.match(await page.textContent('.status-card .callout'), /decoder ran out of memory at 8064x6048/);
  await page.waitForSelector('table.events tr.event');
  assert.deepEqual(await seqs(page), [1, 2, 3, 4, 5, 6]);
  await page.click('.segmented [data-order=newest]');
  await page.waitForFunction(() => document.querySelector('table.events tr.event')?.dataset.seq === '6');
  assert.deepEqual(await seqs(page), [6, 5, 4, 3, 2, 1]);
  await page.click('.segmented [data-order=oldest]');
  await page.waitForFunction(() => document.querySelector('table.events tr.event')?.dataset.seq === '1');
  await page.click('table.events tr.event[data-seq="6"] .toggle');
  assert.match(await page.textContent('table.events tr.payload:not([hidden]) pre'), /"error": "decoder ran out of memory/);
  await screenshot(page, 'photo', { fullPage: true });
  assert.deepEqual(problems, []);
  await page.context().close();
});

test('a pruned prefix is named, not silent', async () => {
  const { page, problems } = await signedIn();
  await page.goto(`${hub.base}/console/#/photo/p2`);
  await page.waitForSelector('table.events tr.pruned');
  assert.match(await page.textContent('table.events tr.pruned'), /Events 1\.\.3 were pruned by retention/);
  assert.deepEqual(await seqs(page), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  assert.equal(await page.textContent('.status-card .badge'), 'completed');
  assert.match(await page.textContent('.status-card .facts'), /seq 4–13/);
  await screenshot(page, 'photo-pruned');
  assert.deepEqual(problems, []);
  await page.context().close();
});

test('export the timeline as JSONL and CSV', async () => {
  const { page } = await signedIn();
  await page.goto(`${hub.base}/console/#/photo/p1`);
  await page.waitForSelector('table.events tr.event');
  const [jsonl] = await Promise.all([page.waitForEvent('download'), page.click('button:has-text("Export JSONL")')]);
  assert.equal(jsonl.suggestedFilename(), 'photo-p1-events.jsonl');
  const lines = (await readFile(await jsonl.path(), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((e) => e.seq), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Object.keys(lines[0]).sort(), ['data', 'eventId', 'seq', 'timestamp', 'type']);
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('button:has-text("Export CSV")')]);
  assert.equal(csv.suggestedFilename(), 'photo-p1-events.csv');
  const rows = (await readFile(await csv.path(), 'utf8')).trim().split('\n');
  assert.equal(rows[0], 'seq,timestamp,type,eventId,progress,stage,error,data');
  assert.equal(rows.length, 7);
  assert.match(rows[4], /^4,.*,photo\.processing\.progress,p1-4,45,resize,,/);
  await page.context().close();
});

test('live tail: a new event appears; pause and resume lose nothing', async () => {
  const { page, problems } = await signedIn();
  await page.goto(`${hub.base}/console/#/tail/photo%3Ap3`);
  await page.waitForSelector('.pill.state-live');
  await page.waitForSelector('table.events tr.event[data-seq="3"]');
  await hub.publish({ type: 'photo.processing.progress', data: { photoId: 'p3', progress: 55, stage: 'thumbnails' } });
  await page.waitForSelector('table.events tr.event.fresh[data-seq="4"]');
  await page.click('button:has-text("Pause")');
  await page.waitForSelector('.pill.state-paused');
  await hub.publish([
    { type: 'photo.processing.progress', data: { photoId: 'p3', progress: 80, stage: 'thumbnails' } },
    { type: 'photo.processing.progress', data: { photoId: 'p3', progress: 95, stage: 'upload' } },
  ]);
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual(await seqs(page), [1, 2, 3, 4], 'nothing shown while paused');
  assert.match(await page.textContent('.tail-notice'), /Paused at seq 4\. Resuming continues from seq 5/);
  await screenshot(page, 'tail-paused');
  await page.click('button:has-text("Resume")');
  await page.waitForSelector('table.events tr.event[data-seq="6"]');
  await hub.publish({ type: 'photo.processing.completed', data: { photoId: 'p3' } });
  await page.waitForSelector('table.events tr.event[data-seq="7"]');
  assert.deepEqual(await seqs(page), [1, 2, 3, 4, 5, 6, 7]);
  await screenshot(page, 'tail');
  assert.deepEqual(problems, []);
  await page.context().close();
});

test('the hub goes away and comes back: the tail reconnects by itself', async () => {
  const { page } = await signedIn();
  await page.goto(`${hub.base}/console/#/tail/user%3Au1?from=now`);
  await page.waitForSelector('.pill.state-live');
  await hub.stop();
  await page.waitForSelector('#banner:has-text("The hub is not answering")');
  await page.waitForSelector('.pill.state-reconnecting');
  assert.equal(await page.inputValue('input[name=Room]'), 'user:u1');
  assert.match(await page.textContent('tr.waiting'), /Waiting for events in user:u1/);
  await screenshot(page, 'hub-away');
  await hub.start();
  await page.waitForSelector('#banner:has-text("The hub is back")');
  await page.waitForSelector('.pill.state-live');
  await hub.publish({ type: 'photo.uploaded', data: { photoId: 'p5', userId: 'u1', filename: 'new.jpg' } });
  await page.waitForSelector('table.events tr.event >> text=photo.uploaded');
  assert.equal((await seqs(page)).length, 1);
  await page.context().close();
});

test("a user's photos, each with its status", async () => {
  const { page, problems } = await signedIn();
  await page.goto(`${hub.base}/console/#/user/u1`);
  await page.waitForSelector('table.photos tbody tr');
  await page.waitForFunction(() => [...document.querySelectorAll('table.photos tbody tr')].every((r) => r.querySelector('.badge')));
  const rows = await page.locator('table.photos tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.querySelector('code').textContent, tr.querySelector('.badge').textContent]));
  const byPhoto = Object.fromEntries(rows);
  assert.equal(byPhoto.p1, 'failed');
  assert.equal(byPhoto.p2, 'completed');
  assert.equal(byPhoto.p4, 'deleted');
  assert.deepEqual(Object.keys(byPhoto).sort(), ['p1', 'p2', 'p3', 'p4', 'p5']);
  await page.click('table.photos a:has-text("p2")');
  await page.waitForSelector('.status-card .badge');
  assert.equal(new URL(page.url()).hash, '#/photo/p2');
  await page.goBack();
  await page.waitForSelector('table.photos tbody tr .badge');
  await screenshot(page, 'user');
  assert.deepEqual(problems, []);
  await page.context().close();
});

test('hub overview', async () => {
  const { page, problems } = await signedIn();
  await page.click('nav a:has-text("Hub")');
  await page.waitForSelector('.grid .card');
  const text = await page.textContent('.grid');
  assert.match(text, /Socket\.IO clients/);
  assert.match(text, /in-process/);
  assert.match(text, /Oldest kept event/);
  assert.match(text, /10 per room/);
  assert.match(text, /removed \d+ events? from \d+ of \d+ rooms? in \d+ ms/);
  await screenshot(page, 'hub');
  assert.deepEqual(problems, []);
  await page.context().close();
});

test("another user's token: the forbidden message", async () => {
  const { page } = await signedIn(token('u2', ['read:photos']));
  await page.goto(`${hub.base}/console/#/photo/p1`);
  await page.waitForSelector('.callout.danger');
  const text = await page.textContent('.callout.danger');
  assert.match(text, /Forbidden/);
  assert.match(text, /user u2; read:photos\) may not read photo “p1”/);
  await screenshot(page, 'forbidden');
  await page.goto(`${hub.base}/console/#/photo/nope`);
  await page.waitForSelector('.callout.warning');
  assert.match(await page.textContent('.callout.warning'), /Not found/);
  await page.context().close();
});

test('an expired token: the expired message, at sign-in and mid-session', async () => {
  const problems = [];
  const page = await openPage(browser, problems);
  await page.goto(`${hub.base}/console`);
  await page.fill('textarea[name=token]', token('amy', ['support:read'], -3600));
  await page.click('button:has-text("Sign in")');
  await page.waitForSelector('.feedback .callout');
  assert.match(await page.textContent('.feedback'), /This token has expired.*It expired at .*\(1 h ago\)/s);
  await screenshot(page, 'expired');
  await page.evaluate((t) => sessionStorage.setItem('socket-bridge-console-token', t), token('amy', ['support:read'], -3600));
  await page.goto(`${hub.base}/console/#/photo/p1`);
  await page.reload();
  await page.waitForSelector('.signin .callout');
  assert.match(await page.textContent('.signin'), /Your token has expired.*It expired at .*\(1 h ago\)/s);
  await page.context().close();
});
