// Compiled (not run) by `npm run build` against the built declarations: the documented usage
// type-checks, and misuse does not.

import {
  MemoryStorage,
  SocketBridgeClient,
  SocketBridgeError,
  STORED_EVENT_TYPES,
  type ConnectionChange,
  type PhotoStatus,
  type SubscribeAck,
} from 'socket-bridge-client';

const client = new SocketBridgeClient('http://127.0.0.1:8080', {
  getToken: async () => 'token',
  clientId: 'tab-1',
  storage: new MemoryStorage(),
  backoff: { initialMs: 100, maxMs: 5000 },
});

client.on('photo.processing.progress', (event) => {
  const progress: number | undefined = event.progress;
  const where: [string, number, string] = [event.room, event.seq, event.photoId];
  void [progress, where];
});
client.on('replay:truncated', ({ room, oldestSeq, status }) => void [room, oldestSeq, status?.status]);
client.on('connection', (change: ConnectionChange) => void change.state);
client.on('system.shutdown', ({ message }) => void message);
for (const type of STORED_EVENT_TYPES) client.on(type, (event) => void event.eventId);

export async function usage(): Promise<void> {
  const { epoch } = await client.connect();
  const ack: SubscribeAck = await client.subscribeToPhoto('p1', { since: 0 });
  if (ack.ok) void [ack.headSeq, epoch];
  else void ack.error;
  try {
    const status: PhotoStatus = await client.requestPhotoStatus('p1');
    void status.progress;
  } catch (e) {
    if (e instanceof SocketBridgeError) void e.code;
  }
  await client.unsubscribeFromPhoto('p1');
  client.disconnect();
}

// @ts-expect-error clientId is required
new SocketBridgeClient('http://x', { token: 't' });
// @ts-expect-error `progress` may be absent
client.on('photo.processing.progress', (event) => { const n: number = event.progress; void n; });
