// A small MCP Apps host for tests/suite/run_card.rs: it connects to a running 2Bot over
// Streamable HTTP with the official MCP client, reads the run card the tool links
// (resources/read), shows it in a sandboxed iframe of a loopback page in headless
// Chromium (playwright-core over the DevTools protocol), and plays the host side of
// the bridge with the official @modelcontextprotocol/ext-apps AppBridge (its tools/call
// go to 2Bot through the same MCP session). It then drives the card the way a user
// would and prints one JSON line per check; any failed check exits non-zero.
//
// Env: TWOBOT_URL (…/mcp), CHROMIUM (executable), SCREENSHOT (PNG path to write).
// With LOST_RUN_ID (and TWOBOT_TOKEN, its owner's bearer token) it checks only how the
// card shows that run, which the server reports `lost` (its server died mid-run).

import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { AppBridge } from "@modelcontextprotocol/ext-apps/app-bridge";
import { chromium } from "playwright-core";

const url = process.env.TWOBOT_URL;
const executablePath = process.env.CHROMIUM;
const screenshot = process.env.SCREENSHOT;
const LIMIT = 60_000; // generous: a busy 2-core machine

function check(name, ok, detail) {
  console.log(JSON.stringify({ check: name, ok: !!ok, detail }));
  if (!ok) throw new Error(`check failed: ${name}: ${JSON.stringify(detail)}`);
}

async function connect() {
  const client = new Client(
    { name: "run-card-test-host", version: "1.0.0" },
    { capabilities: { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } } } },
  );
  const token = process.env.TWOBOT_TOKEN;
  const opts = token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : undefined;
  await client.connect(new StreamableHTTPClientTransport(new URL(url), opts));
  return client;
}

// The host page: an iframe with the sandbox real hosts use (scripts, no same origin),
// the card's declared CSP applied as a <meta> (connectDomains empty: connect-src 'none'),
// and a relay of the iframe's messages to Node. Messages carrying `pwned` (only the
// hostile payload sends them) are counted instead.
const HOST_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>test host</title>
<style>body{margin:0;background:#fff}iframe{border:0;width:640px;height:900px;display:block}</style></head>
<body><iframe id="app" sandbox="allow-scripts" title="Codex run card"></iframe>
<script>
window.__pwned = [];
const frame = document.getElementById("app");
window.addEventListener("message", (e) => {
  if (e.source !== frame.contentWindow) return;
  if (e.data && e.data.pwned !== undefined) { window.__pwned.push(e.data); return; }
  window.__toNode(e.data);
});
window.__toApp = (m) => frame.contentWindow.postMessage(m, "*");
window.__load = (html) => { frame.srcdoc = html; };
</script></body></html>`;

function cspOf(meta) {
  const csp = (meta && meta.ui && meta.ui.csp) || {};
  const list = (l) => (Array.isArray(l) && l.length ? l.join(" ") : "'none'");
  return [
    "default-src 'none'",
    "script-src 'unsafe-inline'",
    "style-src 'unsafe-inline'",
    `img-src data: ${csp.resourceDomains && csp.resourceDomains.length ? csp.resourceDomains.join(" ") : ""}`.trim(),
    `connect-src ${list(csp.connectDomains)}`,
    `frame-src ${list(csp.frameDomains)}`,
    "base-uri 'none'",
  ].join("; ");
}

// Node side of the postMessage relay, as a Transport for AppBridge.
class PageTransport {
  constructor(page) { this.page = page; }
  async start() {}
  async send(message) {
    if (process.env.RUN_CARD_TRACE) console.error("host->app", JSON.stringify(message).slice(0, 400));
    await this.page.evaluate((m) => window.__toApp(m), message);
  }
  async close() { this.onclose && this.onclose(); }
}

// `call`: how the model's call is made (default: run_codex_prompt with `args`).
async function openCard(browser, client, view, args, theme, call) {
  const page = await browser.newPage({ viewport: { width: 640, height: 900 } });
  const transport = new PageTransport(page);
  await page.exposeFunction("__toNode", (m) => {
    if (process.env.RUN_CARD_TRACE) console.error("app->host", JSON.stringify(m).slice(0, 400));
    if (transport.onmessage) transport.onmessage(m);
  });
  await page.goto(host.url);
  const tool = (await client.listTools()).tools.find((t) => t.name === "run_codex_prompt");
  const bridge = new AppBridge(
    client,
    { name: "run-card-test-host", version: "1.0.0" },
    { serverTools: {}, openLinks: {} },
    { hostContext: { theme, displayMode: "inline", toolInfo: { tool } } },
  );
  const initialized = new Promise((resolve) => { bridge.oninitialized = resolve; });
  await bridge.connect(transport);
  const cspTag = `<meta http-equiv="Content-Security-Policy" content="${cspOf(view.meta)}">`;
  await page.evaluate((html) => window.__load(html), view.html.replace("<head>", "<head>" + cspTag));
  await initialized;
  await bridge.sendToolInput({ arguments: args });
  // The model's call: its result goes to the card, as the host would forward it.
  const result = await (call ? call() : client.callTool({ name: "run_codex_prompt", arguments: args }));
  await bridge.sendToolResult(result);
  const frame = page.frames().find((f) => f !== page.mainFrame());
  return { page, frame, result };
}

async function text(frame, id) { return frame.locator("#" + id).innerText(); }
async function statusIs(frame, status) {
  await frame.waitForFunction((s) => document.getElementById("status").dataset.status === s, status, { timeout: LIMIT });
}

// ---- the loopback host page ----
const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(HOST_PAGE);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const host = { url: `http://127.0.0.1:${server.address().port}/` };

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "run-card-chromium-"));
let browser, context;
const client = await connect();
try {
  // What the tool links and what the server serves.
  const tools = (await client.listTools()).tools;
  const run = tools.find((t) => t.name === "run_codex_prompt");
  const uri = run._meta && run._meta.ui && run._meta.ui.resourceUri;
  check("run_codex_prompt links a ui:// view", typeof uri === "string" && uri.startsWith("ui://"), uri);
  const read = await client.readResource({ uri });
  const content = read.contents[0];
  check("the view is text/html;profile=mcp-app", content.mimeType === "text/html;profile=mcp-app", content.mimeType);
  check("its CSP allows no connect domains", Array.isArray(content._meta.ui.csp.connectDomains) && content._meta.ui.csp.connectDomains.length === 0, content._meta.ui.csp);
  const view = { html: content.text, meta: content._meta };

  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  browser = { newPage: (opts) => context.newPage(opts) };
  const errors = [];
  context.on("weberror", (e) => errors.push(String(e.error())));

  // 0. A run lost with its server: shown as ended, with the reason; nothing to cancel.
  const lostRunId = process.env.LOST_RUN_ID;
  if (lostRunId) {
    const follow = () => client.callTool({ name: "get_codex_run", arguments: { run_id: lostRunId, wait_sec: 0 } });
    const { page, frame, result } = await openCard(browser, client, view, { prompt: "scenario:hang", background: true }, "light", follow);
    check("the server reports the run lost", result.structuredContent && result.structuredContent.status === "lost", result.structuredContent);
    await statusIs(frame, "lost");
    const shown = await text(frame, "errors");
    check("the card says why it ended", /lost: the server restarted or died while it ran/.test(shown), shown);
    const cancelDisabled = await frame.locator("#cancel").isDisabled();
    check("a lost run offers no Cancel", cancelDisabled, cancelDisabled);
    const elapsed = await text(frame, "elapsed");
    await page.waitForTimeout(2500);
    const later = await text(frame, "elapsed");
    check("its clock stopped: it is over", later === elapsed, { elapsed, later });
    await page.close();
  }

  // 1. Live progress, then completion (a background run, followed by the card itself).
  if (!lostRunId) {
    const { page, frame, result } = await openCard(browser, client, view, { prompt: "scenario:long", background: true }, "light");
    check("the background start returned a run id", !!(result.structuredContent && result.structuredContent.run_id), result.structuredContent);
    await frame.waitForFunction(() => document.querySelectorAll("#commands li").length >= 2, null, { timeout: LIMIT });
    const live = await text(frame, "status");
    const commands = await text(frame, "commands");
    const shown = await frame.evaluate(() => document.getElementById("errors").innerText + " | " + document.getElementById("message").innerText);
    check("progress appears live while the run works", live === "running" && /step 1\s+exit 0/.test(commands), { live, commands, shown });
    const announced = await text(frame, "live");
    check("the status change is announced (aria-live)", /Codex run running/.test(announced), announced);
    await statusIs(frame, "completed");
    const message = await text(frame, "message");
    const usage = await text(frame, "usage");
    const all = await text(frame, "commands");
    check("completion renders the final message, all commands and token usage", message === "long answer" && /input 120/.test(usage) && /output 30/.test(usage) && /step 6\s+exit 0/.test(all), { message, usage, all });
    const cancelDisabled = await frame.locator("#cancel").isDisabled();
    check("Cancel is off once the run ended", cancelDisabled, cancelDisabled);
    await page.close();
  }

  // 2. Cancel from the card (by keyboard) stops the run.
  if (!lostRunId) {
    const { page, frame, result } = await openCard(browser, client, view, { prompt: "scenario:hang", background: true }, "dark");
    const runId = result.structuredContent.run_id;
    await frame.waitForFunction(() => /sleep 300/.test(document.getElementById("commands").innerText), null, { timeout: LIMIT });
    const theme = await frame.evaluate(() => document.documentElement.dataset.theme);
    check("the card follows the host's theme", theme === "dark", theme);
    // Steering from the card reaches the server; on the exec backend its refusal shows.
    const steerShown = await frame.locator("#steer-box").isVisible();
    check("a background run offers the steer box", steerShown, steerShown);
    await frame.locator("#steer-text").fill("also run the tests");
    await frame.locator("#steer-send").click();
    await frame.waitForFunction(() => /app-server/.test(document.getElementById("errors").innerText), null, { timeout: LIMIT });
    const steerError = await text(frame, "errors");
    check("the steer refusal is shown as text", /TWOBOT_CODEX_BACKEND=app-server/.test(steerError), steerError);
    await frame.locator("#cancel").focus();
    await page.keyboard.press("Enter");
    await statusIs(frame, "cancelled");
    const after = await client.callTool({ name: "get_codex_run", arguments: { run_id: runId, wait_sec: 0 } });
    check("the server says the run was cancelled", after.structuredContent.status === "cancelled", after.structuredContent.status);
    console.log(JSON.stringify({ cancelled_run: runId }));
    await page.close();
  }

  // 3. A hostile final message stays text; then the screenshot of a finished card.
  if (!lostRunId) {
    const { page, frame } = await openCard(browser, client, view, { prompt: "scenario:hostile fix the parser", background: true }, "light");
    await statusIs(frame, "completed");
    const dom = await frame.evaluate(() => {
      const m = document.getElementById("message");
      return {
        text: m.textContent,
        injected: m.querySelectorAll("script, img, iframe, object, embed, [onerror], [onmouseover], b").length,
        scripts: document.querySelectorAll("script").length,
        links: Array.from(m.querySelectorAll("a")).map((a) => a.getAttribute("href")),
        strong: m.querySelectorAll("strong").length,
        code: m.querySelectorAll("code").length,
        items: m.querySelectorAll("li").length,
        title: document.title,
      };
    });
    // An injected handler would fire once its image fails to load: give it the time.
    await page.waitForTimeout(1000);
    const pwned = await page.evaluate(() => window.__pwned);
    check("no injected script ran", pwned.length === 0 && dom.title !== "pwned", { pwned, title: dom.title });
    check("no element was injected", dom.injected === 0 && dom.scripts === 1, dom);
    check("the hostile markup is shown as text", dom.text.includes("<script>parent.postMessage") && dom.text.includes("<img src=x onerror="), dom.text);
    check("only the https link is a link", JSON.stringify(dom.links) === JSON.stringify(["https://example.com/spec"]), dom.links);
    check("the Markdown around it is rendered", dom.strong === 1 && dom.code >= 2 && dom.items === 2, dom);
    const files = await text(frame, "files");
    const commands = await text(frame, "commands");
    check("file changes and failing exit codes show", /src\/lib\.rs/.test(files) && /docs\/notes\.md/.test(files) && /cargo clippy\s+exit 1/.test(commands), { files, commands });
    const height = await frame.evaluate(() => Math.ceil(document.body.getBoundingClientRect().height));
    await page.setViewportSize({ width: 640, height: Math.min(900, height) });
    await page.locator("#app").evaluate((f, h) => { f.style.height = h + "px"; }, height);
    if (screenshot) await page.locator("#app").screenshot({ path: screenshot });
    await page.close();
  }
  check("the card raised no script error", errors.length === 0, errors);
} finally {
  if (context) await context.close();
  await client.close();
  server.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
