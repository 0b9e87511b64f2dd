/**
 * The error a refused request rejects with.
 * @module
 */

export class SocketBridgeError extends Error {
  /** The hub's code: `forbidden`, `not_found`, `invalid_payload`, `internal`, ... */
  readonly code: string;

  constructor(code: string, message = `socket-bridge refused the request: ${code}`) {
    super(message);
    this.name = 'SocketBridgeError';
    this.code = code;
  }
}
