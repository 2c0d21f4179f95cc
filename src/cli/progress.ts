import type { Io } from "./args.js";

/** A progress line for long work: redrawn in place on a terminal, one line a second otherwise. */
export interface Progress {
  /** Reports the current position (`done` of `total` when the total is known). */
  update(done?: number): void;
  /** Clears the line on a terminal. */
  stop(): void;
}

/** Starts a progress line labelled `label`; with `total`, shows done/total and a percentage. */
export function progress(io: Io, label: string, total?: number): Progress {
  const started = Date.now();
  const every = io.tty ? 100 : 1000;
  let last = started;
  let position = 0;
  const draw = () => {
    last = Date.now();
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const count =
      total === undefined
        ? ""
        : ` ${position}/${total} (${Math.floor((position / Math.max(total, 1)) * 100)}%)`;
    const text = `${label}${count} ${seconds}s`;
    if (io.tty) io.status(text);
    else io.err(text);
  };
  // A timer keeps the line alive while one long store call (a sweep) gives no positions; it draws only
  // when nothing was drawn for a whole period, so a position update and a tick never print the same step.
  const timer = setInterval(() => {
    if (Date.now() - last >= every) draw();
  }, every);
  timer.unref();
  draw();
  return {
    update(done) {
      if (done !== undefined) position = done;
      if (Date.now() - last < every) return;
      draw();
    },
    stop() {
      clearInterval(timer);
      if (io.tty) io.status("");
    },
  };
}
