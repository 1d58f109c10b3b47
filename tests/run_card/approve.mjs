// The approval half of the MCP Apps run card, for tests/suite/approvals_card.rs: the same
// test host as host.mjs (the official MCP client over Streamable HTTP, the card in a
// sandboxed iframe in headless Chromium, the official ext-apps AppBridge as the host
// side), a background run that asks for a command's approval, and a click on the
// card's Approve or Deny. Prints one JSON line per check; a failed check exits non-zero.
//
// Env: TWOBOT_URL (…/mcp), CHROMIUM, PROMPT (the run's prompt), CLICK (Approve|Deny),
// SCREENSHOT (optional PNG path: the card while the approval is pending).

import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { AppBridge } from "@modelcontextprotocol/ext-apps/app-bridge";
import { chromium } from "playwright-core";

const LIMIT = 60_000; // generous: a busy 2-core machine
const click = process.env.CLICK;

function check(name, ok, detail) {
  console.log(JSON.stringify({ check: name, ok: !!ok, detail }));
  if (!ok) throw new Error(`check failed: ${name}: ${JSON.stringify(detail)}`);
}

// A host page as real hosts frame a card: scripts, no same origin, a postMessage relay.
const HOST_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>test host</title>
<style>body{margin:0;background:#fff}iframe{border:0;width:640px;height:900px;display:block}</style></head>
<body><iframe id="app" sandbox="allow-scripts" title="Codex run card"></iframe>
<script>
const frame = document.getElementById("app");
window.addEventListener("message", (e) => { if (e.source === frame.contentWindow) window.__toNode(e.data); });
window.__toApp = (m) => frame.contentWindow.postMessage(m, "*");
window.__load = (html) => { frame.srcdoc = html; };
</script></body></html>`;

const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(HOST_PAGE);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "approve-card-chromium-"));
const client = new Client(
  { name: "approve-card-test-host", version: "1.0.0" },
  { capabilities: { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } } } },
);
await client.connect(new StreamableHTTPClientTransport(new URL(process.env.TWOBOT_URL)));
let context;
try {
  const tool = (await client.listTools()).tools.find((t) => t.name === "run_codex_prompt");
  const content = (await client.readResource({ uri: tool._meta.ui.resourceUri })).contents[0];
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const errors = [];
  context.on("weberror", (e) => errors.push(String(e.error())));
  const page = await context.newPage({ viewport: { width: 640, height: 900 } });
  const transport = { async start() {}, async send(m) { await page.evaluate((x) => window.__toApp(x), m); }, async close() {} };
  await page.exposeFunction("__toNode", (m) => transport.onmessage && transport.onmessage(m));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const bridge = new AppBridge(
    client,
    { name: "approve-card-test-host", version: "1.0.0" },
    { serverTools: {}, openLinks: {} },
    { hostContext: { theme: "light", displayMode: "inline", toolInfo: { tool } } },
  );
  const initialized = new Promise((resolve) => { bridge.oninitialized = resolve; });
  await bridge.connect(transport);
  await page.evaluate((html) => window.__load(html), content.text);
  await initialized;
  const args = { prompt: process.env.PROMPT, background: true, sandbox: "workspace-write", approval_policy: "on-request", allow_edits: true };
  await bridge.sendToolInput({ arguments: args });
  const result = await client.callTool({ name: "run_codex_prompt", arguments: args });
  const runId = result.structuredContent && result.structuredContent.run_id;
  check("the background start returned a run id", !!runId, result.structuredContent);
  await bridge.sendToolResult(result);
  const frame = page.frames().find((f) => f !== page.mainFrame());

  // The card follows the run until the request is pending and its buttons are live.
  await frame.waitForFunction(() => {
    const b = document.querySelector("#approvals [data-approval] button.approve");
    return b && !b.disabled;
  }, null, { timeout: LIMIT });
  const shown = await frame.locator("#approvals").innerText();
  const boxVisible = await frame.locator("#approvals-box").isVisible();
  console.log(JSON.stringify({ shown }));
  check("the card shows the pending command and its cwd", boxVisible && shown.includes("$ " + process.env.COMMAND) && shown.includes("in " + process.env.CWD), shown);
  if (process.env.SCREENSHOT) {
    const height = await frame.evaluate(() => Math.ceil(document.body.getBoundingClientRect().height));
    await page.setViewportSize({ width: 640, height: Math.min(900, height) });
    await page.locator("#app").evaluate((f, h) => { f.style.height = h + "px"; }, height);
    await page.locator("#app").screenshot({ path: process.env.SCREENSHOT });
  }
  await frame.getByRole("button", { name: click, exact: true }).click();
  await frame.waitForFunction(() => ["completed", "failed"].includes(document.getElementById("status").dataset.status), null, { timeout: LIMIT });
  const gone = await frame.locator("#approvals-box").isHidden();
  check("the answered request leaves the card", gone, gone);
  const after = await client.callTool({ name: "get_codex_run", arguments: { run_id: runId, wait_sec: 0 } });
  console.log(JSON.stringify({ final: after.structuredContent }));
  check("the card raised no script error", errors.length === 0, errors);
  await page.close();
} finally {
  if (context) await context.close();
  await client.close();
  server.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
