/**
 * The application's handlers, by event type. A handler that throws is reported on the console
 * and does not stop the others, nor the client.
 * @module
 */

type AnyHandler = (payload: never) => void;

export class Handlers {
  readonly #byType = new Map<string, Set<AnyHandler>>();

  add(type: string, handler: AnyHandler): void {
    let set = this.#byType.get(type);
    if (!set) this.#byType.set(type, (set = new Set()));
    set.add(handler);
  }

  remove(type: string, handler: AnyHandler): void {
    this.#byType.get(type)?.delete(handler);
  }

  /** Calls every handler of `type` with `payload`, in the order they were added. */
  emit(type: string, payload: unknown): void {
    for (const handler of [...(this.#byType.get(type) ?? [])]) {
      try {
        (handler as (payload: unknown) => void)(payload);
      } catch (error) {
        console.error(`socket-bridge-client: a "${type}" handler threw`, error);
      }
    }
  }
}
