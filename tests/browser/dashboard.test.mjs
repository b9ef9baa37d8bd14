// The dashboard in a real browser: slipd (a real process on 127.0.0.1) serves the page itself,
// headless Chromium (Debian's, driven by playwright-core) loads it, a publish load runs, and the
// page's msgs/s figure must be above zero and change while it does; a stream created here must
// appear in the stream table with a message count that changes under acknowledged publishes; a
// durable consumer reading it must appear in the consumer table with deliveries that grow; the
// UDP panel must show sessions and packet figures that change under a load over udp:// (with FEC:
// repairs counted); the RPC method table shows its empty state (slipd serves no RPC methods). A
// second slipd without streams or UDP shows the consumer table's and the UDP panel's "not there"
// notes. Saves a screenshot.
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
                                  "--data-dir", join(dir, "data"), "--udp-listen", "127.0.0.1:0", "--udp-fec", "4,2",
                                  "--ready-file", ready, "--log-level", "warn"],
                      { stdio: ["ignore", "inherit", "inherit"] });
  // A second slipd with neither streams nor UDP, for the "not there" notes.
  const plainReady = join(dir, "plain-ready");
  const plain = spawn(slipdPath, ["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--threads", "1",
                                  "--ready-file", plainReady, "--log-level", "warn"],
                      { stdio: ["ignore", "inherit", "inherit"] });
  let plainExited = false;
  plain.on("exit", () => { plainExited = true; });
  let slipdExited = false;
  slipd.on("exit", () => { slipdExited = true; });
  const loads = new Set();
  let loading = false;
  let stopAcked = false;
  let udpLoading = false;
  let browser = null;
  try {
    const lines = await waitFor("slipd's ready file", () => {
      if (slipdExited) throw new Error("slipd exited at start");
      return existsSync(ready) ? readFileSync(ready, "utf8") : null;
    }, 10000);
    const addrIn = (text, proto) => (text.split("\n").find((l) => l.startsWith(proto + " ")) || "").split(" ")[1];
    const addr = (proto) => addrIn(lines, proto);
    const native = addr("native"), http = addr("http"), udp = addr("udp"), udpKey = addr("udp-key");
    if (!native || !http || !udp || !udpKey) throw new Error(`ready file lacks native, http, udp or udp-key: ${lines}`);
    console.log(`slipd pid ${slipd.pid}: native ${native}, http ${http}, udp ${udp}`);
    const overUdp = ["--server", `udp://${udp}`, "--server-key", udpKey, "--udp-fec", "4,2"];

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
    const noConsumers = await waitFor("the consumer table's empty state", () => emptyText("consumers-table"));
    if (!noConsumers.includes("no streams")) throw new Error(`consumer table: unexpected empty state '${noConsumers}'`);
    console.log(`empty tables: '${noStreams}', '${noMethods}', '${noConsumers}'`);
    // This slipd listens on UDP: the panel is shown, its "not enabled" note is not.
    await waitFor("the UDP panel", () => page.evaluate(() =>
      document.getElementById("udp-panel").dataset.enabled === "true" && !document.getElementById("udp-on").hidden &&
      document.getElementById("udp-off").hidden));
    const udpAddress = await page.textContent("#udp-address");
    if (udpAddress !== udp) throw new Error(`UDP panel address '${udpAddress}', expected ${udp}`);

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

    // A durable consumer reading the stream while the acknowledged publishes go on.
    const consumerAdd = spawn(slipPath, ["--server", native, "consumer", "add", "browser-orders", "READER", "--ack-wait", "1m"],
                              { stdio: "inherit" });
    const consumerCode = await new Promise((r) => consumerAdd.on("exit", r));
    if (consumerCode !== 0) throw new Error(`slip consumer add exited with ${consumerCode}`);
    const consume = spawn(slipPath, ["--server", native, "consume", "browser-orders", "--durable", "READER"], { stdio: "ignore" });
    loads.add(consume);
    const consumerFigure = (col) => page.evaluate((c) => {
      const td = document.querySelector(`#consumers-table tr[data-stream="browser-orders"][data-consumer="READER"] td:nth-child(${c})`);
      return td ? Number(td.dataset.value) : null;
    }, col);
    // Columns: stream, consumer, ack, pending, ack pending, redelivered, waiting, delivered seq,
    // ack floor, delivered/s, delivered, redeliveries.
    const d1 = await waitFor("the consumer's row with deliveries", async () => { const v = await consumerFigure(11); return v > 0 ? v : null; });
    const d2 = await waitFor("the consumer's deliveries to change", async () => { const v = await consumerFigure(11); return v > d1 ? v : null; });
    const deliveredRate = await waitFor("the consumer's delivered/s above zero", async () => { const v = await consumerFigure(10); return v > 0 ? v : null; });
    const floor = await waitFor("the consumer's ack floor", async () => { const v = await consumerFigure(9); return v > 0 ? v : null; });
    const consumerName = await page.textContent('#consumers-table tr[data-stream="browser-orders"][data-consumer="READER"] td:nth-child(2)');
    if (consumerName !== "READER") throw new Error(`consumer row name '${consumerName}'`);
    console.log(`consumer table: READER deliveries ${d1} -> ${d2}, delivered/s ${deliveredRate}, ack floor ${floor}`);

    // A load over UDP: a subscriber that stays (one session held) and publishers one after another.
    const udpSub = spawn(slipPath, [...overUdp, "--name", "browser-udp-sub", "sub", "udp.>"], { stdio: "ignore" });
    loads.add(udpSub);
    udpLoading = true;
    (async () => {
      while (udpLoading) {
        const pub = spawn(slipPath, [...overUdp, "--name", "browser-udp-pub", "pub", "udp.x", "0123456789abcdef", "-n", "2000"],
                          { stdio: "ignore" });
        loads.add(pub);
        await new Promise((r) => pub.on("exit", r));
        loads.delete(pub);
        await sleep(50);
      }
    })();
    const udpFigure = (id) => page.evaluate((i) => Number(document.getElementById(i).dataset.value), id);
    const sessions = await waitFor("UDP sessions above zero", async () => { const v = await udpFigure("udp-sessions"); return v > 0 ? v : null; });
    const pin1 = await waitFor("UDP packets in", async () => { const v = await udpFigure("udp-packets-in"); return v > 0 ? v : null; });
    const pin2 = await waitFor("UDP packets in to change", async () => { const v = await udpFigure("udp-packets-in"); return v > pin1 ? v : null; });
    const pinRate = await waitFor("UDP packets/s in above zero", async () => { const v = await udpFigure("udp-packets-in-rate"); return v > 0 ? v : null; });
    const poutRate = await waitFor("UDP packets/s out above zero", async () => { const v = await udpFigure("udp-packets-out-rate"); return v > 0 ? v : null; });
    const repairs = await waitFor("FEC repairs received", async () => { const v = await udpFigure("udp-fec-repair-in"); return v > 0 ? v : null; });
    const fecConns = await udpFigure("udp-fec-connections");
    if (!(fecConns > 0)) throw new Error(`UDP panel: FEC connections ${fecConns}`);
    console.log(`UDP panel: sessions ${sessions}, packets in ${pin1} -> ${pin2}, packets/s in ${pinRate} out ${poutRate}, ` +
                `FEC repairs in ${repairs}, FEC connections ${fecConns}, ` +
                `chart: ${await page.evaluate(() => document.querySelectorAll("#chart-udp .uplot").length)}`);

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

    // The slipd without streams or UDP: the consumer table says why it is empty, the UDP panel
    // shows only its "not enabled" note.
    const plainLines = await waitFor("the second slipd's ready file", () => {
      if (plainExited) throw new Error("the second slipd exited at start");
      return existsSync(plainReady) ? readFileSync(plainReady, "utf8") : null;
    }, 10000);
    const plainHttp = addrIn(plainLines, "http");
    const plainPage = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    plainPage.on("pageerror", (e) => errors.push(e.message));
    await plainPage.goto(`http://${plainHttp}/`, { timeout: LIVENESS_MS });
    await plainPage.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: LIVENESS_MS });
    await plainPage.waitForFunction(() => document.getElementById("udp-panel").dataset.enabled === "false", null, { timeout: LIVENESS_MS });
    const off = await plainPage.evaluate(() => ({
      note: document.getElementById("udp-off").hidden ? null : document.getElementById("udp-off").textContent,
      figuresHidden: document.getElementById("udp-on").hidden,
      consumers: (document.querySelector("#consumers-table tbody tr.empty") || {}).textContent,
    }));
    if (!off.note || !off.note.includes("not enabled") || !off.figuresHidden) throw new Error(`UDP panel without UDP: ${JSON.stringify(off)}`);
    if (!off.consumers || !off.consumers.includes("no streams")) throw new Error(`consumer table without streams: ${JSON.stringify(off)}`);
    console.log(`without UDP and streams: '${off.note}', '${off.consumers}'`);
    if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  } finally {
    loading = false;
    stopAcked = true;
    udpLoading = false;
    for (const p of loads) p.kill("SIGTERM");
    if (browser) await browser.close();
    if (!slipdExited) {
      slipd.kill("SIGTERM");
      await waitFor("slipd to exit", () => slipdExited, 15000).catch(() => slipd.kill("SIGKILL"));
    }
    if (!plainExited) {
      plain.kill("SIGTERM");
      await waitFor("the second slipd to exit", () => plainExited, 15000).catch(() => plain.kill("SIGKILL"));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => { if (!process.exitCode) console.log("browser test: 1 passed, 0 failed"); },
  (e) => fail(e.message),
);
