import type { Flash } from "./views.js";

/** What the demo keeps in a session. */
export interface DemoAttributes {
  counter: number;
  device: string;
  flash: Flash;
  /** On a live panel's connection session: the id of the HTTP session (the device) that opened it. */
  opener: string;
}
