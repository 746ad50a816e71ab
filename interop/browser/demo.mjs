// The demo page of examples/server in a real browser: Playwright (playwright-core) driving
// Debian's chromium. Run by TestDemoPageInChromium in examples/server, which builds and runs
// the server and restarts it when this script asks:
//
//   this script prints "STOP"          the test stops the server, then writes "STOPPED"
//   this script prints "START <chat>"  the test starts it again on the same port and bolt file,
//                                      posts a message into <chat> at once (before the page has
//                                      reconnected), then writes "STARTED"
//
// Environment: PARLEY_URL (the server), CHROMIUM (the browser, default /usr/bin/chromium),
// SCREENSHOTS (a directory for PNGs of the page at 390 px and at desktop width; optional).
// It prints "PASS" and exits 0, or prints what failed and exits 1.
import {chromium} from "playwright-core";
import {mkdtempSync, rmSync} from "node:fs";
import {tmpdir} from "node:os";
import {join} from "node:path";
import {createInterface} from "node:readline";
import assert from "node:assert/strict";

const base = process.env.PARLEY_URL;
const screenshots = process.env.SCREENSHOTS || "";
const lines = createInterface({input: process.stdin})[Symbol.asyncIterator]();
const started = Date.now();
const step = (what) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);

// ask tells the Go test to act and waits for its answer.
async function ask(line, want) {
  console.log(line);
  const {value, done} = await lines.next();
  if (done || value.trim() !== want) throw new Error(`asked ${line}, got ${done ? "end of input" : value}`);
}

const userDataDir = mkdtempSync(join(tmpdir(), "parley-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  viewport: {width: 1280, height: 900},
  timeout: 30000,
});
const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(15000);

// Console errors and uncaught exceptions fail the test. While the server is down, the browser
// itself reports refused connections (fetch and WebSocket) on the console: those, and only
// those, are expected then.
let serverDown = false;
const problems = [];
const refused = /ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|WebSocket connection to .* failed/;
page.on("console", (m) => {
  if (m.type() !== "error" && m.type() !== "warning") return;
  if (serverDown && refused.test(m.text() + " " + (m.location().url || ""))) return;
  problems.push(`console ${m.type()}: ${m.text()} (${m.location().url || ""})`);
});
page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));

const v = {
  status: page.locator("#v-status"), text: page.locator("#v-text"), send: page.locator("#v-send"),
  log: page.locator("#v-log li"), typing: page.locator("#v-typing"),
};
const o = {
  status: page.locator("#o-status"), text: page.locator("#o-text"), send: page.locator("#o-send"),
  log: page.locator("#o-log li"), typing: page.locator("#o-typing"), chats: page.locator("#o-chats button"),
};
const online = async () => {
  await page.waitForFunction(() => document.querySelector("#v-status").dataset.state === "on" &&
    document.querySelector("#o-status").dataset.state === "on" &&
    !document.querySelector("#v-text").disabled && !document.querySelector("#o-text").disabled);
};
// texts lists the messages of a log, in order, without their meta line.
const texts = (log) => log.evaluateAll((lis) => lis.map((li) => {
  const c = li.cloneNode(true);
  c.querySelectorAll(".meta, .who").forEach((n) => n.remove());
  return c.textContent;
}));
const markOf = (log, text) => log.filter({hasText: text}).locator(".state").getAttribute("data-state");
const waitMark = async (log, text, want) => {
  await page.waitForFunction(({sel, text, want}) => [...document.querySelectorAll(sel)]
    .some((li) => li.textContent.includes(text) && li.querySelector(".state")?.dataset.state === want),
  {sel: log === v.log ? "#v-log li" : "#o-log li", text, want});
};

try {
  step("open /");
  await page.goto(base + "/");
  await page.locator("#v-start").waitFor();
  await page.waitForFunction(() => document.querySelector("#o-status").dataset.state === "on");
  if (screenshots) {
    await page.click("#about summary");
    await page.screenshot({path: join(screenshots, "demo-start.png")});
    await page.click("#about summary");
  }
  assert.equal(await v.text.isDisabled(), true, "the visitor input is enabled before a conversation");

  step("the visitor starts a conversation: it appears live in the operator's list");
  await page.click("#v-start");
  await o.chats.first().waitFor();
  assert.equal(await o.chats.count(), 1);
  await online();

  step("visitor → operator, with the visitor's typing shown to the operator");
  await v.text.pressSequentially("Hello, is anyone there?", {delay: 5});
  await page.waitForFunction(() => /is typing/.test(document.querySelector("#o-typing").textContent));
  await v.send.click();
  await o.log.filter({hasText: "Hello, is anyone there?"}).waitFor();
  await v.log.filter({hasText: "Hello, is anyone there?"}).waitFor();
  await page.waitForFunction(() => document.querySelector("#o-typing").textContent === "");
  assert.equal(await v.text.inputValue(), "", "the visitor's input is not cleared after sending");

  step("the operator types (Bezlimit update_typing), the visitor sees it");
  await o.text.pressSequentially("Yes, Olga here", {delay: 5});
  await page.waitForFunction(() => /Olga Operator is typing/.test(document.querySelector("#v-typing").textContent));
  await o.send.click();
  await v.log.filter({hasText: "Yes, Olga here"}).waitFor();
  await o.log.filter({hasText: "Yes, Olga here"}).waitFor();
  await page.waitForFunction(() => document.querySelector("#v-typing").textContent === "");

  step("read marks both ways");
  await waitMark(v.log, "Hello, is anyone there?", "read"); // the operator read the visitor's message
  await waitMark(o.log, "Yes, Olga here", "read");          // the visitor read the operator's

  await v.text.fill("A second question");
  await v.send.click();
  await o.log.filter({hasText: "A second question"}).waitFor();
  await waitMark(v.log, "A second question", "read");
  const want = ["Hello, is anyone there?", "Yes, Olga here", "A second question"];
  assert.deepEqual(await texts(v.log), want);
  assert.deepEqual(await texts(o.log), want);

  step("reload: both panes come back with the conversation and its marks");
  await page.reload();
  await online();
  await page.waitForFunction((n) => document.querySelectorAll("#v-log li").length === n &&
    document.querySelectorAll("#o-log li").length === n, want.length);
  assert.deepEqual(await texts(v.log), want, "the visitor's history after a reload");
  assert.deepEqual(await texts(o.log), want, "the operator's chat after a reload");
  await waitMark(v.log, "A second question", "read");
  await waitMark(o.log, "Yes, Olga here", "read");
  assert.equal(await o.chats.count(), 1);
  assert.equal(await page.locator("#v-start-box").isHidden(), true);

  step("the server stops under the page: inputs disable");
  const chat = await o.chats.first().getAttribute("data-chat");
  serverDown = true;
  await ask("STOP", "STOPPED");
  await page.waitForFunction(() => document.querySelector("#v-text").disabled && document.querySelector("#o-text").disabled &&
    document.querySelector("#v-status").dataset.state === "off" && document.querySelector("#o-status").dataset.state === "off");
  // Sending now is impossible, and nothing throws.
  assert.equal(await v.send.isDisabled(), true);
  assert.equal(await o.send.isDisabled(), true);
  if (screenshots) await page.screenshot({path: join(screenshots, "demo-offline.png")});

  step("the server starts again on the same bolt file and port: the page reconnects");
  await ask("START " + chat, "STARTED"); // the test posts "Sent while you were away" at once
  await online();
  serverDown = false;
  const away = "Sent while you were away";
  await v.log.filter({hasText: away}).waitFor();
  await o.log.filter({hasText: away}).waitFor();

  step("after the restart: messages both ways, nothing lost or doubled");
  await v.text.fill("Back again");
  await v.send.click();
  await o.log.filter({hasText: "Back again"}).waitFor();
  await o.text.fill("Welcome back");
  await o.send.click();
  await v.log.filter({hasText: "Welcome back"}).waitFor();
  const after = [...want, away, "Back again", "Welcome back"];
  assert.deepEqual(await texts(v.log), after, "the visitor's log after the restart");
  assert.deepEqual(await texts(o.log), after, "the operator's log after the restart");
  await waitMark(o.log, "Welcome back", "read");
  await waitMark(v.log, "Back again", "read");

  step("desktop width: side by side");
  await page.waitForTimeout(200);
  if (screenshots) await page.screenshot({path: join(screenshots, "demo-desktop.png")});

  step("phone width (390 px): tabs, no sideways overflow");
  await page.setViewportSize({width: 390, height: 844});
  await page.reload();
  await page.waitForFunction(() => document.querySelector("#v-status").dataset.state === "on" && document.querySelectorAll("#v-log li").length > 0);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, "the page scrolls sideways at 390 px");
  assert.equal(await page.locator("#tab-operator").isVisible(), true, "no tabs at 390 px");
  assert.equal(await page.locator("#operator").isVisible(), false, "both panes show at 390 px");
  if (screenshots) await page.screenshot({path: join(screenshots, "demo-390-visitor.png")});
  await page.click("#tab-operator");
  await page.locator("#operator").waitFor();
  await page.waitForFunction(() => document.querySelector("#o-status").dataset.state === "on");
  const overflow2 = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow2, 0, "the operator tab scrolls sideways at 390 px");
  assert.deepEqual(await texts(o.log), after);
  if (screenshots) await page.screenshot({path: join(screenshots, "demo-390-operator.png")});

  assert.deepEqual(problems, [], "console errors or uncaught exceptions");
  step("done");
  console.log("PASS");
} catch (e) {
  console.error(e && e.stack || String(e));
  if (problems.length) console.error("console:\n" + problems.join("\n"));
  try {
    const dump = await page.evaluate(() => ({
      visitor: document.querySelector("#visitor").innerText, operator: document.querySelector("#operator").innerText,
    }));
    console.error("page:\n" + JSON.stringify(dump, null, 2));
    if (screenshots) await page.screenshot({path: join(screenshots, "demo-failure.png")});
  } catch (_) { /* the page is gone */ }
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(userDataDir, {recursive: true, force: true});
  process.exit(process.exitCode || 0);
}
