/**
 * socket-bridge-client: the Socket.IO client for socket-bridge that resumes by itself
 * (docs/client.md; the wire protocol is docs/protocol.md).
 * @module
 */

export { SocketBridgeClient } from './client.js';
export { SocketBridgeError } from './errors.js';
export { MemoryStorage, defaultStorage, type KeyValueStorage } from './storage.js';
export { STORED_EVENT_TYPES, type StoredEventType } from './event-types.js';
export type * from './types.js';
