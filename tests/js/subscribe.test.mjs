// docs/protocol.md, "Client to server events" and "Replay and resume": subscribe:photo / unsubscribe:photo, replay with `since`, authorization
// and refusals (acks and request:error), and ping.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RFC3339_MS, ev, range, sleep, uid, useHub } from './hub.mjs';

const hub = await useHub();

/** A photo of `user` with `uploaded` and `progressCount` progress events stored; returns its id. */
async function photoWith(user, progressCount = 0) {
  const photo = uid('p');
  await hub.publish([
    ev.uploaded(photo, user),
    ...range(1, progressCount).map((i) => ev.progress(photo, Math.min(99, i))),
  ]);
  return photo;
}

/** A fresh user with a photo (`photoWith`), the photo's room, and a connected socket of that user. */
async function ownerOfPhoto(progressCount = 0) {
  const user = uid('u');
  const photo = await photoWith(user, progressCount);
  return { user, photo, room: `photo:${photo}`, client: await hub.connect(user) };
}

// Shows the ack and subscription:confirmed of subscribe:photo, and that live events then arrive in seq order without a replay.
test('subscribe:photo acks { ok, room, headSeq, epoch }, confirms, then delivers live events in order', async () => {
  const { photo, room, client } = await ownerOfPhoto(2);
  const ack = await client.ack('subscribe:photo', { photoId: photo });
  assert.deepEqual(ack, { ok: true, room, headSeq: 3, epoch: hub.epoch });
  const confirmed = await client.waitFor('subscription:confirmed');
  assert.deepEqual(Object.keys(confirmed).sort(), ['message', 'photoId']);
  assert.equal(confirmed.photoId, photo);
  assert.equal(typeof confirmed.message, 'string');
  assert.ok(confirmed.message.length > 0);

  const r1 = await hub.publishOne(ev.progress(photo, 60, { stage: 'resize' }));
  const r2 = await hub.publishOne(ev.progress(photo, 80));
  const r3 = await hub.publishOne(ev.completed(photo, { url: 'https://cdn.example/x.jpg' }));
  assert.deepEqual([r1, r2, r3].map((r) => r.rooms[room]), [4, 5, 6]);
  await client.waitForSeqs(room, 3);
  await hub.drain(client);
  const got = client.inRoom(room);
  assert.deepEqual(
    got.map((r) => [r.event, r.data.seq]),
    [
      ['photo.processing.progress', 4],
      ['photo.processing.progress', 5],
      ['photo.processing.completed', 6],
    ],
    'no replay without `since`, then every live event once, in order',
  );
  assert.deepEqual(got[0].data, {
    photoId: photo,
    progress: 60,
    stage: 'resize',
    eventId: r1.eventId,
    room,
    seq: 4,
    timestamp: got[0].data.timestamp,
  });
  assert.match(got[0].data.timestamp, RFC3339_MS);
  assert.equal(got[2].data.url, 'https://cdn.example/x.jpg');
  client.close();
});

// Shows that `since: 0` replays seq 1..n and hands over to live delivery with no gap and no duplicate while events keep coming.
test('subscribe with since: 0 replays everything, then live continues with no gap or duplicate', async () => {
  const user = uid('u');
  const stored = 30;
  const photo = await photoWith(user, stored - 1);
  const room = `photo:${photo}`;
  const client = await hub.connect(user);

  const more = 40;
  let published = 0;
  const producer = (async () => {
    for (let i = 0; i < more; i += 1) {
      await hub.publishOne(ev.progress(photo, i % 100));
      published += 1;
    }
  })();
  while (published < 5) await sleep(2);
  const ack = await client.ack('subscribe:photo', { photoId: photo, since: 0 });
  assert.equal(ack.ok, true);
  assert.equal(ack.room, room);
  assert.ok(ack.headSeq >= stored + 5 && ack.headSeq <= stored + more, `headSeq ${ack.headSeq}`);
  await producer;
  await client.waitForSeqs(room, stored + more, 8000);
  await hub.drain(client);
  assert.deepEqual(client.seqs(room), range(1, stored + more));
  const first = client.inRoom(room)[0];
  assert.equal(first.event, 'photo.uploaded');
  assert.equal(first.data.userId, user);
  assert.equal(first.data.photoId, photo);
  client.close();
});

// Shows that `since: k` replays only k+1..head, and subscribing again with `since` replays again from since+1.
test('subscribe with since: k replays from k+1, and again on a second subscribe', async () => {
  const { photo, room, client } = await ownerOfPhoto(5); // seqs 1..6
  const ack = await client.ack('subscribe:photo', { photoId: photo, since: 4 });
  assert.equal(ack.headSeq, 6);
  await client.waitForSeqs(room, 2);
  await hub.drain(client);
  assert.deepEqual(client.seqs(room), [5, 6]);

  const again = await client.ack('subscribe:photo', { photoId: photo, since: 2 });
  assert.equal(again.ok, true);
  await client.waitForSeqs(room, 6);
  await hub.publishOne(ev.progress(photo, 99));
  await client.waitForSeqs(room, 7);
  await hub.drain(client);
  assert.deepEqual(client.seqs(room), [5, 6, 3, 4, 5, 6, 7]);

  // Subscribing again without `since` changes nothing: no replay, no duplicate live delivery.
  const plain = await client.ack('subscribe:photo', { photoId: photo });
  assert.equal(plain.ok, true);
  assert.equal(plain.headSeq, 7);
  await hub.publishOne(ev.completed(photo));
  await client.waitForSeqs(room, 8);
  await hub.drain(client);
  assert.deepEqual(client.seqs(room), [5, 6, 3, 4, 5, 6, 7, 8]);
  client.close();
});

// Shows that `since` beyond the room's head is treated as truncated: replay:truncated with the status, then everything from the oldest.
test('subscribe with since beyond the head: replay:truncated, then the events from the oldest', async () => {
  const { user, photo, room, client } = await ownerOfPhoto(2); // seqs 1..3
  const status = await client.ack('photo:status:request', { photoId: photo });
  const ack = await client.ack('subscribe:photo', { photoId: photo, since: 50 });
  assert.equal(ack.ok, true);
  assert.equal(ack.headSeq, 3);
  // since == head: nothing to replay and nothing truncated (checked on another socket).
  const upToDate = await hub.connect(user);
  assert.equal((await upToDate.ack('subscribe:photo', { photoId: photo, since: 3 })).ok, true);
  const truncated = await client.waitFor('replay:truncated');
  assert.deepEqual(truncated, { room, requestedSeq: 51, oldestSeq: 1, status });
  await client.waitForSeqs(room, 3);
  await hub.publishOne(ev.progress(photo, 90));
  await client.waitForSeqs(room, 4);
  await hub.drain(client);
  assert.deepEqual(client.seqs(room), [1, 2, 3, 4]);
  const at = client.received.findIndex((r) => r.event === 'replay:truncated');
  const first = client.received.indexOf(client.inRoom(room)[0]);
  assert.ok(at < first, 'replay:truncated comes before the replayed events');
  await hub.drain(upToDate);
  assert.deepEqual(upToDate.seqs(room), [4]);
  assert.equal(upToDate.find('replay:truncated'), undefined);
  upToDate.close();
  client.close();
});

// Shows that a long replay (several store pages) is complete and in order while live events keep arriving.
test('a replay of 700 stored events is complete and hands over to live', async () => {
  const user = uid('u');
  const photo = uid('p');
  const room = `photo:${photo}`;
  await hub.publish([ev.uploaded(photo, user), ...range(2, 700).map((i) => ev.progress(photo, i % 100))]);
  const client = await hub.connect(user);
  const subscribed = client.ack('subscribe:photo', { photoId: photo, since: 0 });
  for (let i = 0; i < 10; i += 1) await hub.publishOne(ev.progress(photo, i));
  assert.equal((await subscribed).ok, true);
  await client.waitForSeqs(room, 710, 10000);
  await hub.drain(client);
  assert.deepEqual(client.seqs(room), range(1, 710));
  client.close();
});

// Shows that unsubscribe:photo acks { ok: true } and stops delivery of the photo room.
test('unsubscribe:photo stops delivery', async () => {
  const { photo, room, client } = await ownerOfPhoto();
  assert.equal((await client.ack('subscribe:photo', { photoId: photo })).ok, true);
  await hub.publishOne(ev.progress(photo, 10));
  await client.waitForSeqs(room, 1);
  assert.deepEqual(await client.ack('unsubscribe:photo', { photoId: photo }), { ok: true });
  await hub.publishOne(ev.progress(photo, 20));
  await hub.drain(client);
  assert.deepEqual(client.seqs(room), [2]);
  client.close();
});

// Shows that another user's photo is refused as forbidden and an unknown photo as not_found, and nothing is delivered from them.
test('subscribe:photo refuses another user\'s photo (forbidden) and an unknown photo (not_found)', async () => {
  const owner = uid('u');
  const photo = await photoWith(owner);
  const client = await hub.connect(uid('u'));
  assert.deepEqual(await client.ack('subscribe:photo', { photoId: photo }), { ok: false, error: 'forbidden' });
  assert.deepEqual(await client.ack('subscribe:photo', { photoId: photo, since: 0 }), { ok: false, error: 'forbidden' });
  assert.deepEqual(await client.ack('subscribe:photo', { photoId: uid('nope') }), { ok: false, error: 'not_found' });
  assert.deepEqual(
    await client.ack('subscribe:photo', { photoId: 'x'.repeat(128) }),
    { ok: false, error: 'not_found' },
    'a 128-character id is well-formed',
  );
  await hub.publishOne(ev.progress(photo, 50));
  await hub.drain(client);
  assert.deepEqual(client.inRoom(`photo:${photo}`), []);
  assert.equal(client.find('subscription:confirmed'), undefined);
  assert.equal(client.connected, true);
  client.close();
});

// Shows that the owner needs read:photos: a token without it may not read its own photo.
test('the owner without read:photos is refused as forbidden', async () => {
  const user = uid('u');
  const photo = await photoWith(user);
  const client = await hub.connect(user, { permissions: ['write:photos'] });
  assert.deepEqual(await client.ack('subscribe:photo', { photoId: photo }), { ok: false, error: 'forbidden' });
  client.close();
});

const malformed = [
  ['missing photoId', [{}]],
  ['photoId null', [{ photoId: null }]],
  ['photoId a number', [{ photoId: 12 }]],
  ['empty photoId', [{ photoId: '' }]],
  ['photoId with spaces', [{ photoId: 'my photo' }]],
  ['photoId with a slash', [{ photoId: 'a/b' }]],
  ['photoId of 200 characters', [{ photoId: 'p'.repeat(200) }]],
  ['photoId of 129 characters', [{ photoId: 'p'.repeat(129) }]],
  ['since: -1', [{ photoId: 'p1', since: -1 }]],
  ['since: "x"', [{ photoId: 'p1', since: 'x' }]],
  ['since: 1.5', [{ photoId: 'p1', since: 1.5 }]],
  ['a string payload', ['p1']],
  ['no payload at all', []],
];

// Shows that every malformed subscribe:photo is answered invalid_payload and the socket stays connected and served.
test('malformed subscribe:photo payloads are refused as invalid_payload; the socket stays connected', async () => {
  const client = await hub.connect(uid('u'));
  for (const [name, args] of malformed) {
    assert.deepEqual(await client.ack('subscribe:photo', ...args), { ok: false, error: 'invalid_payload' }, name);
  }
  for (const [name, args] of malformed.filter(([n]) => !n.startsWith('since'))) {
    assert.deepEqual(
      await client.ack('photo:status:request', ...args),
      { ok: false, error: 'invalid_payload' },
      `photo:status:request with ${name}`,
    );
    assert.deepEqual(
      await client.ack('unsubscribe:photo', ...args),
      { ok: false, error: 'invalid_payload' },
      `unsubscribe:photo with ${name}`,
    );
  }
  assert.equal(client.connected, true);
  const pong = await client.ping();
  assert.match(pong.timestamp, RFC3339_MS);
  assert.equal(client.find('disconnect'), undefined);
  client.close();
});

// Shows that a payload that is an array (not the `{ photoId, since? }` object) is malformed, not read positionally.
test(
  'an array payload is refused as invalid_payload',
  async () => {
    const user = uid('u');
    const photo = await photoWith(user);
    const client = await hub.connect(user);
    try {
      assert.deepEqual(await client.ack('subscribe:photo', [photo]), { ok: false, error: 'invalid_payload' });
      assert.deepEqual(await client.ack('subscribe:photo', [photo, 0]), { ok: false, error: 'invalid_payload' });
      assert.deepEqual(await client.ack('photo:status:request', [photo]), { ok: false, error: 'invalid_payload' });
      assert.deepEqual(await client.ack('subscribe:photo', ['p1']), { ok: false, error: 'invalid_payload' });
    } finally {
      client.close();
    }
  },
);

// Shows that without an ack callback the refusal arrives as request:error { event, error, photoId? }.
test('without an ack, refusals arrive as request:error', async () => {
  const owner = uid('u');
  const photo = await photoWith(owner);
  const client = await hub.connect(uid('u'));
  const unknown = uid('nope');

  client.emit('subscribe:photo', { photoId: photo });
  const forbidden = await client.waitFor('request:error', (d) => d.error === 'forbidden');
  assert.deepEqual(forbidden, { event: 'subscribe:photo', error: 'forbidden', photoId: photo });

  client.emit('subscribe:photo', { photoId: unknown });
  const notFound = await client.waitFor('request:error', (d) => d.error === 'not_found');
  assert.deepEqual(notFound, { event: 'subscribe:photo', error: 'not_found', photoId: unknown });

  client.emit('photo:status:request', { photoId: photo });
  const statusForbidden = await client.waitFor('request:error', (d) => d.event === 'photo:status:request');
  assert.deepEqual(statusForbidden, { event: 'photo:status:request', error: 'forbidden', photoId: photo });

  const before = client.index();
  client.emit('subscribe:photo', { photoId: 'bad id' });
  const invalid = await client.waitFor('request:error', (d) => d.error === 'invalid_payload');
  assert.equal(invalid.event, 'subscribe:photo');
  assert.ok(!('photoId' in invalid) || typeof invalid.photoId === 'string');
  client.emit('subscribe:photo', 'just a string');
  await client.until(
    () => client.received.slice(before).filter((r) => r.event === 'request:error').length >= 2,
    'second invalid_payload request:error',
  );
  assert.equal(client.find('subscription:confirmed'), undefined);
  await client.ping();
  assert.equal(client.connected, true);
  client.close();
});

// Shows that support:read and admin may subscribe to (and replay) any user's photo.
test('support:read and admin may subscribe to any user\'s photo', async () => {
  const owner = uid('u');
  const photo = await photoWith(owner, 1);
  const room = `photo:${photo}`;
  for (const permissions of [['support:read'], ['admin']]) {
    const staff = await hub.connect(uid('staff'), { permissions });
    const ack = await staff.ack('subscribe:photo', { photoId: photo, since: 0 });
    assert.equal(ack.ok, true, permissions[0]);
    assert.equal(ack.room, room);
    await staff.waitForSeqs(room, 2);
    const status = await staff.ack('photo:status:request', { photoId: photo });
    assert.equal(status.userId, owner);
    staff.close();
  }
  const staff = await hub.connect(uid('staff'), { permissions: ['support:read'] });
  assert.equal((await staff.ack('subscribe:photo', { photoId: photo })).ok, true);
  const receipt = await hub.publishOne(ev.progress(photo, 75));
  const got = await staff.waitFor('photo.processing.progress', (d) => d.eventId === receipt.eventId);
  assert.equal(got.room, room);
  assert.equal(got.seq, receipt.rooms[room]);
  staff.close();
});

// Shows that ping answers pong { timestamp } with and without a payload, and to an ack when given one.
test('ping emits pong { timestamp }', async () => {
  const client = await hub.connect(uid('u'));
  const pong = await client.ping();
  assert.deepEqual(Object.keys(pong), ['timestamp']);
  assert.match(pong.timestamp, RFC3339_MS);
  const from = client.index();
  client.emit('ping');
  await client.until(() => client.find('pong', () => true, from), 'pong after a bare ping');
  const acked = await client.ack('ping', {});
  assert.match(acked.timestamp, RFC3339_MS);
  client.close();
});
