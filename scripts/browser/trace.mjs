// Opens a block's trace on a gossipchain node's dashboard in headless
// Chromium:
//
//   node scripts/browser/trace.mjs URL SCREENSHOT INDEX [PEER_ID...]
//
// It opens URL, clicks block INDEX in the chain table, and waits until the
// trace panel shows this node and every PEER_ID with the time each first
// had the block. It saves a screenshot to SCREENSHOT and prints one JSON
// line of the rows it saw. Exit status 1 on any failure.
import { launch } from "./chromium.mjs";

const [url, shot, index, ...peers] = process.argv.slice(2);
if (!url || !shot || index === undefined) {
  console.error("usage: trace.mjs URL SCREENSHOT INDEX [PEER_ID...]");
  process.exit(2);
}

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(url);
  await page.locator("#live.on").waitFor({ timeout: 15000 });
  const row = page.locator(`#chain tr.block[data-index="${index}"]`);
  await row.waitFor({ timeout: 15000 });
  await row.click();
  await page.locator("#trace").waitFor({ state: "visible", timeout: 5000 });
  for (const id of peers) {
    await page.locator(`#trace-rows tr[data-peer="${id}"] td.first-seen`).waitFor({ timeout: 15000 });
  }
  await page.locator("#trace-rows tr.self td.first-seen").waitFor({ timeout: 15000 });
  const rows = await page.$$eval("#trace-rows tr", (trs) => trs.map((tr) => ({
    peer: tr.dataset.peer,
    self: tr.classList.contains("self"),
    firstSeenMs: Number(tr.querySelector("td.first-seen")?.dataset.ms || 0),
    text: tr.innerText.replace(/\s+/g, " ").trim(),
  })));
  const summary = (await page.locator("#trace-summary").textContent()).trim();
  await page.screenshot({ path: shot, fullPage: true });
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  console.log(JSON.stringify({ index: Number(index), rows, summary, screenshot: shot }));
} catch (err) {
  console.error("trace test:", err.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
