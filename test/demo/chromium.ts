import { type Browser, chromium } from "playwright-core";
import { CHROMIUM } from "../setup/services.js";

/** Debian's Chromium, headless, as every browser test drives it (test/setup/services.ts finds or installs it). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
