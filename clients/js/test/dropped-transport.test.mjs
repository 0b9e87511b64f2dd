// Issue scenario 1: the network drops the connection, twice, while events keep coming. The
// client reconnects by itself, resumes every room (its photo included), and its handlers get each
// event exactly once, in seq order, even though the app re-subscribes on every reconnect (as apps
// written for the seed do) and the hub replays the photo's whole history once more.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SocketBridgeClient } from '../dist/index.js';
import { ev, sleep, token, uid } from './support/hub.mjs';
import { Proxy } from './support/proxy.mjs';
import { Recorder } from './support/recorder.mjs';
import { cleanup, hubWithPhoto } from './support/setup.mjs';

test('a dropped transport while events keep coming: every event once, in order', async () => {
  const first = (photo, user) => [ev.uploaded(photo, user), ev.progress(photo, 1)];
  const { hub, user, photo, ledger } = await hubWithPhoto({ first });
  const proxy = await Proxy.start(hub.url);
  cleanup.push(() => proxy.close());

  const client = new SocketBridgeClient(proxy.url, {
    getToken: () => token(user),
    clientId: uid('c'),
    transports: ['websocket'],
    backoff: { initialMs: 50, maxMs: 400 },
  });
  cleanup.push(() => client.disconnect());
  const recorder = new Recorder(client);
  client.on('connection', ({ state }) => {
    if (state === 'resuming') client.subscribeToPhoto(photo).catch(() => {});
  });
  const { rooms } = await client.connect();
  const ack = await client.subscribeToPhoto(photo);
  assert.equal(ack.ok, true);

  // 200 events, 5 at a time, in the photo, user and global rooms; meanwhile the connection is cut
  // twice and stays down for 300 ms each time, so the hub stores events the client is not there for.
  const publishing = (async () => {
    for (let i = 0; i < 40; i += 1) {
      await ledger.publish(hub, [
        ev.progress(photo, i),
        ev.progress(photo, i + 1),
        ev.maintenance({ i }),
        ev.progress(photo, i + 2),
        i % 8 === 7 ? ev.completed(photo) : ev.progress(photo, i + 3),
      ]);
      await sleep(25);
    }
  })();
  const network = (async () => {
    await sleep(150);
    proxy.cut(300);
    await recorder.waitForState('live', 2);
    // An overlapping replay, as a subscribe racing a resume gives: the hub sends the photo's
    // events again from seq 1.
    client.socket.emit('subscribe:photo', { photoId: photo, since: 0 });
    await sleep(150);
    proxy.cut(300);
    await recorder.waitForState('live', 3);
  })();
  await Promise.all([publishing, network]);

  // The photo from its first event (subscribeToPhoto starts at 0); the default rooms from the
  // head they were joined at.
  await ledger.assertDelivered(recorder, `photo:${photo}`);
  for (const room of [`user:${user}`, 'global']) await ledger.assertDelivered(recorder, room, { after: rooms[room] });
  assert.ok(recorder.resumed('global').length > 0, 'some events were missed and replayed by a resume');
  assert.deepEqual(recorder.states.slice(0, 4), ['connecting', 'connected', 'resuming', 'live']);
  assert.equal(client.state, 'live');
});
