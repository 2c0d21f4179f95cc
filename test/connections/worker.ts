import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { TEST_KEYS, type Wire } from "./harness.js";

/** A live-server worker process and the JSON lines it prints. */
export class LiveWorker {
  readonly child: ChildProcess;
  readonly events: Record<string, unknown>[] = [];
  readonly exited: Promise<void>;

  constructor(url: string, scope: string, port = 0, wire: Wire = "ws") {
    this.child = spawn(
      process.execPath,
      ["--import", "tsx", "test/workers/live-server.ts", url, scope, String(port), wire],
      {
        stdio: ["ignore", "pipe", "inherit"],
        env: { ...process.env, STOWAGE_TEST_KEY: TEST_KEYS[0]!.key },
      },
    );
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      try {
        this.events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // Not ours (a library's output): ignored.
      }
    });
    this.exited = new Promise((resolve) => this.child.once("exit", () => resolve()));
  }

  /** Resolves the port once the worker listens. */
  async port(ms = 20_000): Promise<number> {
    const event = await this.event((e) => e.event === "listening", ms);
    return event.port as number;
  }

  async event(match: (e: Record<string, unknown>) => boolean, ms = 5000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`worker event not seen in ${ms} ms: ${JSON.stringify(this.events)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}
