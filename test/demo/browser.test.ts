import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Demo, startDemo } from "../../src/demo/index.js";
import { SqliteStore } from "../../src/stores/sqlite/index.js";

import { launchChromium } from "./chromium.js";

const RESULTS = fileURLToPath(new URL("../../test-results", import.meta.url));
// Never skipped: test/setup/services.ts finds or installs Chromium, or fails the run saying why.
describe("demo app in Chromium", () => {
  const dir = mkdtempSync(join(tmpdir(), "stowage-browser-"));
  let demo: Demo;
  let browser: Browser;

  beforeAll(async () => {
    demo = await startDemo({ store: new SqliteStore({ path: join(dir, "sessions.db") }), port: 0 });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await demo?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function signIn(page: Page, name: string): Promise<void> {
    await page.goto(demo.url);
    await page.getByLabel("Your name").fill(name);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe(`Hello, ${name}`);
  }

  it("revokes one device from another; the revoked one is signed out on reload", async () => {
    const laptop = await browser.newContext({ viewport: { width: 900, height: 760 } });
    const phone = await browser.newContext({
      viewport: { width: 390, height: 760 },
      userAgent:
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    });
    try {
      const a = await laptop.newPage();
      const b = await phone.newPage();
      await signIn(a, "Ada <Lovelace>");
      await signIn(b, "Ada <Lovelace>");

      await a.getByRole("button", { name: "+1" }).click();
      await expect.poll(() => a.locator("#counter").textContent()).toBe("1");

      await a.getByRole("link", { name: "Devices" }).click();
      const rows = a.locator("ul.devices li");
      await expect.poll(() => rows.count()).toBe(2);
      const current = rows.filter({ hasText: "This device" });
      await expect.poll(() => current.count()).toBe(1);
      expect(await current.locator("button").count()).toBe(0);
      const other = rows.filter({ hasText: "Safari on macOS" });
      expect(await other.count()).toBe(1);

      mkdirSync(RESULTS, { recursive: true });
      await a.screenshot({ path: join(RESULTS, "devices.png"), fullPage: true });

      await other.getByRole("button", { name: "Revoke" }).click();
      await expect.poll(() => a.locator(".flash").textContent()).toContain("Safari on macOS");
      await expect.poll(() => rows.count()).toBe(1);

      await b.reload();
      await expect.poll(() => b.locator("h1").textContent()).toBe("Sign in");
      expect(await b.getByLabel("Your name").isVisible()).toBe(true);

      // The revoking device is still signed in.
      await a.goto(demo.url);
      expect(await a.locator("h1").textContent()).toBe("Hello, Ada <Lovelace>");
    } finally {
      await laptop.close();
      await phone.close();
    }
  });

  it("a long unbroken name wraps, 64 emoji sign in, and an RTL override is refused with a reason", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 760 } });
    try {
      const page = await context.newPage();
      mkdirSync(RESULTS, { recursive: true });
      const long = "W".repeat(64);
      await signIn(page, long);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow).toBeLessThanOrEqual(0);
      await page.screenshot({ path: join(RESULTS, "long-name.png"), fullPage: true });
      await page.getByRole("button", { name: "Sign out", exact: true }).click();

      const emoji = "😀".repeat(64);
      await signIn(page, emoji);
      await page.screenshot({ path: join(RESULTS, "emoji-name.png"), fullPage: true });
      await page.getByRole("button", { name: "Sign out", exact: true }).click();

      await page.goto(demo.url);
      await page.getByLabel("Your name").fill("\u202egnp.exe");
      await page.getByRole("button", { name: "Sign in" }).click();
      await expect.poll(() => page.locator(".flash").textContent()).toContain("direction-changing");
      expect(await page.locator("h1").textContent()).toBe("Sign in");
      await page.screenshot({ path: join(RESULTS, "rtl-refused.png"), fullPage: true });
    } finally {
      await context.close();
    }
  });
});
