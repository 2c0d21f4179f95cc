import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CutProxy } from "../connections/harness.js";
import { freePort } from "../helpers/redis-server.js";
import { launchChromium } from "./chromium.js";

const RESULTS = fileURLToPath(new URL("../../test-results", import.meta.url));

/** The demo as `npm start` runs it: the built CLI in a process of its own, on an SQLite file. */
async function serve(file: string, port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ["dist/cli/main.js", "serve", "--port", String(port), "--host", "127.0.0.1", "--store", `sqlite:${file}`],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = "";
    const read = (chunk: Buffer) => {
      out += chunk;
      if (out.includes(`:${port}`)) resolve();
    };
    child.stdout!.on("data", read);
    child.stderr!.on("data", read);
    child.once("exit", (code) => reject(new Error(`stowage serve exited with ${code}: ${out}`)));
  });
  return child;
}

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

// Never skipped: test/setup/services.ts finds or installs Chromium, or fails the run saying why.
describe("the demo's live panel in Chromium", () => {
  const dir = mkdtempSync(join(tmpdir(), "stowage-live-panel-"));
  const file = join(dir, "sessions.db");
  let port: number;
  let server: ChildProcess | undefined;
  let proxy: CutProxy;
  let browser: Browser;

  beforeAll(async () => {
    port = await freePort();
    server = await serve(file, port);
    proxy = await new CutProxy(port).start();
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await proxy?.stop();
    await kill(server);
    rmSync(dir, { recursive: true, force: true });
  });

  async function signIn(page: Page, base: string, name: string): Promise<void> {
    await page.goto(base);
    await page.getByLabel("Your name").fill(name);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe(`Hello, ${name}`);
  }

  const state = (page: Page) => page.locator("#live-state").textContent();

  it("survives a cut network and a server restart without a reload, shows what it missed, and shows revoked", async () => {
    const laptop = await browser.newContext({ viewport: { width: 900, height: 900 } });
    const phone = await browser.newContext({ viewport: { width: 390, height: 800 } });
    try {
      // The laptop reaches the server through the proxy, so the test can cut its network; the phone does not.
      const a = await laptop.newPage();
      const b = await phone.newPage();
      await signIn(a, `http://127.0.0.1:${proxy.port}`, "Grace");
      await signIn(b, `http://127.0.0.1:${port}`, "Grace");
      await expect.poll(() => state(a), { timeout: 10_000 }).toBe("Connected");
      await a.evaluate(() => {
        (window as unknown as { marker: string }).marker = "no reload";
      });

      // A live push: the phone's +1 shows on the laptop.
      await b.getByRole("button", { name: "+1" }).click();
      await expect.poll(() => a.locator("#counter").textContent()).toBe("1");

      // The network drops; while it is down the phone counts on; the laptop resumes and gets it.
      proxy.refuse(true);
      proxy.cut();
      await expect.poll(() => state(a), { timeout: 10_000 }).toMatch(/^Reconnecting/);
      await b.getByRole("button", { name: "+1" }).click();
      await expect.poll(() => b.locator("#counter").textContent()).toBe("2");
      proxy.refuse(false);
      await expect.poll(() => state(a), { timeout: 15_000 }).toMatch(/^Resumed/);
      await expect.poll(() => a.locator("#counter").textContent()).toBe("2");

      // The server process dies and comes back on the same file; the laptop missed a push meanwhile.
      proxy.refuse(true);
      await kill(server);
      proxy.cut();
      server = await serve(file, port);
      await b.goto(`http://127.0.0.1:${port}`);
      await b.getByRole("button", { name: "+1" }).click();
      await expect.poll(() => b.locator("#counter").textContent()).toBe("3");
      proxy.refuse(false);
      await expect.poll(() => a.locator("#counter").textContent(), { timeout: 20_000 }).toBe("3");
      await expect.poll(() => state(a)).toMatch(/^Resumed/);
      const log = await a.locator("#live-log li").allTextContents();
      expect(log.filter((line) => line.includes("Counter is now")).length).toBe(3);
      expect(log.some((line) => line.includes("Counter is now 3"))).toBe(true);
      expect(await a.evaluate(() => (window as unknown as { marker?: string }).marker)).toBe("no reload");
      mkdirSync(RESULTS, { recursive: true });
      await a.screenshot({ path: join(RESULTS, "live-panel-resumed.png"), fullPage: true });

      // Revoked from the phone: the laptop's panel closes and says why.
      await b.getByRole("link", { name: "Devices" }).click();
      const rows = b.locator("ul.devices li");
      await expect.poll(() => rows.count()).toBe(2);
      await rows.filter({ hasNotText: "This device" }).getByRole("button", { name: "Revoke" }).click();
      await expect.poll(() => state(a), { timeout: 10_000 }).toMatch(/^Closed: revoked/);
      await a.screenshot({ path: join(RESULTS, "live-panel-revoked.png"), fullPage: true });
    } finally {
      await laptop.close();
      await phone.close();
    }
  }, 120_000);
});
