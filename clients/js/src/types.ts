/**
 * The payloads of the hub's events and the client's options (docs/protocol.md).
 * @module
 */

import type { KeyValueStorage } from './storage.js';

/** Every stored event: the producer's data plus where and when it was stored. */
export interface StoredEvent {
  /** The producer's `id`, or one the hub made. The same in every room the event was stored in. */
  eventId: string;
  /** The room this copy was delivered for, e.g. `photo:p1`. */
  room: string;
  /** The event's position in `room`: 1, 2, 3, ... with no gap. */
  seq: number;
  /** RFC 3339 UTC with milliseconds. */
  timestamp: string;
  /** The other fields of the producer's `data`. */
  [field: string]: unknown;
}

/** A stored `photo.*` event. */
export interface PhotoEvent extends StoredEvent {
  photoId: string;
  /** The owner; always on `photo.uploaded`, optional on the others. */
  userId?: string;
  /** 0 to 100, on `photo.processing.progress`. */
  progress?: number;
  /** On `photo.processing.failed`. */
  error?: string;
}

/** `system.health`: live only, never stored, so it has no `seq`. */
export interface LiveEvent {
  eventId: string;
  room: 'global';
  timestamp: string;
  [field: string]: unknown;
}

/** A photo's status object (`photo:status:request`, `replay:truncated`). */
export interface PhotoStatus {
  photoId: string;
  userId: string;
  status: 'pending' | 'processing' | 'completed' | 'failed' | 'deleted';
  progress: number;
  lastEventType: string;
  lastSeq: number;
  updatedAt: string;
  error?: string;
}

/** `connection:established`, the first event of every connection. */
export interface ConnectionEstablished {
  socketId: string;
  clientId: string;
  userId: string;
  /** The store's identity; seqs only mean something with it. */
  epoch: string;
  /** Default rooms joined live, with the head seq each was joined at. */
  rooms: Record<string, number>;
  timestamp: string;
}

/** Sent before a replay that cannot start where it was asked to (pruned, new epoch, seq beyond head). */
export interface ReplayTruncated {
  room: string;
  /** The first seq asked for. */
  requestedSeq: number;
  /** Where the replay goes on from. */
  oldestSeq: number;
  /** The photo's current status for a `photo:` room, else null. */
  status: PhotoStatus | null;
}

/** Every resumed room is live: the head each went live at, and the rooms refused. */
export interface ResumeComplete {
  rooms: Record<string, number>;
  refused: Record<string, 'forbidden' | 'not_found' | 'internal'>;
}

/** The answer to `subscribeToPhoto`. */
export type SubscribeAck =
  | { ok: true; room: string; headSeq: number; epoch: string }
  | { ok: false; error: string };

/** Where the client's connection stands. */
export type ConnectionState = 'connecting' | 'connected' | 'resuming' | 'live' | 'offline';

/** A change of connection state, given to `on('connection', ...)` handlers. */
export interface ConnectionChange {
  state: ConnectionState;
  /** Connection attempts since the client last went live. */
  attempt: number;
  /** Offline, waiting to retry: in how many milliseconds. Absent when it will not retry. */
  retryInMs?: number;
  /** Why the connection went away (Socket.IO's disconnect reason, or `gap`, `auth:expired`). */
  reason?: string;
  /** The error that ended an attempt (a refused handshake has `message` `unauthorized`, ...). */
  error?: Error;
}

/** Every event a handler can be registered for, with its payload. */
export interface EventMap {
  'photo.uploaded': PhotoEvent;
  'photo.processing.started': PhotoEvent;
  'photo.processing.progress': PhotoEvent;
  'photo.processing.completed': PhotoEvent;
  'photo.processing.failed': PhotoEvent;
  'photo.deleted': PhotoEvent;
  'system.maintenance': StoredEvent;
  'system.health': LiveEvent;
  'system.shutdown': { message: string; timestamp: string };
  'photo.upload.failed': { photoId?: string; error: string };
  'replay:truncated': ReplayTruncated;
  'resume:complete': ResumeComplete;
  'connection:established': ConnectionEstablished;
  'subscription:confirmed': { photoId: string; message: string };
  'request:error': { event: string; error: string; photoId?: string };
  'auth:expired': Record<string, never>;
  connection: ConnectionChange;
}

/** A handler for events of type `K`. */
export type Handler<K extends keyof EventMap> = (payload: EventMap[K]) => void;

/** Capped exponential backoff with jitter, for reconnecting. */
export interface BackoffOptions {
  /** The first delay, before jitter (default 500 ms). */
  initialMs?: number;
  /** The largest delay (default 30 000 ms). */
  maxMs?: number;
  /** Each delay is this many times the one before (default 2). */
  factor?: number;
  /** Up to this share of each delay is taken off at random (0 to 1, default 0.5). */
  jitter?: number;
}

/** Options of `new SocketBridgeClient(url, options)`. Give `token` or `getToken`. */
export interface SocketBridgeClientOptions {
  /** A fixed token. A reconnect refused as `unauthorized` then stops the client. */
  token?: string;
  /** Called before every connection attempt and after `auth:expired`: returns a valid token. */
  getToken?: () => string | Promise<string>;
  /** This app install or tab; choose it and keep it (joins `client:<clientId>`). */
  clientId: string;
  /** Joins `session:<sessionId>` as well. */
  sessionId?: string;
  /** Where the epoch and the last seq per room are kept (default: `localStorage` in a browser, memory elsewhere). */
  storage?: KeyValueStorage;
  /** The key under which they are kept in `storage` (default `socket-bridge:<url>`). */
  storageKey?: string;
  /** Socket.IO transports (default `['polling', 'websocket']`). */
  transports?: ('polling' | 'websocket' | 'webtransport')[];
  /** Reconnect delays. */
  backoff?: BackoffOptions;
  /** How long one connection attempt may take (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** How long a request waits for its answer once sent (default 10 000 ms). */
  requestTimeoutMs?: number;
}
