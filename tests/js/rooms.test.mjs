// docs/protocol.md, "After connecting" and "Stored events": the default rooms a socket joins, routing, and the delivered payload.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RFC3339_MS, ev, range, token, uid, useHub } from './hub.mjs';

const hub = await useHub();

// Shows that an uploaded photo of the socket's own user reaches it through user:<sub> with the exact payload shape.
test('photo.uploaded of the own user arrives in user:<sub> as { ...data, eventId, room, seq, timestamp }', async () => {
  const user = uid('u');
  const photo = uid('p');
  const client = await hub.connect(user);
  const id = uid('e');
  const timestamp = '2026-01-02T03:04:05.678Z';
  const receipt = await hub.publishOne(
    ev.uploaded(photo, user, { filename: 'cat.jpg', size: 1234, tags: ['a', 'b'] }, { id, timestamp }),
  );
  assert.deepEqual(receipt, { eventId: id, rooms: { [`photo:${photo}`]: 1, [`user:${user}`]: 1 } });
  const got = await client.waitFor('photo.uploaded', (d) => d.photoId === photo);
  assert.deepEqual(got, {
    photoId: photo,
    userId: user,
    filename: 'cat.jpg',
    size: 1234,
    tags: ['a', 'b'],
    eventId: id,
    room: `user:${user}`,
    seq: 1,
    timestamp,
  });
  // The user's next event gets the next seq of the user room, and a hub-made string eventId.
  const photo2 = uid('p');
  const receipt2 = await hub.publishOne(ev.uploaded(photo2, user));
  assert.equal(receipt2.rooms[`user:${user}`], 2);
  assert.equal(typeof receipt2.eventId, 'string');
  assert.ok(receipt2.eventId.length > 0);
  assert.notEqual(receipt2.eventId, id);
  const got2 = await client.waitFor('photo.uploaded', (d) => d.photoId === photo2);
  assert.equal(got2.seq, 2);
  assert.equal(got2.room, `user:${user}`);
  assert.equal(got2.eventId, receipt2.eventId);
  assert.match(got2.timestamp, RFC3339_MS, 'the hub stamps events without a timestamp');
  assert.ok(Math.abs(Date.parse(got2.timestamp) - Date.now()) < 60_000);
  client.close();
});

// Shows that a producer timestamp with an offset is delivered normalized to UTC with milliseconds.
test('a producer timestamp with an offset is delivered as RFC 3339 UTC with milliseconds', async () => {
  const user = uid('u');
  const client = await hub.connect(user);
  const photo = uid('p');
  await hub.publishOne(ev.uploaded(photo, user, {}, { timestamp: '2026-03-04T10:20:30+02:00' }));
  const got = await client.waitFor('photo.uploaded', (d) => d.photoId === photo);
  assert.equal(got.timestamp, '2026-03-04T08:20:30.000Z');
  client.close();
});

// Shows that events only routed to a photo room, and other users' events, do not reach a socket that did not subscribe.
test('a socket gets neither photo-room-only events nor other users\' events', async () => {
  const user = uid('u');
  const other = uid('u');
  const client = await hub.connect(user);
  const photo = uid('p');
  await hub.publishOne(ev.uploaded(photo, user));
  await client.waitFor('photo.uploaded', (d) => d.photoId === photo);
  await hub.publish([ev.started(photo), ev.progress(photo, 10)]);
  await hub.publishOne(ev.uploaded(uid('p'), other));
  await hub.drain(client);
  assert.equal(client.find('photo.processing.started'), undefined);
  assert.equal(client.find('photo.processing.progress'), undefined);
  assert.deepEqual(
    client.received.filter((r) => r.event === 'photo.uploaded').map((r) => r.data.photoId),
    [photo],
  );
  // completed goes to the user room as well, with the user room's next seq.
  await hub.publishOne(ev.completed(photo));
  const done = await client.waitFor('photo.processing.completed', (d) => d.photoId === photo);
  assert.equal(done.room, `user:${user}`);
  assert.equal(done.seq, 2);
  client.close();
});

// Shows that system.maintenance is stored in global and reaches every socket with global's seq.
test('system.maintenance arrives via global with a seq', async () => {
  const a = await hub.connect(uid('u'));
  const b = await hub.connect(uid('u'));
  const id = uid('e');
  const receipt = await hub.publishOne(ev.maintenance({ message: 'db upgrade', window: '5m' }, { id }));
  assert.deepEqual(Object.keys(receipt.rooms), ['global']);
  const seq = receipt.rooms.global;
  assert.ok(Number.isInteger(seq) && seq >= 1);
  for (const client of [a, b]) {
    const got = await client.waitFor('system.maintenance', (d) => d.eventId === id);
    assert.deepEqual(Object.keys(got).sort(), ['eventId', 'message', 'room', 'seq', 'timestamp', 'window']);
    assert.equal(got.message, 'db upgrade');
    assert.equal(got.window, '5m');
    assert.equal(got.room, 'global');
    assert.equal(got.seq, seq);
    assert.match(got.timestamp, RFC3339_MS);
  }
  const next = await hub.publishOne(ev.maintenance({ message: 'again' }));
  assert.equal(next.rooms.global, seq + 1, 'global seqs have no gaps');
  a.close();
  b.close();
});

// Shows that system.health is live only: no rooms in the receipt, delivered in "global" without a seq, and not in history.
test('system.health arrives with room "global" and no seq, and is not stored', async () => {
  const client = await hub.connect(uid('u'));
  const id = uid('e');
  const receipt = await hub.publishOne(ev.health({ status: 'ok', load: 0.5 }, { id }));
  assert.deepEqual(receipt, { eventId: id, rooms: {} });
  const got = await client.waitFor('system.health', (d) => d.eventId === id);
  assert.deepEqual(Object.keys(got).sort(), ['eventId', 'load', 'room', 'status', 'timestamp']);
  assert.equal(got.room, 'global');
  assert.equal(got.status, 'ok');
  assert.equal(got.load, 0.5);
  assert.equal('seq' in got, false);
  assert.match(got.timestamp, RFC3339_MS);
  const history = await hub.get('/api/rooms/global/events?limit=1000', token('ops', ['support:read']));
  assert.equal(history.status, 200);
  assert.equal(history.body.events.some((e) => e.eventId === id), false, 'system.health is never stored');
  client.close();
});

// Shows that one event delivered to two rooms of one socket carries each room's own seq and the same eventId.
test('an event in two rooms arrives once per room with that room\'s seq', async () => {
  const user = uid('u');
  const client = await hub.connect(user);
  const first = uid('p');
  const photo = uid('p');
  await hub.publish([ev.uploaded(first, user), ev.uploaded(photo, user)]);
  const ack = await client.ack('subscribe:photo', { photoId: photo });
  assert.equal(ack.ok, true);
  const receipt = await hub.publishOne(ev.completed(photo));
  assert.deepEqual(receipt.rooms, { [`photo:${photo}`]: 2, [`user:${user}`]: 3 });
  await client.until(
    () => client.received.filter((r) => r.event === 'photo.processing.completed').length >= 2,
    'completed in both rooms',
  );
  await hub.drain(client);
  const got = client.received
    .filter((r) => r.event === 'photo.processing.completed')
    .map((r) => r.data)
    .sort((x, y) => x.room.localeCompare(y.room));
  assert.equal(got.length, 2);
  assert.deepEqual(
    got.map((d) => [d.room, d.seq, d.eventId]),
    [
      [`photo:${photo}`, 2, receipt.eventId],
      [`user:${user}`, 3, receipt.eventId],
    ],
  );
  client.close();
});

// Shows that a client with socket.io-client's default transports (polling, then the websocket upgrade) is served the same way.
test('a default client (polling upgraded to websocket) receives its events', async () => {
  const user = uid('u');
  const client = hub.client({ token: token(user), clientId: uid('c') }, { transports: ['polling', 'websocket'] });
  await client.open();
  await client.waitFor('connection:established');
  await client.until(() => client.socket.io.engine?.transport?.name === 'websocket', 'the websocket upgrade');
  const photo = uid('p');
  const receipt = await hub.publishOne(ev.uploaded(photo, user));
  const got = await client.waitFor('photo.uploaded', (d) => d.photoId === photo);
  assert.equal(got.eventId, receipt.eventId);
  assert.equal((await client.ack('subscribe:photo', { photoId: photo })).ok, true);
  client.close();
});

// Shows that a room's live event, encoded once for all its sockets, reaches websocket-only and
// polling-only sockets of the room alike: every seq once, in order, with the same payload.
test('live events of a room reach websocket and polling sockets alike, each seq once in order', async () => {
  const user = uid('u');
  const photo = uid('p');
  const room = `photo:${photo}`;
  await hub.publishOne(ev.uploaded(photo, user));
  const clients = await Promise.all(
    [['websocket'], ['websocket'], ['websocket'], ['polling'], ['polling']].map((transports) =>
      hub.connect(user, {}, { transports, upgrade: false }),
    ),
  );
  for (const client of clients) {
    assert.equal((await client.ack('subscribe:photo', { photoId: photo })).ok, true);
  }
  assert.deepEqual(
    clients.map((c) => c.socket.io.engine.transport.name),
    ['websocket', 'websocket', 'websocket', 'polling', 'polling'],
  );
  const count = 40;
  const receipts = await hub.publish(range(1, count).map((i) => ev.progress(photo, i, { step: `s${i}` })));
  const seqs = receipts.map((r) => r.rooms[room]);
  for (const client of clients) {
    assert.deepEqual(await client.waitForSeqs(room, count), seqs, client.socket.io.engine.transport.name);
  }
  await Promise.all(clients.map((client) => hub.drain(client)));
  const payloads = clients.map((c) => c.inRoom(room).map((r) => [r.event, r.data]));
  for (const got of payloads) {
    assert.deepEqual(got, payloads[0], 'the same events and payloads on every socket');
  }
  assert.equal(payloads[0].length, count, 'nothing more after the drain');
  assert.deepEqual(payloads[0][count - 1][1], {
    photoId: photo,
    progress: count,
    step: `s${count}`,
    eventId: receipts[count - 1].eventId,
    room,
    seq: seqs[count - 1],
    timestamp: payloads[0][count - 1][1].timestamp,
  });
  for (const client of clients) client.close();
});
