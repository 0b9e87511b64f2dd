// docs/protocol.md, "Connecting": who may connect, and what a refused or accepted handshake looks like.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RFC3339_MS, badTokens, signJwt, token, uid, useHub } from './hub.mjs';

const hub = await useHub();

const unauthorized = [
  ['no auth at all', () => undefined],
  ['no token', () => ({ clientId: uid('c') })],
  ['a null token', () => ({ token: null, clientId: uid('c') })],
  ['a numeric token', () => ({ token: 42, clientId: uid('c') })],
  ['a garbage token', () => ({ token: badTokens.garbage(), clientId: uid('c') })],
  ['a token expired ten minutes ago (beyond the 60 s leeway)', () => ({ token: badTokens.expired(), clientId: uid('c') })],
  ['a token expired long ago', () => ({ token: badTokens.longExpired(), clientId: uid('c') })],
  ['a token without exp', () => ({ token: badTokens.noExp(), clientId: uid('c') })],
  ['a token signed with another secret', () => ({ token: badTokens.wrongSecret(), clientId: uid('c') })],
  ['an unsigned alg "none" token', () => ({ token: badTokens.algNone(), clientId: uid('c') })],
  ['an HS384 token signed with the right secret', () => ({ token: badTokens.hs384(), clientId: uid('c') })],
  ['a bad token even when clientId is missing too', () => ({ token: badTokens.garbage() })],
  ["the original design's bare userId handshake (no --insecure-dev-auth)", () => ({ userId: uid('u'), clientId: uid('c') })],
  ['a token without sub', () => ({ token: signJwt({ exp: Math.floor(Date.now() / 1000) + 600, permissions: [] }), clientId: uid('c') })],
];

/** Connects with `auth`, which must be refused with connect_error `reason` and leave it unconnected; returns the closed client. */
async function refusedAs(auth, reason) {
  const client = hub.client(auth);
  const err = await client.refused();
  assert.equal(err.message, reason);
  assert.equal(client.connected, false);
  client.close();
  return client;
}

for (const [name, auth] of unauthorized) {
  // Shows that a handshake with this token is refused with connect_error "unauthorized" and never connects.
  test(`handshake with ${name} is refused as unauthorized`, async () => {
    const client = await refusedAs(auth(), 'unauthorized');
    assert.equal(client.find('connection:established'), undefined);
  });
}

const invalid = [
  ['a missing clientId', () => ({ token: token(uid('u')) })],
  ['an empty clientId', () => ({ token: token(uid('u')), clientId: '' })],
  ['a clientId with spaces', () => ({ token: token(uid('u')), clientId: 'my client' })],
  ['a numeric clientId', () => ({ token: token(uid('u')), clientId: 7 })],
  ['a sessionId with spaces', () => ({ token: token(uid('u')), clientId: uid('c'), sessionId: 'my session' })],
  ['a numeric epoch', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'photo:p1': 1 }, epoch: 5 })],
  ['a negative resume seq', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'photo:p1': -1 } })],
  ['a fractional resume seq', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'photo:p1': 1.5 } })],
  ['a string resume seq', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'photo:p1': '3' } })],
  ['resume as an array', () => ({ token: token(uid('u')), clientId: uid('c'), resume: [1] })],
  ['resume as a string', () => ({ token: token(uid('u')), clientId: uid('c'), resume: 'photo:p1' })],
  ['a resume room of an unknown kind', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'team:x': 1 } })],
  ['a resume room with a malformed id', () => ({ token: token(uid('u')), clientId: uid('c'), resume: { 'photo:a b': 1 } })],
];

for (const [name, auth] of invalid) {
  // Shows that a well-authenticated handshake with this defect is refused with "invalid_handshake".
  test(`handshake with ${name} is refused as invalid_handshake`, async () => {
    await refusedAs(auth(), 'invalid_handshake');
  });
}

// Shows that a valid token connects and gets connection:established with the socket's identity and the store epoch.
test('a valid token connects and receives connection:established', async () => {
  const user = uid('u');
  const clientId = uid('c');
  const sessionId = uid('s');
  const client = hub.client({ token: token(user), clientId, sessionId });
  await client.open();
  const established = await client.waitFor('connection:established');
  assert.deepEqual(Object.keys(established).sort(), ['clientId', 'epoch', 'rooms', 'socketId', 'timestamp', 'userId']);
  // The default rooms it joined live, each with the head seq live delivery continues after.
  const { global, ...own } = established.rooms;
  assert.deepEqual(own, { [`user:${user}`]: 0, [`client:${clientId}`]: 0, [`session:${sessionId}`]: 0 });
  assert.ok(Number.isInteger(global) && global >= 0, 'global is joined at its head');
  assert.equal(established.socketId, client.socket.id);
  assert.equal(established.clientId, clientId);
  assert.equal(established.userId, user);
  assert.equal(typeof established.epoch, 'string');
  assert.ok(established.epoch.length > 0);
  assert.equal(established.epoch, hub.epoch, 'the epoch is the store identity the hub logged at start');
  assert.match(established.timestamp, RFC3339_MS);
  assert.ok(Math.abs(Date.parse(established.timestamp) - Date.now()) < 60_000);
  // The socket is really served.
  const pong = await client.ping();
  assert.match(pong.timestamp, RFC3339_MS);
  client.close();
});

// Shows that a token that expired 30 s ago is still accepted (the contract allows up to 60 s of skew).
test('a token within the clock-skew leeway connects', async () => {
  const user = uid('u');
  const client = hub.client({
    token: token(user, ['read:photos'], { ttlSecs: -30 }),
    clientId: uid('c'),
  });
  await client.open();
  assert.equal((await client.waitFor('connection:established')).userId, user);
  client.close();
});

// Shows that the epoch is the same for every connection to one store.
test('every connection sees the same epoch', async () => {
  const a = await hub.connect(uid('u'));
  const b = await hub.connect(uid('u'));
  assert.equal(a.find('connection:established').data.epoch, b.find('connection:established').data.epoch);
  a.close();
  b.close();
});

// Shows that refusals reach a client on the polling transport the same way as on websocket.
test('refusals look the same over the polling transport', async () => {
  const noToken = hub.client({ clientId: uid('c') }, { transports: ['polling'] });
  assert.equal((await noToken.refused()).message, 'unauthorized');
  noToken.close();
  const noClient = hub.client({ token: token(uid('u')) }, { transports: ['polling'] });
  assert.equal((await noClient.refused()).message, 'invalid_handshake');
  noClient.close();
  const ok = hub.client({ token: token(uid('u')), clientId: uid('c') }, { transports: ['polling'] });
  await ok.open();
  await ok.waitFor('connection:established');
  ok.close();
});
