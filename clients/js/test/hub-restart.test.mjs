// Issue scenario 2: the hub is SIGKILLed and started again on the same port and data dir. Events
// were published before the kill (some maybe still on their way to the client), and after the
// restart before the client was back (getToken holds its handshake until they are stored). The
// client reconnects by itself, resumes, and its handlers get each event exactly once, in order.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MemoryStorage, SocketBridgeClient } from '../dist/index.js';
import { ev, uid } from './support/hub.mjs';
import { Recorder, until } from './support/recorder.mjs';
import { cleanup, hubWithPhoto, startClosedHub } from './support/setup.mjs';
import { gatedTokens } from './support/tokens.mjs';

test('SIGKILL and restart of the hub on the same port and data dir: every event once, in order', async () => {
  const first = (photo, user) => [ev.uploaded(photo, user), ev.progress(photo, 5)];
  let { hub, dataDir, user, photo, ledger } = await hubWithPhoto({ ownDataDir: true, first });

  const tokens = gatedTokens(user);
  const storage = new MemoryStorage();
  const client = new SocketBridgeClient(hub.url, {
    getToken: () => tokens.getToken(),
    clientId: uid('c'),
    storage,
    backoff: { initialMs: 50, maxMs: 250 },
  });
  cleanup.push(() => client.disconnect());
  const recorder = new Recorder(client);
  const { rooms, epoch } = await client.connect();
  assert.equal((await client.subscribeToPhoto(photo)).ok, true);

  // Before: 30 events the client gets live, then 10 more and at once the kill.
  for (let i = 0; i < 10; i += 1) {
    await ledger.publish(hub, [ev.progress(photo, i), ev.maintenance({ i }), ev.progress(photo, i + 1)]);
  }
  await recorder.waitFor(`photo:${photo}`, 22);
  tokens.hold();
  await ledger.publish(hub, Array.from({ length: 10 }, (_, i) => (i % 2 ? ev.maintenance({ i }) : ev.progress(photo, i))));
  await hub.kill();

  // After: the same port and data dir; 30 events stored while the client waits for its token.
  hub = await startClosedHub({ port: hub.port, dataDir: dataDir.path });
  assert.equal(hub.epoch, epoch, 'same data dir, same epoch');
  await until(() => client.state === 'connecting' && tokens.calls.length >= 2, 'a reconnect attempt asking for a token');
  for (let i = 0; i < 10; i += 1) {
    await ledger.publish(hub, [ev.progress(photo, i), ev.completed(photo), ev.maintenance({ i })]);
  }
  tokens.release();
  await recorder.waitForState('live', 2);
  await ledger.publish(hub, [ev.progress(photo, 99), ev.maintenance({ last: true })]);

  await ledger.assertDelivered(recorder, `photo:${photo}`);
  for (const room of [`user:${user}`, 'global']) await ledger.assertDelivered(recorder, room, { after: rooms[room] });
  assert.ok(recorder.resumed(`photo:${photo}`).length >= 20, 'the events stored while the client was away came by the resume');
  assert.equal(recorder.truncations.length, 0);
  const saved = JSON.parse(storage.getItem(`socket-bridge:${hub.url}`));
  assert.equal(saved.epoch, epoch);
  assert.equal(saved.seqs[`photo:${photo}`], ledger.expected(`photo:${photo}`).at(-1)[0], 'the last seq is saved');
});
