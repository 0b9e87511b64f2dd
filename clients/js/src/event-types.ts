/**
 * The types of the events the hub stores (each has a `room` and `seq`).
 * @module
 */

/** Every stored event type, for registering one handler for all of them. */
export const STORED_EVENT_TYPES = [
  'photo.uploaded',
  'photo.processing.started',
  'photo.processing.progress',
  'photo.processing.completed',
  'photo.processing.failed',
  'photo.deleted',
  'system.maintenance',
] as const;

export type StoredEventType = (typeof STORED_EVENT_TYPES)[number];
