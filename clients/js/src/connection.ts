/**
 * The connection's life: one `socket.io-client` socket whose own reconnection is off, reopened
 * here after every loss (a dropped transport, a hub restart, a refused token) with capped
 * exponential backoff, and never given up on unless the hub refuses in a way no retry can fix.
 * It reports each change of state; what the hub says on a connection is the client's business.
 * @module
 */

import { io, type Socket } from 'socket.io-client';

import type { Backoff } from './backoff.js';
import type { ConnectionChange, ConnectionState } from './types.js';

/** What the connection needs from the client. */
export interface ConnectionSettings {
  transports: ('polling' | 'websocket' | 'webtransport')[] | undefined;
  connectTimeoutMs: number;
  backoff: Backoff;
  /** Builds the handshake's `auth`; called before every attempt. */
  handshake(): Promise<Record<string, unknown>>;
  /** Whether a refused handshake is final: retrying could not help. */
  isFinal(error: Error): boolean;
  /** Told every change of state. */
  onChange(change: ConnectionChange): void;
}

type ChangeDetail = Omit<ConnectionChange, 'state' | 'attempt'>;

export class Connection {
  /** The underlying socket (for diagnostics). */
  readonly socket: Socket;
  readonly #settings: ConnectionSettings;
  #state: ConnectionState = 'offline';
  #running = false;
  /** Attempts since the connection was last live. */
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(url: string, settings: ConnectionSettings) {
    this.#settings = settings;
    this.socket = io(url, {
      autoConnect: false,
      reconnection: false,
      forceNew: true,
      timeout: settings.connectTimeoutMs,
      ...(settings.transports ? { transports: settings.transports } : {}),
      auth: (send) => this.#authenticate(send),
    });
    this.socket.on('connect', () => this.#enter('connected'));
    this.socket.on('connect_error', (error) => {
      if (settings.isFinal(error)) this.#halt(error);
      else this.#retry({ error });
    });
    this.socket.on('disconnect', (reason) => {
      if (reason !== 'io client disconnect') this.#retry({ reason });
    });
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Between `start()` and `stop()` (or a final refusal). */
  get running(): boolean {
    return this.#running;
  }

  /** Connects, and keeps reconnecting until `stop()`. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#attempt = 0;
    this.#open();
  }

  /** Disconnects for good. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.socket.disconnect();
    this.#enter('offline', { reason: 'io client disconnect' });
  }

  /** Drops this connection and opens a new one after the backoff delay. */
  reconnect(reason: string): void {
    if (!this.#running) return;
    this.socket.disconnect();
    this.#retry({ reason });
  }

  /** The hub accepted the connection and is replaying what was missed. */
  established(): void {
    this.#enter('resuming');
  }

  /** Every room is live: the backoff starts over. */
  resumed(): void {
    this.#settings.backoff.reset();
    this.#attempt = 0;
    this.#enter('live');
  }

  #open(): void {
    this.#attempt += 1;
    this.#enter('connecting');
    this.socket.connect();
  }

  #retry(detail: ChangeDetail): void {
    if (!this.#running || this.#retryTimer !== undefined) return;
    const retryInMs = this.#settings.backoff.next();
    this.#enter('offline', { ...detail, retryInMs });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#open();
    }, retryInMs);
  }

  /** A refusal no retry can fix: stop, and say why. */
  #halt(error: Error): void {
    this.#running = false;
    this.socket.disconnect();
    this.#enter('offline', { error });
  }

  /** Socket.IO asks for `auth` once the transport is open; it may answer later. */
  #authenticate(send: (auth: object) => void): void {
    this.#settings.handshake().then(
      (auth) => {
        if (this.#running && this.#state === 'connecting') send(auth);
      },
      (error: unknown) => {
        if (!this.#running || this.#state !== 'connecting') return;
        this.socket.disconnect();
        this.#retry({ error: error instanceof Error ? error : new Error(String(error)) });
      },
    );
  }

  #enter(state: ConnectionState, detail: ChangeDetail = {}): void {
    this.#state = state;
    this.#settings.onChange({ state, attempt: this.#attempt, ...detail });
  }
}
