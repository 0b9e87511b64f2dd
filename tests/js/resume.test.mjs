// docs/protocol.md, "Resume at connect": resuming rooms at handshake (`auth.resume` + `epoch`), resume:complete,
// refused rooms, and replay:truncated for a wrong epoch or a seq beyond the head.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ev, range, token, uid, useHub } from './hub.mjs';

const hub = await useHub();

/**
 * A user with a photo: uploaded (photo 1, user 1), 4 progress (photo 2..5), completed (photo 6,
 * user 2), a second photo uploaded (user 3). Returns ids and heads.
 */
async function history() {
  const user = uid('u');
  const photo = uid('p');
  await hub.publish([
    ev.uploaded(photo, user),
    ev.progress(photo, 20),
    ev.progress(photo, 40),
    ev.progress(photo, 60),
    ev.progress(photo, 80),
    ev.completed(photo),
    ev.uploaded(uid('p'), user),
  ]);
  return { user, photo, photoRoom: `photo:${photo}`, userRoom: `user:${user}`, photoHead: 6, userHead: 3 };
}

/** A client connecting with a resume; resolves once connected (not yet resumed). */
async function resumeClient(user, resume, extra = {}) {
  const client = hub.client({ token: token(user), clientId: uid('c'), resume, ...extra });
  await client.open();
  return client;
}

/** Received stored events per room, up to (not including) resume:complete. */
function beforeComplete(client, room) {
  const end = client.received.findIndex((r) => r.event === 'resume:complete');
  return client.received
    .slice(0, end === -1 ? undefined : end)
    .filter((r) => r.data && typeof r.data === 'object' && r.data.room === room && 'seq' in r.data);
}

// Shows that a resume delivers exactly the missed seqs of each room, in order, then resume:complete with the heads, then live.
test('resume replays exactly k+1..head per room, then resume:complete, then live with no duplicate', async () => {
  const h = await history();
  const client = await resumeClient(h.user, { [h.photoRoom]: 2, [h.userRoom]: 1 }, { epoch: hub.epoch });
  const complete = await client.waitFor('resume:complete');
  assert.deepEqual(complete, { rooms: { [h.photoRoom]: 6, [h.userRoom]: 3 }, refused: {} });
  assert.deepEqual(beforeComplete(client, h.photoRoom).map((r) => r.data.seq), [3, 4, 5, 6]);
  assert.deepEqual(beforeComplete(client, h.userRoom).map((r) => r.data.seq), [2, 3]);
  assert.deepEqual(
    beforeComplete(client, h.photoRoom).map((r) => r.event),
    ['photo.processing.progress', 'photo.processing.progress', 'photo.processing.progress', 'photo.processing.completed'],
  );
  const replayed = beforeComplete(client, h.userRoom)[0].data;
  assert.equal(replayed.photoId, h.photo);
  assert.equal(replayed.room, h.userRoom);
  assert.equal(typeof replayed.eventId, 'string');
  assert.equal(client.find('replay:truncated'), undefined);
  // connection:established came first, with the epoch.
  assert.equal(client.received.findIndex((r) => r.event === 'connection:established') < client.received.findIndex((r) => r.event === 'resume:complete'), true);
  // The photo room was re-joined: live events follow with the next seq, once.
  await hub.publishOne(ev.deleted(h.photo));
  await client.waitForSeqs(h.photoRoom, 5);
  await hub.drain(client);
  assert.deepEqual(client.seqs(h.photoRoom), [3, 4, 5, 6, 7]);
  assert.deepEqual(client.seqs(h.userRoom), [2, 3, 4]);
  client.close();
});

// Shows that a resume with up-to-date seqs (and without an epoch) replays nothing and completes with the heads.
test('resume at the head replays nothing; a resume without epoch is not epoch-checked', async () => {
  const h = await history();
  const clientId = uid('c');
  const sessionId = uid('s');
  const client = hub.client({
    token: token(h.user),
    clientId,
    sessionId,
    resume: { [h.photoRoom]: 6, [h.userRoom]: 3, [`client:${clientId}`]: 0, [`session:${sessionId}`]: 0 },
  });
  await client.open();
  const complete = await client.waitFor('resume:complete');
  assert.deepEqual(complete, {
    rooms: { [h.photoRoom]: 6, [h.userRoom]: 3, [`client:${clientId}`]: 0, [`session:${sessionId}`]: 0 },
    refused: {},
  });
  await hub.drain(client);
  assert.deepEqual(client.seqs(h.photoRoom), []);
  assert.deepEqual(client.seqs(h.userRoom), []);
  assert.equal(client.find('replay:truncated'), undefined);
  await hub.publishOne(ev.progress(h.photo, 99));
  await client.waitForSeqs(h.photoRoom, 1);
  assert.deepEqual(client.seqs(h.photoRoom), [7]);
  client.close();
});

// Shows that the global room can be resumed too: the missed system.maintenance events are replayed.
test('resume of global replays missed system.maintenance events', async () => {
  const user = uid('u');
  const [first] = await hub.publish([ev.maintenance({ n: 1 })]);
  const seen = first.rooms.global;
  const missed = await hub.publish([ev.maintenance({ n: 2 }), ev.maintenance({ n: 3 })]);
  const client = await resumeClient(user, { global: seen }, { epoch: hub.epoch });
  const complete = await client.waitFor('resume:complete');
  const head = complete.rooms.global;
  assert.ok(head >= seen + 2);
  const seqs = beforeComplete(client, 'global').map((r) => r.data.seq);
  assert.deepEqual(seqs, range(seen + 1, head));
  assert.deepEqual(
    beforeComplete(client, 'global').slice(0, 2).map((r) => [r.event, r.data.eventId, r.data.n]),
    missed.map((m, i) => ['system.maintenance', m.eventId, i + 2]),
  );
  client.close();
});

// Shows that rooms the user may not read are refused (not joined, not replayed) and the connection stands.
test('resume refuses other users\' rooms and unknown photos; the connection stands', async () => {
  const h = await history();
  const other = await history();
  const unknown = `photo:${uid('nope')}`;
  const otherClient = `client:${uid('c')}`;
  const otherSession = `session:${uid('s')}`;
  const client = await resumeClient(
    h.user,
    { [h.photoRoom]: 5, [other.photoRoom]: 0, [other.userRoom]: 0, [unknown]: 0, [otherClient]: 0, [otherSession]: 0 },
    { epoch: hub.epoch },
  );
  const complete = await client.waitFor('resume:complete');
  assert.deepEqual(complete, {
    rooms: { [h.photoRoom]: 6 },
    refused: {
      [other.photoRoom]: 'forbidden',
      [other.userRoom]: 'forbidden',
      [unknown]: 'not_found',
      [otherClient]: 'forbidden',
      [otherSession]: 'forbidden',
    },
  });
  assert.deepEqual(client.seqs(h.photoRoom), [6]);
  assert.equal(client.connected, true);
  await client.ping();
  // The refused rooms were not joined.
  await hub.publishOne(ev.progress(other.photo, 50));
  await hub.publishOne(ev.uploaded(uid('p'), other.user));
  await hub.drain(client);
  assert.deepEqual(client.inRoom(other.photoRoom), []);
  assert.deepEqual(client.inRoom(other.userRoom), []);
  // The user's own default rooms still work.
  await hub.publishOne(ev.uploaded(uid('p'), h.user));
  await client.waitForSeqs(h.userRoom, 1);
  assert.deepEqual(client.seqs(h.userRoom), [4]);
  client.close();
});

// Shows that a resume naming only rooms the user may not read still completes, listing them all as refused.
test('a resume where every room is refused still sends resume:complete', async () => {
  const other = await history();
  const client = await resumeClient(uid('u'), { [other.photoRoom]: 1 }, { epoch: hub.epoch });
  assert.deepEqual(await client.waitFor('resume:complete'), { rooms: {}, refused: { [other.photoRoom]: 'forbidden' } });
  await client.ping();
  client.close();
});

// Shows that an empty resume map is still a resume: the client gets resume:complete with no rooms.
test(
  'resume: {} is answered with an empty resume:complete',
  async () => {
    const client = await resumeClient(uid('u'), {}, { epoch: hub.epoch });
    try {
      assert.deepEqual(await client.waitFor('resume:complete', () => true, 2000), { rooms: {}, refused: {} });
    } finally {
      client.close();
    }
  },
);

// Shows that support:read may resume another user's photo room.
test('support:read may resume any photo room', async () => {
  const h = await history();
  const client = hub.client({
    token: token(uid('staff'), ['support:read']),
    clientId: uid('c'),
    resume: { [h.photoRoom]: 4 },
  });
  await client.open();
  const complete = await client.waitFor('resume:complete');
  assert.deepEqual(complete, { rooms: { [h.photoRoom]: 6 }, refused: {} });
  assert.deepEqual(beforeComplete(client, h.photoRoom).map((r) => r.data.seq), [5, 6]);
  client.close();
});

// Shows that a resume with another epoch gets replay:truncated per room (with the photo's status) and then everything from the oldest kept seq.
test('resume with a wrong epoch: replay:truncated, then the events from the oldest', async () => {
  const h = await history();
  const owner = await hub.connect(h.user);
  const status = await owner.ack('photo:status:request', { photoId: h.photo });
  owner.close();
  const client = await resumeClient(h.user, { [h.photoRoom]: 2, [h.userRoom]: 1 }, { epoch: 'an-epoch-from-a-wiped-volume' });
  const complete = await client.waitFor('resume:complete');
  assert.deepEqual(complete, { rooms: { [h.photoRoom]: 6, [h.userRoom]: 3 }, refused: {} });

  const truncatedPhoto = client.find('replay:truncated', (d) => d.room === h.photoRoom);
  const truncatedUser = client.find('replay:truncated', (d) => d.room === h.userRoom);
  assert.ok(truncatedPhoto, 'replay:truncated for the photo room');
  assert.ok(truncatedUser, 'replay:truncated for the user room');
  assert.deepEqual(truncatedPhoto.data, { room: h.photoRoom, requestedSeq: 3, oldestSeq: 1, status });
  assert.deepEqual(truncatedUser.data, { room: h.userRoom, requestedSeq: 2, oldestSeq: 1, status: null });
  // Each truncation notice comes before that room's replayed events.
  const firstOf = (room) => client.received.findIndex((r) => r.data?.room === room && 'seq' in r.data);
  assert.ok(client.received.indexOf(truncatedPhoto) < firstOf(h.photoRoom));
  assert.ok(client.received.indexOf(truncatedUser) < firstOf(h.userRoom));
  assert.deepEqual(beforeComplete(client, h.photoRoom).map((r) => r.data.seq), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(beforeComplete(client, h.userRoom).map((r) => r.data.seq), [1, 2, 3]);
  client.close();
});

// Shows that a resume seq beyond the room's head (a store restored from an older backup) is treated as truncated.
test('resume with a seq beyond the head: replay:truncated, then the events from the oldest', async () => {
  const h = await history();
  const client = await resumeClient(h.user, { [h.photoRoom]: 99, [h.userRoom]: 3 }, { epoch: hub.epoch });
  const complete = await client.waitFor('resume:complete');
  assert.deepEqual(complete, { rooms: { [h.photoRoom]: 6, [h.userRoom]: 3 }, refused: {} });
  const truncated = client.received.filter((r) => r.event === 'replay:truncated');
  assert.equal(truncated.length, 1, 'only the room resumed beyond its head is truncated');
  assert.equal(truncated[0].data.room, h.photoRoom);
  assert.equal(truncated[0].data.requestedSeq, 100);
  assert.equal(truncated[0].data.oldestSeq, 1);
  assert.equal(truncated[0].data.status.photoId, h.photo);
  assert.equal(truncated[0].data.status.status, 'completed');
  assert.equal(truncated[0].data.status.lastSeq, 6);
  assert.deepEqual(beforeComplete(client, h.photoRoom).map((r) => r.data.seq), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(beforeComplete(client, h.userRoom), []);
  client.close();
});

// Shows that a resume racing with new events still hands over to live delivery with no gap and no duplicate.
test('resume while events keep arriving: no gap, no duplicate', async () => {
  const h = await history();
  let stop = false;
  let published = 0;
  const producer = (async () => {
    while (!stop && published < 60) {
      await hub.publishOne(ev.progress(h.photo, published % 100));
      published += 1;
    }
  })();
  const client = await resumeClient(h.user, { [h.photoRoom]: 1 }, { epoch: hub.epoch });
  await client.waitFor('resume:complete');
  stop = true;
  await producer;
  const head = 6 + published;
  await client.waitForSeqs(h.photoRoom, head - 1, 8000);
  await hub.drain(client);
  assert.deepEqual(client.seqs(h.photoRoom), range(2, head));
  client.close();
});
