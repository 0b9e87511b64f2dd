// Issue scenario 5: two tabs share one storage (as tabs of one origin share localStorage). Tab B
// drops off while events keep coming and tab A keeps saving newer seqs: B must still resume from
// where B was, not from what A saved. Then a third client on the same storage (a page reload)
// starts from the saved seqs: it gets only what came after them.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MemoryStorage, SocketBridgeClient } from '../dist/index.js';
import { ev, sleep, token, uid } from './support/hub.mjs';
import { Proxy } from './support/proxy.mjs';
import { Recorder } from './support/recorder.mjs';
import { cleanup, hubWithPhoto } from './support/setup.mjs';

test('two tabs sharing one storage: each gets every event once, in order; a reload starts from the saved seqs', async () => {
  const { hub, user, photo, ledger } = await hubWithPhoto();
  const photoRoom = `photo:${photo}`;
  const userRoom = `user:${user}`;
  const storage = new MemoryStorage();

  /** A tab: its own client id and network path, the shared storage (and what it held when the tab opened). */
  async function openTab() {
    const savedAtOpen = JSON.parse(storage.getItem('socket-bridge:app') ?? '{"seqs":{}}').seqs;
    const proxy = await Proxy.start(hub.url);
    cleanup.push(() => proxy.close());
    const client = new SocketBridgeClient(proxy.url, {
      getToken: () => token(user),
      clientId: uid('tab'),
      storage,
      storageKey: 'socket-bridge:app',
      transports: ['websocket'],
      backoff: { initialMs: 50, maxMs: 250 },
    });
    cleanup.push(() => client.disconnect());
    const recorder = new Recorder(client);
    const { rooms } = await client.connect();
    assert.equal((await client.subscribeToPhoto(photo)).ok, true);
    return { proxy, client, recorder, rooms, savedAtOpen };
  }

  const a = await openTab();
  await a.recorder.waitFor(photoRoom, 1); // A has handled (and saved) the upload when B opens
  const b = await openTab();
  const publishing = (async () => {
    for (let i = 0; i < 30; i += 1) {
      await ledger.publish(hub, [ev.progress(photo, i), ev.maintenance({ i }), i % 10 === 9 ? ev.completed(photo) : ev.progress(photo, i)]);
      await sleep(20);
    }
  })();
  await sleep(100);
  b.proxy.cut(400);
  await publishing;
  await b.recorder.waitForState('live', 2);

  // Each tab from where it started: what the storage held when it opened (nothing for A; A's
  // seqs for B), else the head it was joined at.
  const start = (tab, room) => tab.savedAtOpen[room] ?? tab.rooms[room] ?? 0;
  assert.equal(start(b, photoRoom), 1);
  for (const tab of [a, b]) {
    for (const room of [photoRoom, userRoom, 'global']) {
      await ledger.assertDelivered(tab.recorder, room, { after: start(tab, room) });
    }
  }
  assert.ok(b.recorder.resumed('global').length > 0, 'tab B missed events and got them by its resume');
  const saved = JSON.parse(storage.getItem('socket-bridge:app'));
  assert.equal(saved.epoch, hub.epoch);
  for (const room of [photoRoom, userRoom, 'global']) {
    assert.equal(saved.seqs[room], ledger.expected(room).at(-1)[0], `${room}: the newest seq either tab saw is saved`);
  }

  // A reload: a new client on the same storage resumes its default rooms from the saved seqs and
  // subscribes to the photo after its saved seq, so it gets only the events published from now on.
  const c = await openTab();
  await ledger.publish(hub, [ev.progress(photo, 100), ev.maintenance({ after: 'reload' })]);
  for (const room of [photoRoom, 'global']) await ledger.assertDelivered(c.recorder, room, { after: start(c, room) });
  assert.equal(c.recorder.delivered(photoRoom).length, 1);
  assert.equal(c.rooms[userRoom], undefined, 'the user room was resumed, not joined live');
});
