/**
 * `SocketBridgeClient`: the seed's `ClientWebSocketService` with resume built in. The application
 * registers handlers and subscribes to photos; the client keeps the epoch and the last seq per
 * room, resumes on every reconnect, restores photo subscriptions, and calls each stored event's
 * handlers exactly once per `(room, seq)`, in seq order per room.
 * @module
 */

import type { Socket } from 'socket.io-client';

import { Backoff } from './backoff.js';
import { Connection } from './connection.js';
import { SocketBridgeError } from './errors.js';
import { Handlers } from './handlers.js';
import { RoomCursor } from './room-cursor.js';
import { SavedState } from './saved-state.js';
import { defaultStorage } from './storage.js';
import type {
  ConnectionChange,
  ConnectionEstablished,
  ConnectionState,
  EventMap,
  Handler,
  PhotoStatus,
  ReplayTruncated,
  ResumeComplete,
  StoredEvent,
  SubscribeAck,
  SocketBridgeClientOptions,
} from './types.js';

/** The ids the hub accepts (docs/protocol.md, Words). */
const ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A promise with its settle functions. */
interface Pending<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
}

function pending<T>(): Pending<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function isStored(payload: unknown): payload is StoredEvent {
  const p = payload as Partial<StoredEvent> | null;
  return (
    typeof p === 'object' && p !== null &&
    typeof p.room === 'string' && typeof p.seq === 'number' && typeof p.eventId === 'string'
  );
}

export class SocketBridgeClient {
  readonly #options: SocketBridgeClientOptions;
  readonly #cursor: RoomCursor;
  readonly #connection: Connection;
  readonly #handlers = new Handlers();
  /** The promise `connect()` returned, until `disconnect()`. */
  #started: Pending<ConnectionEstablished> | undefined;
  /** Requests waiting for a connection (or for its resume to complete). */
  #waiting: { untilLive: boolean; pending: Pending<void> }[] = [];

  constructor(url: string, options: SocketBridgeClientOptions) {
    if (!options.token && !options.getToken) throw new TypeError('socket-bridge-client: give `token` or `getToken`');
    if (!ID.test(options.clientId ?? '')) throw new TypeError('socket-bridge-client: `clientId` must be a valid id');
    this.#options = options;
    const saved = new SavedState(options.storage ?? defaultStorage(), options.storageKey ?? `socket-bridge:${url}`);
    this.#cursor = new RoomCursor(saved, options.clientId, options.sessionId);
    this.#connection = new Connection(url, {
      transports: options.transports,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      backoff: new Backoff(options.backoff),
      handshake: () => this.#handshake(),
      // A fixed token that is refused stays refused; a malformed handshake stays malformed.
      isFinal: (error) =>
        error.message === 'invalid_handshake' || (error.message === 'unauthorized' && !options.getToken),
      onChange: (change) => this.#changed(change),
    });
    this.#connection.socket.onAny((type: string, payload: unknown) => this.#receive(type, payload));
  }

  /** The underlying `socket.io-client` socket, for diagnostics. */
  get socket(): Socket {
    return this.#connection.socket;
  }

  /** Where the connection stands. */
  get state(): ConnectionState {
    return this.#connection.state;
  }

  /**
   * Connects, and from then on reconnects by itself until `disconnect()`. Resolves on the first
   * `connection:established`; rejects if the hub refuses the handshake for good (`invalid_handshake`,
   * or `unauthorized` with a fixed `token`) or `disconnect()` is called first.
   */
  connect(): Promise<ConnectionEstablished> {
    this.#started ??= pending();
    this.#connection.start();
    return this.#started.promise;
  }

  /** Disconnects and stops reconnecting. The saved seqs stay, for a later `connect()`. */
  disconnect(): void {
    this.#connection.stop();
  }

  /**
   * Subscribes to a photo: the hub replays its events after `since`, then sends them live. `since`
   * defaults to the last seq of the photo this client, or another client on the same storage,
   * has handled (0 if none: its whole history). The subscription is restored on every reconnect
   * until `unsubscribeFromPhoto`. Resolves with the hub's ack (`ok: false` with `error` when refused).
   */
  async subscribeToPhoto(photoId: string, { since }: { since?: number } = {}): Promise<SubscribeAck> {
    if (!ID.test(photoId) || (since !== undefined && !(Number.isSafeInteger(since) && since >= 0))) {
      return { ok: false, error: 'invalid_payload' };
    }
    const room = `photo:${photoId}`;
    this.#cursor.follow(room, since); // from now on in every resume, even if this ack is lost
    // Not while a resume may be re-joining this room: the hub would drop that resume's
    // catch-up and never send resume:complete.
    await this.#ready(true);
    const ack = await this.#request<SubscribeAck>('subscribe:photo', { photoId, since: this.#cursor.follow(room) });
    if (!ack.ok) this.#cursor.forget(room);
    return ack;
  }

  /** Stops following a photo. */
  async unsubscribeFromPhoto(photoId: string): Promise<void> {
    this.#cursor.forget(`photo:${photoId}`);
    if (!this.#connection.running) return;
    await this.#ready(false);
    await this.#request('unsubscribe:photo', { photoId });
  }

  /** A photo's status; rejects with a `SocketBridgeError` (`forbidden`, `not_found`, ...). */
  async requestPhotoStatus(photoId: string): Promise<PhotoStatus> {
    await this.#ready(false);
    const answer = await this.#request<PhotoStatus | { ok: false; error: string }>('photo:status:request', { photoId });
    if ('ok' in answer && answer.ok === false) throw new SocketBridgeError(answer.error);
    return answer as PhotoStatus;
  }

  /** Calls `handler` for every event of `type` (stored ones once per `(room, seq)`). */
  on<K extends keyof EventMap>(type: K, handler: Handler<K>): this;
  on(type: string, handler: (payload: unknown) => void): this;
  on(type: string, handler: (payload: never) => void): this {
    this.#handlers.add(type, handler);
    return this;
  }

  /** Removes a handler added with `on`. */
  off<K extends keyof EventMap>(type: K, handler: Handler<K>): this;
  off(type: string, handler: (payload: unknown) => void): this;
  off(type: string, handler: (payload: never) => void): this {
    this.#handlers.remove(type, handler);
    return this;
  }

  /** The handshake's `auth`: a fresh token, and where to resume every room from. */
  async #handshake(): Promise<Record<string, unknown>> {
    const { getToken, token, clientId, sessionId } = this.#options;
    const epoch = this.#cursor.epoch;
    return {
      token: getToken ? await getToken() : token,
      clientId,
      ...(sessionId !== undefined ? { sessionId } : {}),
      resume: this.#cursor.resume(),
      ...(epoch !== undefined ? { epoch } : {}),
    };
  }

  /** Everything the hub sends. Stored events pass the cursor; control events update it first. */
  #receive(type: string, payload: unknown): void {
    if (isStored(payload)) {
      const verdict = this.#cursor.check(payload.room, payload.seq);
      if (verdict === 'deliver') this.#handlers.emit(type, payload);
      // Never expected from the hub: reconnect, and the resume fills the gap.
      else if (verdict === 'gap') this.#connection.reconnect('gap');
      return;
    }
    switch (type) {
      case 'connection:established': {
        const established = payload as ConnectionEstablished;
        this.#cursor.established(established.epoch, established.rooms ?? {});
        this.#connection.established();
        this.#started?.resolve(established);
        this.#release(false);
        break;
      }
      case 'replay:truncated': {
        const { room, oldestSeq } = payload as ReplayTruncated;
        this.#cursor.truncated(room, oldestSeq);
        break;
      }
      case 'resume:complete': {
        for (const room of Object.keys((payload as ResumeComplete).refused ?? {})) this.#cursor.forget(room);
        this.#connection.resumed();
        this.#release(true);
        break;
      }
      case 'auth:expired':
        this.#handlers.emit(type, payload);
        this.#connection.reconnect('auth:expired'); // getToken gives the next handshake a fresh token
        return;
    }
    this.#handlers.emit(type, payload);
  }

  #changed(change: ConnectionChange): void {
    if (change.state === 'offline' && change.retryInMs === undefined) {
      // Stopped: by disconnect(), or by a refusal no retry can fix.
      const error = change.error ?? new Error('socket-bridge-client: disconnected');
      this.#started?.reject(error);
      this.#started = undefined;
      for (const { pending } of this.#waiting.splice(0)) pending.reject(error);
    }
    this.#handlers.emit('connection', change);
  }

  /** Resolves once a connection is established, or with `untilLive` once it is live (at once if it is). */
  #ready(untilLive: boolean): Promise<void> {
    const state = this.#connection.state;
    if (state === 'live' || (state === 'resuming' && !untilLive)) return Promise.resolve();
    if (!this.#connection.running) return Promise.reject(new Error('socket-bridge-client: call connect() first'));
    const waiter = { untilLive, pending: pending<void>() };
    this.#waiting.push(waiter);
    return waiter.pending.promise;
  }

  /** Lets the waiting requests go: those waiting for a connection, and with `live` all of them. */
  #release(live: boolean): void {
    const go = this.#waiting.filter((waiter) => live || !waiter.untilLive);
    this.#waiting = this.#waiting.filter((waiter) => !go.includes(waiter));
    for (const { pending } of go) pending.resolve();
  }

  /** Emits a request and resolves with its ack. */
  #request<T>(event: string, payload: object): Promise<T> {
    return this.#connection.socket.timeout(this.#options.requestTimeoutMs ?? 10_000).emitWithAck(event, payload);
  }
}
