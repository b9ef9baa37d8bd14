// The dashboard in a real browser: slipd (a real process on 127.0.0.1) serves the page itself,
// headless Chromium (Debian's, driven by playwright-core) loads it, a publish load runs, and the
// page's msgs/s figure must be above zero and change while it does; a stream created here must
// appear in the stream table with a message count that changes under acknowledged publishes; the
// RPC method table shows its empty state (slipd serves no RPC methods). Saves a screenshot.
//
//   node dashboard.test.mjs SLIPD SLIP SCREENSHOT.png
//
// Fails, saying why, when Chromium or a program is missing: a browser test that cannot run has
// not passed. Every wait is bounded; the figures are asserted, never the speed.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [slipdPath, slipPath, screenshot] = process.argv.slice(2);
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const LIVENESS_MS = 30000;

function fail(why) {
  console.error(`browser test FAILED: ${why}`);
  process.exitCode = 1;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, ms = LIVENESS_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function main() {
  if (!slipdPath || !slipPath || !screenshot) throw new Error("usage: node dashboard.test.mjs SLIPD SLIP SCREENSHOT.png");
  for (const [what, p] of [["slipd", slipdPath], ["slip", slipPath]]) {
    if (!existsSync(p)) throw new Error(`${what} not found at ${p}`);
  }
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath} (apt-get install chromium, or scripts/install-deps.sh)`);
  }
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (e) {
    throw new Error(`playwright-core is not installed next to this script (npm ci): ${e.message}`);
  }

  const dir = mkdtempSync(join(tmpdir(), "slipd-browser-"));
  const ready = join(dir, "ready");
  const slipd = spawn(slipdPath, ["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--threads", "2",
                                  "--data-dir", join(dir, "data"), "--ready-file", ready, "--log-level", "warn"],
                      { stdio: ["ignore", "inherit", "inherit"] });
  let slipdExited = false;
  slipd.on("exit", () => { slipdExited = true; });
  const loads = new Set();
  let loading = false;
  let stopAcked = false;
  let browser = null;
  try {
    const lines = await waitFor("slipd's ready file", () => {
      if (slipdExited) throw new Error("slipd exited at start");
      return existsSync(ready) ? readFileSync(ready, "utf8") : null;
    }, 10000);
    const addr = (proto) => (lines.split("\n").find((l) => l.startsWith(proto + " ")) || "").split(" ")[1];
    const native = addr("native"), http = addr("http");
    if (!native || !http) throw new Error(`ready file lacks native or http: ${lines}`);
    console.log(`slipd pid ${slipd.pid}: native ${native}, http ${http}`);

    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu"],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`http://${http}/`, { timeout: LIVENESS_MS });
    await page.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: LIVENESS_MS });
    const charts = await page.evaluate(() => typeof uPlot !== "undefined" && document.querySelectorAll(".uplot").length);
    console.log(`dashboard live; uPlot charts: ${charts}`);

    // Before any stream exists, and for RPC (slipd serves no methods): the tables' empty states.
    const emptyText = (table) => page.evaluate((t) => {
      const row = document.querySelector(`#${t} tbody tr.empty`);
      return row ? row.textContent : null;
    }, table);
    const noStreams = await waitFor("the stream table's empty state", () => emptyText("streams-table"));
    const noMethods = await waitFor("the RPC table's empty state", () => emptyText("rpc-table"));
    if (!noMethods.includes("no RPC methods")) throw new Error(`RPC table: unexpected empty state '${noMethods}'`);
    console.log(`empty tables: '${noStreams}', '${noMethods}'`);

    // A stream, and acknowledged publishes into it, one batch after another until we stop.
    const add = spawn(slipPath, ["--server", native, "stream", "add", "browser-orders", "--subjects", "orders.>"],
                      { stdio: "inherit" });
    const addCode = await new Promise((r) => add.on("exit", r));
    if (addCode !== 0) throw new Error(`slip stream add exited with ${addCode}`);
    (async () => {
      while (!stopAcked) {
        const pub = spawn(slipPath, ["--server", native, "pub", "--ack", "orders.new", "order", "-n", "50"], { stdio: "ignore" });
        loads.add(pub);
        await new Promise((r) => pub.on("exit", r));
        loads.delete(pub);
        await sleep(50);
      }
    })();
    const streamMessages = () => page.evaluate(() => {
      const td = document.querySelector('#streams-table tr[data-stream="browser-orders"] td:nth-child(3)');
      return td ? Number(td.dataset.value) : null;
    });
    const m1 = await waitFor("the stream's row with messages", async () => { const v = await streamMessages(); return v > 0 ? v : null; });
    const m2 = await waitFor("the stream's message count to change", async () => {
      const v = await streamMessages();
      return v > m1 ? v : null;
    });
    const subjects = await page.textContent('#streams-table tr[data-stream="browser-orders"] td:nth-child(2)');
    if (subjects !== "orders.>") throw new Error(`stream row subjects: '${subjects}'`);
    console.log(`stream table: browser-orders messages ${m1} -> ${m2}`);

    // The load: a subscriber, and publishers started one after another until we stop.
    const sub = spawn(slipPath, ["--server", native, "--name", "browser-sub", "sub", "load.>"], { stdio: "ignore" });
    loads.add(sub);
    loading = true;
    (async () => {
      while (loading) {
        const pub = spawn(slipPath, ["--server", native, "--name", "browser-pub", "pub", "load.x", "0123456789abcdef", "-n", "20000"],
                          { stdio: "ignore" });
        loads.add(pub);
        await new Promise((r) => pub.on("exit", r));
        loads.delete(pub);
        await sleep(50);
      }
    })();

    const rate = () => page.evaluate(() => Number(document.getElementById("msgs-in-rate").dataset.value));
    const first = await waitFor("msgs/s in above zero", async () => { const v = await rate(); return v > 0 ? v : null; });
    const firstText = await page.textContent("#msgs-in-rate");
    console.log(`msgs/s in: ${firstText} (${first})`);
    const second = await waitFor("msgs/s in to change", async () => { const v = await rate(); return v > 0 && v !== first ? v : null; });
    console.log(`msgs/s in changed to ${await page.textContent("#msgs-in-rate")} (${second})`);
    const rows = await waitFor("the connections table", () => page.evaluate(() => document.querySelectorAll("#connections-table tbody tr").length));
    const names = await page.evaluate(() => [...document.querySelectorAll("#connections-table tbody tr td:nth-child(3)")].map((td) => td.textContent));
    if (!names.includes("browser-sub")) throw new Error(`connections table lacks browser-sub: ${names}`);
    console.log(`connections table: ${rows} rows (${names.join(", ")})`);
    const out = await waitFor("msgs/s out above zero", () => page.evaluate(() => Number(document.getElementById("msgs-out-rate").dataset.value) > 0));
    if (!out) throw new Error("msgs/s out stayed 0");
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`screenshot: ${screenshot}`);
    if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  } finally {
    loading = false;
    stopAcked = true;
    for (const p of loads) p.kill("SIGTERM");
    if (browser) await browser.close();
    if (!slipdExited) {
      slipd.kill("SIGTERM");
      await waitFor("slipd to exit", () => slipdExited, 15000).catch(() => slipd.kill("SIGKILL"));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => { if (!process.exitCode) console.log("browser test: 1 passed, 0 failed"); },
  (e) => fail(e.message),
);
