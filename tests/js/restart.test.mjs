// README ("Configuration") and docs/protocol.md ("Replay and resume"): graceful shutdown (system.shutdown, exit 0) and durability across a
// restart on the same data dir (status, epoch, seqs, idempotency, resume).

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { RFC3339_MS, closeAll, ev, startHub, token, uid } from './hub.mjs';

// Each test starts its own hubs; they are all closed after the file.
after(closeAll);

// Shows that SIGTERM tells connected clients system.shutdown before they are disconnected, and the process exits 0.
test('SIGTERM: system.shutdown reaches clients before the disconnect, exit code 0', async () => {
  const hub = await startHub();
  const a = await hub.connect(uid('u'));
  const b = await hub.connect(uid('u'));
  const status = await hub.terminate();
  assert.deepEqual(status, { code: 0, signal: null });
  for (const client of [a, b]) {
    await client.until(() => client.find('disconnect'), 'disconnect after shutdown');
    const shutdown = client.received.findIndex((r) => r.event === 'system.shutdown');
    const disconnect = client.received.findIndex((r) => r.event === 'disconnect');
    assert.ok(shutdown !== -1, `system.shutdown received (got: ${client.describe()})`);
    assert.ok(shutdown < disconnect, 'system.shutdown came before the disconnect');
    const notice = client.received[shutdown].data;
    assert.equal(typeof notice, 'object');
    assert.match(notice.timestamp, RFC3339_MS);
    assert.equal(client.connected, false);
    // A server-initiated Socket.IO disconnect ("io server disconnect") would stop socket.io-client
    // from reconnecting to the restarted hub; a shutdown must leave clients free to reconnect.
    assert.notEqual(client.received[disconnect].data, 'io server disconnect');
  }
});

// Shows that status, epoch, seqs and idempotency survive a restart, and a resuming client gets only the newer events.
test('a restart on the same data dir keeps status, epoch and seqs; resume after it gets only newer events', async () => {
  const first = await startHub();
  const user = uid('u');
  const photo = uid('p');
  const photoRoom = `photo:${photo}`;
  const userRoom = `user:${user}`;
  const uploadId = uid('upload');
  const [upload] = await first.publish([
    ev.uploaded(photo, user, { filename: 'a.png' }, { id: uploadId }),
    ev.progress(photo, 40),
    ev.progress(photo, 70),
  ]);
  const client = await first.connect(user);
  const ack = await client.ack('subscribe:photo', { photoId: photo, since: 0 });
  assert.equal(ack.headSeq, 3);
  await client.waitForSeqs(photoRoom, 3);
  const lastPhotoSeq = client.seqs(photoRoom).at(-1);
  const lastUserSeq = 1; // the upload, stored in user:<sub> before this client connected
  const statusBefore = await client.ack('photo:status:request', { photoId: photo });
  assert.equal(statusBefore.status, 'processing');
  assert.equal(statusBefore.progress, 70);
  const epoch = first.epoch;

  await first.stop();
  await client.until(() => client.find('disconnect'), 'disconnect on shutdown');
  assert.ok(client.find('system.shutdown'), 'system.shutdown before the disconnect');
  client.close();

  const second = await first.restart();
  assert.equal(second.epoch, epoch, 'the epoch is the store identity and survives restarts');

  const reader = await second.connect(user);
  assert.equal(reader.find('connection:established').data.epoch, epoch);
  assert.deepEqual(await reader.ack('photo:status:request', { photoId: photo }), statusBefore);
  const http = await second.get(`/api/photos/${photo}/status`, token(user));
  assert.deepEqual(http.body, statusBefore);
  reader.close();

  // The same producer id after the restart is recognized: same rooms and seqs, not stored again.
  const again = await second.publishOne(ev.uploaded(photo, user, { filename: 'a.png' }, { id: uploadId }));
  assert.deepEqual(again, upload);

  const newer = await second.publish([ev.progress(photo, 90), ev.completed(photo)]);
  assert.deepEqual(newer.map((r) => r.rooms[photoRoom]), [4, 5], 'seqs continue after the restart');
  assert.deepEqual(newer[1].rooms[userRoom], 2);

  const resumed = second.client({
    token: token(user),
    clientId: uid('c'),
    resume: { [photoRoom]: lastPhotoSeq, [userRoom]: lastUserSeq },
    epoch,
  });
  await resumed.open();
  const complete = await resumed.waitFor('resume:complete');
  assert.deepEqual(complete, { rooms: { [photoRoom]: 5, [userRoom]: 2 }, refused: {} });
  assert.equal(resumed.find('replay:truncated'), undefined);
  assert.deepEqual(
    resumed.inRoom(photoRoom).map((r) => [r.event, r.data.seq, r.data.eventId]),
    [
      ['photo.processing.progress', 4, newer[0].eventId],
      ['photo.processing.completed', 5, newer[1].eventId],
    ],
  );
  assert.deepEqual(resumed.inRoom(userRoom).map((r) => [r.event, r.data.seq]), [['photo.processing.completed', 2]]);
  const history = await second.get(`/api/photos/${photo}/events?limit=100`, token(user));
  assert.deepEqual(history.body.events.map((e) => e.seq), [1, 2, 3, 4, 5]);
  assert.equal(history.body.events.filter((e) => e.eventId === uploadId).length, 1);
  resumed.close();

  await second.stop();
});
