// Drives a gossipchain node's dashboard in headless Chromium:
//
//   node scripts/browser/dashboard.mjs URL SCREENSHOT [TEXT] [OTHER_URL...]
//
// It opens URL, checks the page shows the node, types TEXT into the page's
// box and adds it, waits until the chain table shows that block (pushed by
// the node's event stream, not reloaded), then, for each OTHER_URL (another
// node's dashboard), waits until that page shows the block too. It saves a
// screenshot of the first page to SCREENSHOT and prints one JSON line of
// what it saw (the peers' agents as the peers table shows them included). Exit status 1 on any failure.
//
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM); playwright-core
// drives it (npm ci --prefix scripts/browser).
import { launch } from "./chromium.mjs";

const [url, shot, text = "typed in the browser", ...others] = process.argv.slice(2);
if (!url || !shot) {
  console.error("usage: dashboard.mjs URL SCREENSHOT [TEXT] [OTHER_URL...]");
  process.exit(2);
}

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(url);
  await page.locator("#live.on").waitFor({ timeout: 15000 });
  // The event stream can be live before the first /status has filled in
  // the node's ID (its placeholder is "…"): wait for the ID itself.
  await page.waitForFunction(() => !["", "…"].includes(document.getElementById("node-id").textContent.trim()), null, { timeout: 15000 });
  const id = (await page.locator("#node-id").textContent()).trim();
  const before = Number(await page.locator("#height").textContent());

  await page.fill("#add-data", text);
  await page.click("#add-form button[type=submit]");
  const row = page.locator("#chain tr.block", { hasText: text });
  await row.first().waitFor({ timeout: 15000 });
  const index = Number(await row.first().getAttribute("data-index"));
  await page.waitForFunction((i) => Number(document.getElementById("height").textContent) >= i, index, { timeout: 15000 });

  const seenOn = [];
  for (const other of others) {
    const p = await browser.newPage();
    await p.goto(other);
    await p.locator("#chain tr.block", { hasText: text }).first().waitFor({ timeout: 20000 });
    seenOn.push(other);
    await p.close();
  }
  // Let the peer list catch up with the peers' new heads (re-asked 0.5 s
  // after the head moves, shown 1 s after) before the picture.
  await page.waitForTimeout(1500);
  await page.screenshot({ path: shot, fullPage: true });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  // What the peers table says each peer runs.
  const agents = await page.locator("#peers .agent").allTextContents();
  console.log(JSON.stringify({ id, before, index, text, seenOn, agents, screenshot: shot }));
} catch (err) {
  console.error("dashboard test:", err.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
