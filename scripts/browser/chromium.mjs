// launch starts Debian's Chromium (/usr/bin/chromium, or $CHROMIUM)
// headless through playwright-core, with the flags this machine's closed
// network needs (no background connections, no QUIC, no GPU).
import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
