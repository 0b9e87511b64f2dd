// The start the client tests share: everything a test opens is closed after the file's tests
// (last opened, first closed), and a hub with one user's photo whose first events are published.

import { after } from 'node:test';

import { ev, makeDataDir, startHub, uid } from './hub.mjs';
import { Ledger } from './recorder.mjs';

/** Closers run after the file's tests, last pushed first: push one for everything opened. */
export const cleanup = [];
after(async () => {
  for (const close of cleanup.reverse()) await close();
});

/** `startHub(options)`, with the hub closed after the file's tests. */
export async function startClosedHub(options) {
  const hub = await startHub(options);
  cleanup.push(() => hub.close());
  return hub;
}

/**
 * A hub (on a data dir of the test's own, kept across restarts, when `ownDataDir`), a new user and
 * photo, and a Ledger that has published `first(photo, user)` (by default the photo's upload).
 */
export async function hubWithPhoto({ ownDataDir = false, first = (photo, user) => [ev.uploaded(photo, user)] } = {}) {
  const dataDir = ownDataDir ? await makeDataDir() : undefined;
  if (dataDir) cleanup.push(dataDir.remove);
  const hub = await startClosedHub({ dataDir: dataDir?.path });
  const user = uid('u');
  const photo = uid('p');
  const ledger = new Ledger();
  await ledger.publish(hub, first(photo, user));
  return { hub, dataDir, user, photo, ledger };
}
