// docs/protocol.md, "Producers" and "HTTP read API": the HTTP ingest and history endpoints, their errors, and CORS.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RFC3339_MS, badTokens, ev, publisherToken, range, token, uid, useHub } from './hub.mjs';

const hub = await useHub();

/** Asserts an error answer: `status` and a JSON `{ error, detail }` of two non-empty strings. */
function assertError(res, status, error) {
  assert.equal(res.status, status, `status of ${JSON.stringify(res.body)}`);
  assert.equal(typeof res.body, 'object', `a JSON body, got ${JSON.stringify(res.body)}`);
  assert.equal(typeof res.body.error, 'string');
  assert.ok(res.body.error.length > 0);
  assert.equal(typeof res.body.detail, 'string');
  if (error) assert.equal(res.body.error, error);
}

const post = (body, options = {}) =>
  hub.request('POST', '/api/events', { token: publisherToken(), body, ...options });

/** A photo of a fresh user with `count` events (uploaded + progress). */
async function photoWith(count) {
  const user = uid('u');
  const photo = uid('p');
  const events = [
    ev.uploaded(photo, user, { filename: 'x.jpg' }, { id: uid('e'), timestamp: '2026-02-03T04:05:06.789Z' }),
    ...range(2, count).map((i) => ev.progress(photo, i % 100)),
  ];
  const receipts = await hub.publish(events);
  return { user, photo, receipts };
}

// Shows the history page shape, ordering, paging with `after`/`limit`, and `nextAfter` (null at the end).
test('GET /api/photos/{id}/events pages { room, events: [{ seq, eventId, type, data, timestamp }], nextAfter }', async () => {
  const { user, photo, receipts } = await photoWith(5);
  const bearer = token(user);
  const all = await hub.get(`/api/photos/${photo}/events`, bearer);
  assert.equal(all.status, 200);
  assert.deepEqual(Object.keys(all.body).sort(), ['events', 'nextAfter', 'room']);
  assert.equal(all.body.room, `photo:${photo}`);
  assert.equal(all.body.nextAfter, null);
  assert.deepEqual(all.body.events.map((e) => e.seq), [1, 2, 3, 4, 5]);
  assert.deepEqual(all.body.events[0], {
    seq: 1,
    eventId: receipts[0].eventId,
    type: 'photo.uploaded',
    data: { photoId: photo, userId: user, filename: 'x.jpg' },
    timestamp: '2026-02-03T04:05:06.789Z',
  });
  assert.deepEqual(all.body.events[1].data, { photoId: photo, progress: 2 });
  assert.equal(all.body.events[1].type, 'photo.processing.progress');
  assert.equal(all.body.events[1].eventId, receipts[1].eventId);
  assert.match(all.body.events[1].timestamp, RFC3339_MS);

  const page1 = await hub.get(`/api/photos/${photo}/events?after=0&limit=2`, bearer);
  assert.deepEqual(page1.body.events.map((e) => e.seq), [1, 2]);
  assert.equal(page1.body.nextAfter, 2);
  const page2 = await hub.get(`/api/photos/${photo}/events?after=${page1.body.nextAfter}&limit=2`, bearer);
  assert.deepEqual(page2.body.events.map((e) => e.seq), [3, 4]);
  assert.equal(page2.body.nextAfter, 4);
  const page3 = await hub.get(`/api/photos/${photo}/events?after=4&limit=2`, bearer);
  assert.deepEqual(page3.body.events.map((e) => e.seq), [5]);
  assert.equal(page3.body.nextAfter, null);
  const exact = await hub.get(`/api/photos/${photo}/events?after=3&limit=2`, bearer);
  assert.deepEqual(exact.body.events.map((e) => e.seq), [4, 5]);
  assert.equal(exact.body.nextAfter, null, 'null when the page reaches the end');
  const past = await hub.get(`/api/photos/${photo}/events?after=5`, bearer);
  assert.equal(past.status, 200);
  assert.deepEqual(past.body.events, []);
  assert.equal(past.body.nextAfter, null);
});

// Shows the room history endpoint for the user's own room and for global, with the same shape.
test('GET /api/rooms/{room}/events serves the user room and global', async () => {
  const { user, photo } = await photoWith(2);
  await hub.publishOne(ev.completed(photo));
  const bearer = token(user);
  const room = await hub.get(`/api/rooms/user:${user}/events`, bearer);
  assert.equal(room.status, 200);
  assert.equal(room.body.room, `user:${user}`);
  assert.deepEqual(
    room.body.events.map((e) => [e.seq, e.type]),
    [
      [1, 'photo.uploaded'],
      [2, 'photo.processing.completed'],
    ],
  );
  assert.equal(room.body.nextAfter, null);
  const encoded = await hub.get(`/api/rooms/${encodeURIComponent(`photo:${photo}`)}/events?after=1`, bearer);
  assert.equal(encoded.status, 200);
  assert.equal(encoded.body.room, `photo:${photo}`);
  assert.deepEqual(encoded.body.events.map((e) => e.seq), [2, 3]);

  const m = await hub.publishOne(ev.maintenance({ message: 'hello' }));
  const global = await hub.get(`/api/rooms/global/events?after=${m.rooms.global - 1}`, bearer);
  assert.equal(global.status, 200);
  assert.equal(global.body.room, 'global');
  assert.deepEqual(global.body.events.map((e) => [e.seq, e.eventId, e.type, e.data]), [
    [m.rooms.global, m.eventId, 'system.maintenance', { message: 'hello' }],
  ]);
});

// Shows that limit defaults to 100 and a limit over 1000 is clamped to 1000, not refused.
test('history limit defaults to 100 and is clamped at 1000', async () => {
  const { user, photo } = await photoWith(1005);
  const bearer = token(user);
  const def = await hub.get(`/api/photos/${photo}/events`, bearer);
  assert.equal(def.status, 200);
  assert.equal(def.body.events.length, 100);
  assert.equal(def.body.nextAfter, 100);
  const big = await hub.get(`/api/photos/${photo}/events?limit=5000`, bearer);
  assert.equal(big.status, 200);
  assert.equal(big.body.events.length, 1000);
  assert.deepEqual(big.body.events.map((e) => e.seq), range(1, 1000));
  assert.equal(big.body.nextAfter, 1000);
  const rest = await hub.get(`/api/photos/${photo}/events?after=1000&limit=5000`, bearer);
  assert.deepEqual(rest.body.events.map((e) => e.seq), range(1001, 1005));
  assert.equal(rest.body.nextAfter, null);
});

// Shows history access control: others 403, unknown photo 404, no or bad token 401, support:read and admin allowed.
test('history access: 403 for others, 404 for unknown photos, 401 without a valid token', async () => {
  const { user, photo } = await photoWith(2);
  const stranger = token(uid('u'));
  assertError(await hub.get(`/api/photos/${photo}/events`, stranger), 403, 'forbidden');
  assertError(await hub.get(`/api/rooms/photo:${photo}/events`, stranger), 403, 'forbidden');
  assertError(await hub.get(`/api/rooms/user:${user}/events`, stranger), 403, 'forbidden');
  assertError(await hub.get(`/api/photos/${photo}/status`, stranger), 403, 'forbidden');
  assertError(await hub.get(`/api/photos/${photo}/events`, token(user, ['write:photos'])), 403, 'forbidden');

  const unknown = uid('nope');
  assertError(await hub.get(`/api/photos/${unknown}/events`, token(user)), 404, 'not_found');
  assertError(await hub.get(`/api/rooms/photo:${unknown}/events`, token(user)), 404, 'not_found');
  assertError(await hub.get(`/api/photos/${unknown}/status`, token(user)), 404, 'not_found');

  // A 401 says why in `reason`, with the words of the handshake's connect_error `data.reason`.
  const unauthorized = (res, reason) => {
    assertError(res, 401, 'unauthorized');
    assert.equal(res.body.reason, reason, JSON.stringify(res.body));
  };
  unauthorized(await hub.get(`/api/photos/${photo}/events`), 'missing');
  unauthorized(await hub.get(`/api/rooms/user:${user}/events`), 'missing');
  const bad = [
    [badTokens.garbage(), 'malformed'],
    [badTokens.expired(user), 'expired'],
    [badTokens.wrongSecret(user), 'bad_signature'],
    [badTokens.algNone(user), 'malformed'],
    [badTokens.hs384(user), 'bad_signature'],
  ];
  for (const [bearer, reason] of bad) {
    unauthorized(await hub.get(`/api/photos/${photo}/events`, bearer), reason);
  }
  unauthorized(
    await hub.get(`/api/photos/${photo}/events`, undefined, { headers: { authorization: `Basic ${token(user)}` } }),
    'missing',
  );

  for (const permissions of [['support:read'], ['admin']]) {
    const staff = token(uid('staff'), permissions);
    assert.equal((await hub.get(`/api/photos/${photo}/events`, staff)).status, 200, permissions[0]);
    assert.equal((await hub.get(`/api/rooms/user:${user}/events`, staff)).status, 200, permissions[0]);
  }
});

// Shows that malformed history requests are 400 with { error, detail }.
test('history rejects malformed room names and query parameters with 400', async () => {
  const { user, photo } = await photoWith(1);
  const bearer = token(user);
  assertError(await hub.get('/api/rooms/team:x/events', bearer), 400);
  assertError(await hub.get(`/api/photos/${photo}/events?after=-1`, bearer), 400);
  assertError(await hub.get(`/api/photos/${photo}/events?limit=abc`, bearer), 400);
  assertError(await hub.get('/api/photos/a%20b/events', bearer), 400);
  assertError(await hub.get(`/api/photos/${'p'.repeat(129)}/status`, bearer), 400);
});

// Shows the ingest receipt shape for single events and batches.
test('POST /api/events answers { events: [{ eventId, rooms }] } for one event or a batch', async () => {
  const user = uid('u');
  const photo = uid('p');
  const single = await post(ev.uploaded(photo, user, {}, { id: 'producer-key-1 ' + uid('k') }));
  assert.equal(single.status, 200);
  assert.deepEqual(Object.keys(single.body), ['events']);
  assert.equal(single.body.events.length, 1);
  assert.deepEqual(single.body.events[0].rooms, { [`photo:${photo}`]: 1, [`user:${user}`]: 1 });
  assert.ok(single.body.events[0].eventId.startsWith('producer-key-1 '), 'the producer id becomes the eventId');

  const batch = await post([ev.progress(photo, 10), ev.health({ ok: true }), ev.completed(photo)]);
  assert.equal(batch.status, 200);
  assert.deepEqual(
    batch.body.events.map((e) => e.rooms),
    [{ [`photo:${photo}`]: 2 }, {}, { [`photo:${photo}`]: 3, [`user:${user}`]: 2 }],
  );
  const ids = batch.body.events.map((e) => e.eventId);
  assert.equal(new Set(ids).size, 3, 'the hub makes a unique eventId for each event without an id');
});

// Shows that the same producer id posted twice yields the same receipt and is stored once.
test('POST /api/events is idempotent on `id`', async () => {
  const user = uid('u');
  const photo = uid('p');
  const id = uid('idem');
  await hub.publishOne(ev.uploaded(photo, user));
  const event = ev.progress(photo, 30, {}, { id });
  const first = await post(event);
  const second = await post(event);
  assert.equal(first.status, 200);
  assert.equal(second.status, 200);
  assert.deepEqual(second.body, first.body);
  assert.deepEqual(first.body.events[0], { eventId: id, rooms: { [`photo:${photo}`]: 2 } });
  // Also inside a batch with a new event: the known one repeats its receipt, the new one is stored.
  const mixed = await post([event, ev.progress(photo, 60)]);
  assert.equal(mixed.status, 200);
  assert.deepEqual(mixed.body.events[0], first.body.events[0]);
  assert.deepEqual(mixed.body.events[1].rooms, { [`photo:${photo}`]: 3 });
  // The same new id twice in one batch is stored once; both entries get its receipt.
  const twinId = uid('twin');
  const twins = await post([ev.progress(photo, 70, {}, { id: twinId }), ev.progress(photo, 70, {}, { id: twinId })]);
  assert.equal(twins.status, 200);
  assert.deepEqual(twins.body.events, [
    { eventId: twinId, rooms: { [`photo:${photo}`]: 4 } },
    { eventId: twinId, rooms: { [`photo:${photo}`]: 4 } },
  ]);
  const history = await hub.get(`/api/photos/${photo}/events`, token(user));
  assert.deepEqual(history.body.events.map((e) => e.seq), [1, 2, 3, 4]);
  assert.equal(history.body.events.filter((e) => e.eventId === id).length, 1);
  assert.equal(history.body.events.filter((e) => e.eventId === twinId).length, 1);
});

// Shows ingest refusals: 400 { error, detail } for malformed input, 401/403 for the caller, and nothing of a rejected batch stored.
test('POST /api/events refuses bad input with 400 { error, detail } and stores nothing of the batch', async () => {
  const user = uid('u');
  const photo = uid('p');
  await hub.publishOne(ev.uploaded(photo, user));

  assertError(await post('{"type": "photo.uploaded", "data": {', { raw: true }), 400);
  assertError(await post('not json at all', { raw: true }), 400);
  // A valid event but for one byte that is not UTF-8 (Latin-1 `é`).
  const latin1 = Buffer.concat([
    Buffer.from(`{"type":"photo.processing.progress","data":{"photoId":"${photo}","progress":5,"note":"caf`),
    Buffer.from([0xe9]),
    Buffer.from('"}}'),
  ]);
  assertError(await post(latin1, { raw: true }), 400);
  assertError(await post({ type: 'photo.resized', data: { photoId: photo } }), 400);
  assertError(await post({ data: { photoId: photo } }), 400);
  assertError(await post({ type: 'photo.processing.progress', data: 'nope' }), 400);
  assertError(await post({ type: 'photo.processing.progress', data: {} }), 400);
  assertError(await post({ type: 'photo.uploaded', data: { photoId: uid('p') } }), 400);
  assertError(await post({ type: 'photo.processing.started', data: { photoId: uid('p') } }), 400);
  assertError(await post({ type: 'photo.processing.progress', data: { photoId: 'a b' } }), 400);
  assertError(await post({ type: 'photo.processing.progress', data: { photoId: photo }, timestamp: 'yesterday' }), 400);
  assertError(await post({ type: 'photo.processing.progress', data: { photoId: photo, userId: uid('u') } }), 400, 'owner_mismatch');
  assertError(await post([]), 400);
  assertError(await post(42), 400);

  // A batch with one bad event stores none of it.
  assertError(await post([ev.progress(photo, 50), { type: 'photo.bogus', data: { photoId: photo } }]), 400);
  assertError(await post([ev.progress(photo, 50), ev.progress(photo, 60, { userId: uid('u') })]), 400, 'owner_mismatch');
  const history = await hub.get(`/api/photos/${photo}/events`, token(user));
  assert.deepEqual(history.body.events.map((e) => e.seq), [1], 'nothing of a rejected batch is stored');

  assertError(await hub.request('POST', '/api/events', { body: ev.progress(photo, 1) }), 401, 'unauthorized');
  assertError(await post(ev.progress(photo, 1), { token: badTokens.expired('publisher') }), 401, 'unauthorized');
  assertError(await post(ev.progress(photo, 1), { token: token('reader', ['read:photos']) }), 403, 'forbidden');
  assert.equal((await post(ev.progress(photo, 1), { token: token('root', ['admin']) })).status, 200, 'admin may publish');
});

// Shows that a body over the 1 MiB limit is refused with 413 and nothing is stored.
test('POST /api/events with a body over 1 MiB answers 413', async () => {
  const user = uid('u');
  const photo = uid('p');
  await hub.publishOne(ev.uploaded(photo, user));
  const blob = 'x'.repeat(1024 * 1024 + 1024);
  const res = await post(ev.progress(photo, 5, { blob }));
  assert.equal(res.status, 413);
  assert.equal(typeof res.body, 'object', `a JSON body, got ${String(res.body).slice(0, 200)}`);
  assert.equal(typeof res.body.error, 'string');
  assert.equal(typeof res.body.detail, 'string');
  const history = await hub.get(`/api/photos/${photo}/events`, token(user));
  assert.deepEqual(history.body.events.map((e) => e.seq), [1]);
});

// Shows the health endpoints' shapes.
test('GET /health and /health/detailed', async () => {
  const health = await hub.get('/health');
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { status: 'ok' });
  const client = await hub.connect(uid('u'));
  const detailed = await hub.get('/health/detailed');
  assert.equal(detailed.status, 200);
  assert.equal(detailed.body.status, 'ok');
  assert.match(detailed.body.timestamp, RFC3339_MS);
  const { websocket, store, bus } = detailed.body.details;
  assert.equal(typeof websocket.status, 'string');
  assert.ok(websocket.connectedClients >= 1);
  assert.equal(typeof websocket.activeRooms, 'number');
  assert.equal(typeof websocket.uptime, 'number');
  assert.equal(typeof store, 'object');
  assert.deepEqual(bus, { type: 'in-process', status: 'up' });
  client.close();
  // A disconnected socket is forgotten.
  const deadline = Date.now() + 3000;
  let now;
  do {
    now = (await hub.get('/health/detailed')).body.details.websocket.connectedClients;
  } while (now >= websocket.connectedClients && Date.now() < deadline);
  assert.equal(now, websocket.connectedClients - 1);
});

const ORIGIN = 'http://localhost:3000';

// Shows that an allowed Origin gets access-control-allow-origin on the API.
test('CORS: the API answers an allowed Origin with access-control-allow-origin', async () => {
  const { user, photo } = await photoWith(1);
  for (const path of ['/health', `/api/photos/${photo}/status`, `/api/photos/${photo}/events`]) {
    const res = await hub.get(path, token(user), { headers: { origin: ORIGIN } });
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN, path);
  }
  const refused = await hub.get(`/api/photos/${photo}/status`, undefined, { headers: { origin: ORIGIN } });
  assert.equal(refused.status, 401);
  assert.equal(refused.headers.get('access-control-allow-origin'), ORIGIN, 'error answers carry CORS headers too');

  const published = await hub.request('POST', '/api/events', {
    token: publisherToken(),
    body: ev.progress(photo, 5),
    headers: { origin: 'http://localhost:3001' },
  });
  assert.equal(published.status, 200);
  assert.equal(published.headers.get('access-control-allow-origin'), 'http://localhost:3001');

  const preflight = await hub.request('OPTIONS', '/api/events', {
    headers: {
      origin: ORIGIN,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type',
    },
  });
  assert.ok(preflight.status >= 200 && preflight.status < 300, `preflight status ${preflight.status}`);
  assert.equal(preflight.headers.get('access-control-allow-origin'), ORIGIN);
  assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/i);
  const allowHeaders = (preflight.headers.get('access-control-allow-headers') ?? '').toLowerCase();
  assert.match(allowHeaders, /authorization/);
  assert.match(allowHeaders, /content-type/);

  const other = await hub.get('/health', undefined, { headers: { origin: 'http://evil.example' } });
  assert.equal(other.status, 200);
  assert.equal(other.headers.get('access-control-allow-origin'), null, 'an origin not in ALLOWED_ORIGINS gets no CORS grant');
});

// Shows that Socket.IO's polling transport carries the CORS header for an allowed Origin.
test('CORS: the Socket.IO polling transport answers with access-control-allow-origin', async () => {
  const res = await hub.get('/socket.io/?EIO=4&transport=polling', undefined, { headers: { origin: ORIGIN } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
  assert.match(String(res.body), /^0\{.*"sid"/, 'an Engine.IO open packet');
  const preflight = await hub.request('OPTIONS', '/socket.io/?EIO=4&transport=polling', {
    headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
  });
  assert.ok(preflight.status >= 200 && preflight.status < 300, `preflight status ${preflight.status}`);
  assert.equal(preflight.headers.get('access-control-allow-origin'), ORIGIN);
});

// Shows that the Origin never refuses a connection: the token decides, over websocket and polling alike.
test('CORS: a socket from an unlisted Origin still connects with a valid token', async () => {
  for (const transports of [['websocket'], ['polling']]) {
    const user = uid('u');
    const client = hub.client(
      { token: token(user), clientId: uid('c') },
      { transports, extraHeaders: { origin: 'http://evil.example' } },
    );
    await client.open();
    assert.equal((await client.waitFor('connection:established')).userId, user, transports[0]);
    await client.ping();
    client.close();
  }
});
