// Drives headless Debian chromium for tests/e2e/browser.rs. Arguments:
//   ALLOWED_PAGE DISALLOWED_PAGE GATEWAY TOKEN
// Loads each page (served from its own loopback origin), calls the gateway
// from page script with fetch, and prints one JSON object with what each
// call saw. The Rust test asserts on it; this script only reports.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [allowedPage, disallowedPage, gateway, token] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "gateway-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

// Runs in the page: one fetch, reported as plain data (errors included).
async function call(page, path, withToken) {
  return page.evaluate(async ({ url, token }) => {
    try {
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const res = await fetch(url, { headers });
      return { ok: true, status: res.status, body: await res.json() };
    } catch (e) {
      return { ok: false, error: String(e) };
    }
  }, { url: gateway + path, token: withToken ? token : null });
}

const out = {};
try {
  const page = await browser.newPage();
  await page.goto(allowedPage);
  out.authorized = await call(page, "/api/data", true);
  out.unauthorized = await call(page, "/api/data", false);
  await page.goto(disallowedPage);
  out.disallowed = await call(page, "/api/data", true);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
