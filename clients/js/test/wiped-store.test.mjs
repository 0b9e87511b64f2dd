// Issue scenario 3: the hub's data dir is wiped while the client is away, so the store comes back
// with a new epoch and seqs start again at 1 (more of them than the client had seen, so old seqs
// would hide new events). The client resumes with its old epoch; the hub answers every room with
// `replay:truncated` (a photo's with its status), and the handlers get the new history, once, in
// order.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MemoryStorage, SocketBridgeClient } from '../dist/index.js';
import { ev, uid } from './support/hub.mjs';
import { Ledger, Recorder, until } from './support/recorder.mjs';
import { cleanup, hubWithPhoto, startClosedHub } from './support/setup.mjs';
import { gatedTokens } from './support/tokens.mjs';

test('a wiped data dir: replay:truncated with the status, then the new history, once, in order', async () => {
  const first = (photo, user) => [ev.uploaded(photo, user), ev.progress(photo, 10), ev.progress(photo, 20)];
  let { hub, dataDir, user, photo, ledger: old } = await hubWithPhoto({ ownDataDir: true, first });
  const photoRoom = `photo:${photo}`;
  const userRoom = `user:${user}`;

  const tokens = gatedTokens(user);
  const storage = new MemoryStorage();
  const clientId = uid('c');
  const client = new SocketBridgeClient(hub.url, {
    getToken: () => tokens.getToken(),
    clientId,
    storage,
    backoff: { initialMs: 50, maxMs: 250 },
  });
  cleanup.push(() => client.disconnect());
  const before = new Recorder(client);
  const { epoch: oldEpoch } = await client.connect();
  await client.subscribeToPhoto(photo);
  await old.publish(hub, [ev.progress(photo, 30), ev.completed(photo), ev.maintenance(), ev.maintenance()]);
  await old.assertDelivered(before, photoRoom);
  await old.assertDelivered(before, 'global');

  // The store is wiped and the hub starts afresh on the same port; it gets a longer history of the
  // same photo (8 events) and of global (3) before the client is let back in.
  tokens.hold();
  await hub.kill();
  await dataDir.remove();
  hub = await startClosedHub({ port: hub.port, dataDir: dataDir.path });
  assert.notEqual(hub.epoch, oldEpoch, 'a new store, a new epoch');
  const fresh = new Ledger();
  await fresh.publish(hub, [
    ev.uploaded(photo, user),
    ...[10, 20, 30, 40, 50, 60].map((p) => ev.progress(photo, p)),
    ev.completed(photo),
    ev.maintenance(),
    ev.maintenance(),
    ev.maintenance(),
  ]);
  const after = new Recorder(client);
  const eventsBeforeTruncation = {};
  client.on('replay:truncated', ({ room }) => (eventsBeforeTruncation[room] = after.delivered(room).length));
  await until(() => client.state === 'connecting' && tokens.calls.length >= 2, 'a reconnect attempt');
  tokens.release();
  await after.waitForState('live');

  const truncated = Object.fromEntries(after.truncations.map((t) => [t.room, t]));
  assert.deepEqual(Object.keys(truncated).sort(), [`client:${clientId}`, 'global', photoRoom, userRoom].sort());
  assert.deepEqual(eventsBeforeTruncation, { [photoRoom]: 0, [userRoom]: 0, global: 0, [`client:${clientId}`]: 0 });
  const { status, ...rest } = truncated[photoRoom];
  assert.deepEqual(rest, { room: photoRoom, requestedSeq: 6, oldestSeq: 1 });
  assert.equal(status.status, 'completed');
  assert.equal(status.lastSeq, 8);
  assert.equal(truncated[userRoom].status, null);

  await fresh.assertDelivered(after, photoRoom);
  await fresh.assertDelivered(after, userRoom);
  await fresh.assertDelivered(after, 'global');
  const saved = JSON.parse(storage.getItem(`socket-bridge:${hub.url}`));
  assert.equal(saved.epoch, hub.epoch, 'the new epoch is saved');
  assert.equal(saved.seqs[photoRoom], 8);
});
