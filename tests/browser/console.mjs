// Drives headless Debian chromium through the admin console for
// tests/e2e/browser.rs. Arguments: CONSOLE_URL TOKEN EMAIL SCREENSHOT
// Pastes the token, finds the user, revokes its newest session, prints
// `{"revoked": sid}` and waits for a line on standard input (the Rust test
// checks the gateway meanwhile), then disables the user, tries a bad scope
// to see the server's message, and prints one JSON object of what it saw.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [consoleUrl, token, email, screenshot] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const profile = mkdtempSync(join(tmpdir(), "gateway-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

// Chromium reports a Content-Security-Policy violation as a console error.
const out = { pageErrors: [], cspViolations: [], dialogs: [] };
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy/i.test(m.text())) out.cspViolations.push(m.text());
  });
  // Destructive actions ask first; the operator says yes.
  page.on("dialog", (d) => { out.dialogs.push(d.message()); d.accept(); });
  await page.goto(consoleUrl);

  await page.fill("#token", token);
  await page.click("#connect");
  await page.waitForFunction(() => document.getElementById("status").textContent === "connected");
  await page.fill("#search", email.slice(0, 6));
  await page.click("#find");
  const row = page.locator("#users tr", { hasText: email });
  await row.click();
  await page.waitForFunction((e) => document.getElementById("u-email").textContent === e, email);
  const sessionRows = page.locator("#sessions tr");
  await page.waitForFunction(() => document.querySelectorAll("#sessions tr button").length > 0);
  out.sessionsBefore = await page.locator("#sessions tr button").count();
  const newest = await sessionRows.first().locator("td").first().textContent();
  await sessionRows.first().locator("button").click();
  await page.waitForFunction((n) => document.querySelectorAll("#sessions tr button").length === n - 1, out.sessionsBefore);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ revoked: newest }));
  await lines.next();

  await page.click("#toggle");
  await page.waitForFunction(() => document.getElementById("u-status").textContent === "disabled");
  out.statusAfter = await page.textContent("#u-status");
  await page.fill("#scope", "two words");
  await page.click("#grant");
  await page.waitForFunction(() => document.getElementById("error").textContent !== "");
  out.errorShown = await page.textContent("#error");
  out.kept = await page.evaluate(() => ({
    url: location.href,
    storage: JSON.stringify(localStorage) + JSON.stringify(sessionStorage),
    cookies: document.cookie,
    tokenField: document.getElementById("token").value,
  }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
process.exit(0);
