// Issue scenario 4: the token expires while the client is connected. The hub does not yet push
// `auth:expired` to live sockets, so what is tested against it is the reconnect: after the old
// token would be refused, the connection drops, and the next handshake carries a fresh token from
// getToken and resumes without loss. The client's reaction to `auth:expired` is tested by handing
// it that event as if the hub had sent it. A fixed token that is refused stops the client.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { SocketBridgeClient } from '../dist/index.js';
import { ev, sleep, startHub, token, uid } from './support/hub.mjs';
import { Proxy } from './support/proxy.mjs';
import { Ledger, Recorder, until, within } from './support/recorder.mjs';

let hub;
let proxy;
const cleanup = [];
before(async () => {
  hub = await startHub();
  proxy = await Proxy.start(hub.url);
});
after(async () => {
  for (const close of cleanup.reverse()) await close();
  await proxy?.close();
  await hub?.close();
});

/** Whether the hub refuses `bearer` now (HTTP 401 on a read any valid token may make). */
async function refused(bearer) {
  const res = await fetch(`${hub.url}/api/rooms/global/events?limit=1`, { headers: { authorization: `Bearer ${bearer}` } });
  return res.status === 401;
}

/** A user with an uploaded photo, a client following it, and the ledger of what was published. */
async function followingClient(getToken, user) {
  const photo = uid('p');
  const ledger = new Ledger();
  await ledger.publish(hub, [ev.uploaded(photo, user)]);
  const client = new SocketBridgeClient(proxy.url, {
    getToken,
    clientId: uid('c'),
    transports: ['websocket'],
    backoff: { initialMs: 50, maxMs: 250 },
  });
  cleanup.push(() => client.disconnect());
  const recorder = new Recorder(client);
  await client.connect();
  assert.equal((await client.subscribeToPhoto(photo)).ok, true);
  return { client, recorder, ledger, photo };
}

test('a token that expires while connected: the reconnect gets a fresh one from getToken and resumes', async () => {
  const user = uid('u');
  // Past its exp already, and accepted only for the ~3 s left of the hub's 60 s leeway.
  const shortLived = token(user, ['read:photos'], { ttlSecs: -57 });
  const handedOut = [];
  const getToken = async () => {
    const next = handedOut.length === 0 ? shortLived : token(user);
    handedOut.push(next);
    return next;
  };
  const { client, recorder, ledger, photo } = await followingClient(getToken, user);
  await ledger.publish(hub, [ev.progress(photo, 10), ev.progress(photo, 20)]);
  await recorder.waitFor(`photo:${photo}`, 3);

  await until(() => refused(shortLived), 'the first token to be refused', 8000);
  await ledger.publish(hub, [ev.progress(photo, 30)]);
  proxy.cut(300);
  await sleep(50);
  await ledger.publish(hub, [ev.progress(photo, 40), ev.completed(photo)]);
  await recorder.waitForState('live', 2);

  await ledger.assertDelivered(recorder, `photo:${photo}`);
  const offline = ledger.expected(`photo:${photo}`).slice(-2).map(([seq]) => seq);
  assert.deepEqual(recorder.resumed(`photo:${photo}`).slice(-2), offline, 'what was published while offline came by the resume');
  assert.equal(handedOut.length, 2, 'getToken was called again for the reconnect');
  assert.notEqual(handedOut[1], shortLived);
  assert.equal(await refused(handedOut[1]), false);
});

test('auth:expired (as the hub will send it): the client reconnects with a fresh token and loses nothing', async () => {
  const user = uid('u');
  let calls = 0;
  const { client, recorder, ledger, photo } = await followingClient(async () => {
    calls += 1;
    return token(user);
  }, user);
  const expired = [];
  client.on('auth:expired', (payload) => expired.push(payload));
  // The packet the hub would send: event `auth:expired` with `{}` (docs/protocol.md).
  client.socket.onpacket({ type: 2, nsp: '/', data: ['auth:expired', {}] });
  await ledger.publish(hub, [ev.progress(photo, 50), ev.progress(photo, 60)]);
  await recorder.waitForState('live', 2);

  await ledger.assertDelivered(recorder, `photo:${photo}`);
  assert.deepEqual(recorder.resumed(`photo:${photo}`).slice(-2), [2, 3], 'what was published meanwhile came by the resume');
  assert.deepEqual(expired, [{}]);
  assert.equal(calls, 2, 'a second token for the reconnect');
});

test('a fixed token that the hub refuses stops the client with `unauthorized`', async () => {
  const client = new SocketBridgeClient(proxy.url, {
    token: token(uid('u'), ['read:photos'], { ttlSecs: -600 }),
    clientId: uid('c'),
    backoff: { initialMs: 50, maxMs: 250 },
  });
  cleanup.push(() => client.disconnect());
  const changes = [];
  client.on('connection', (change) => changes.push(change));
  await assert.rejects(within(client.connect(), 3000, 'connect() to reject'), { message: 'unauthorized' });
  await sleep(300);
  assert.equal(client.state, 'offline');
  assert.deepEqual(changes.map((c) => c.state), ['connecting', 'offline'], 'no retry');
  assert.equal(changes[1].retryInMs, undefined);
});
