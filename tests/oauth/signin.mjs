// The operator's side of 2Bot's built-in authorization server in a real browser, for
// tests/suite/oauth_builtin.rs: headless Chromium (playwright-core) opens the authorize
// URL, types the password into the field named `password`, submits, keeps the ticked
// scopes, clicks Allow, and prints the final redirect's query as one JSON line. The
// redirect to the client (https, off this machine) is answered by page.route, so nothing
// leaves loopback; any other request off loopback is refused and reported, as are CSP
// violations and console errors.
//
// Env: AUTHORIZE_URL, PASSWORD, REDIRECT_URI (prefix of the final redirect), CHROMIUM.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const authorizeUrl = process.env.AUTHORIZE_URL;
const redirectUri = process.env.REDIRECT_URI;
const origin = new URL(authorizeUrl).origin;
const LIMIT = 60_000; // generous: a busy 2-core machine

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "oauth-signin-chromium-"));
const t0 = Date.now();
const mark = (what) => report.steps.push(`${what} ${Date.now() - t0} ms`);
const report = { steps: [], redirect: null, query: null, offLoopback: [], console: [], pageErrors: [], scopes: [] };
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const page = await context.newPage();
  // Errors and warnings only (a CSP violation is an error); Chromium's verbose DOM hints are not findings.
  page.on("console", (m) => ["error", "warning"].includes(m.type()) && report.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));

  let arrived;
  const redirected = new Promise((resolve) => (arrived = resolve));
  await context.route("**/*", async (route) => {
    const url = route.request().url();
    if (url.startsWith(redirectUri)) {
      arrived(url);
      return route.fulfill({ status: 200, contentType: "text/plain", body: "the client got its code" });
    }
    if (new URL(url).origin !== origin) {
      report.offLoopback.push(url);
      return route.abort();
    }
    return route.continue();
  });

  mark("browser up");
  await page.goto(authorizeUrl, { timeout: LIMIT });
  mark("sign-in page");
  await page.fill("input[name=password]", process.env.PASSWORD);
  await Promise.all([
    page.waitForSelector("input[name=scope]", { timeout: LIMIT }),
    page.locator("form:has(input[name=password]) [type=submit]").first().click(),
  ]);
  mark("consent page");
  for (const box of await page.locator("input[name=scope]").all()) {
    report.scopes.push({ scope: await box.getAttribute("value"), checked: await box.isChecked() });
  }
  await page.locator("[name=decision][value=allow]").click();
  let timer;
  report.redirect = await Promise.race([
    redirected,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("no redirect to the client")), LIMIT))),
  ]);
  clearTimeout(timer); // else node waits for it before exiting, and the code expires meanwhile
  mark("redirected");
  report.query = Object.fromEntries(new URL(report.redirect).searchParams);
  console.log(JSON.stringify(report));
} catch (e) {
  console.log(JSON.stringify({ ...report, error: String(e && e.stack || e) }));
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
