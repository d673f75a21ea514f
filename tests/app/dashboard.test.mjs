// tests/app/dashboard.test.mjs: the dashboard in a real browser (headless
// Chromium, driven by playwright-core), against a running coil serve.
// Run by tests/app/test_dashboard.c:
//   node dashboard.test.mjs BASE_URL SCREENSHOT_DIR PLAYWRIGHT_CORE_DIR CHROMIUM
// Exits 0 when every step passed; otherwise prints the step and exits 1.
import { pathToFileURL } from "node:url";

const [base, shots, pwDir, chromiumPath] = process.argv.slice(2);
const { chromium } = await import(pathToFileURL(`${pwDir}/index.mjs`).href);

let step = "starting";
const fail = (why) => {
  console.error(`dashboard test: ${step}: ${why}`);
  process.exit(1);
};
const timer = setTimeout(() => fail("timed out (60 s)"), 60000);

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  /* bypassCSP: playwright evaluates its waits as strings; the page itself
   * runs under its own policy (no eval). */
  const page = await browser.newPage({ viewport: { width: 1360, height: 1100 }, bypassCSP: true });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", (d) => { errors.push(`dialog: ${d.message()}`); d.dismiss(); });
  const api = page.request;
  const post = async (path, body) => {
    const r = await api.post(`${base}${path}`, { data: body });
    if (r.status() !== 202) fail(`POST ${path}: ${r.status()} ${await r.text()}`);
    return (await r.json()).id;
  };
  const statusIn = (table, id) =>
    page.locator(`#${table} tr[data-id="${id}"] td.status`).first();

  step = "the page loads and its numbers go live";
  await page.goto(`${base}/`);
  await page.waitForSelector("#live.on", { timeout: 10000 });
  const first = await page.textContent("#live");
  await page.waitForFunction((t) => document.querySelector("#live").textContent !== t, first,
                             { timeout: 5000 });
  await page.waitForSelector("#loops tr[data-loop]");
  if (!/ms/.test(await page.textContent("#loops"))) fail("no lag figures in the loop panel");

  step = "a posted job appears and succeeds without a reload";
  const done = await post("/jobs/demo.sleep", { ms: 2500 }); /* seen running: snapshots are 1 s apart */
  await page.locator(`#running tr[data-id="${done}"]`).waitFor({ timeout: 10000 });
  /* ... and in the worker process that runs it, with its pid and RSS. */
  await page.locator(`#workers td.job a[href="#job/${done}"]`).waitFor({ timeout: 5000 });
  if (!/MB/.test(await page.textContent("#workers"))) fail("no RSS in the worker panel");
  await page.waitForFunction(
    (id) => document.querySelector(`#recent tr[data-id="${id}"] td.status`)?.textContent === "succeeded",
    done, { timeout: 15000 });
  await page.screenshot({ path: `${shots}/dashboard-overview.png`, fullPage: true });

  step = "a running job is cancelled from its button";
  const long = await post("/jobs/demo.sleep", { ms: 60000 });
  const cancel = page.locator(`#running tr[data-id="${long}"] button[data-act="cancel"]`);
  await cancel.waitFor({ timeout: 10000 });
  await cancel.click();
  await page.waitForFunction(
    (id) => document.querySelector(`#recent tr[data-id="${id}"] td.status`)?.textContent === "cancelled",
    long, { timeout: 15000 });

  step = "a dead job is retried from its button";
  const dead = await post("/jobs/demo.sleep?max_attempts=1&timeout_ms=50", { ms: 5000 });
  const retry = page.locator(`#failures tr[data-id="${dead}"] button[data-act="retry"]`);
  await retry.waitFor({ timeout: 15000 });
  const answer = page.waitForResponse((r) => r.url().endsWith(`/jobs/${dead}/retry`));
  await retry.click();
  const r = await answer;
  if (r.status() !== 202) fail(`retry answered ${r.status()}`);
  const again = (await r.json()).id;
  await page.locator(`#recent tr[data-id="${again}"]`).waitFor({ timeout: 10000 });
  if (again === dead) fail("the retry is not a new job");

  step = "a stall shows in the loop panel";
  await api.get(`${base}/demo/spin?ms=600`);
  await page.waitForFunction(
    () => [...document.querySelectorAll("#loops td.stalls")].some((td) => Number(td.textContent) > 0),
    null, { timeout: 10000 });
  await page.waitForFunction(() => /stall:/.test(document.querySelector("#stall-report")?.textContent || ""),
                             null, { timeout: 10000 });
  await page.screenshot({ path: `${shots}/dashboard-stall.png`, fullPage: true });

  step = "a job's own page follows it live";
  const watched = await post("/jobs/demo.sleep", { ms: 700 });
  await page.goto(`${base}/#job/${watched}`);
  await page.waitForFunction(() => /succeeded/.test(document.querySelector("#job-title").textContent),
                             null, { timeout: 15000 });
  if (!/status/.test(await page.textContent("#job-events"))) fail("no events in the job's log");
  await page.screenshot({ path: `${shots}/dashboard-job.png`, fullPage: true });

  step = "the list filters by state";
  await page.goto(`${base}/#jobs`);
  await page.selectOption("#f-state", "cancelled");
  await page.click("#f-go");
  /* The page showed the unfiltered list first: wait for the filtered one. */
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll("#list tr[data-id]")];
    return rows.some((r) => r.dataset.id === id) &&
           rows.every((r) => r.querySelector(".pill").textContent === "cancelled");
  }, long, { timeout: 5000 });
  if ((await page.locator(`#list tr[data-id="${done}"]`).count()) !== 0) fail("the filter let a succeeded job through");

  step = "no script errors";
  if (errors.length) fail(errors.join("; "));
  console.log("dashboard test: every step passed");
} catch (e) {
  fail(e && e.message ? e.message.split("\n")[0] : String(e));
} finally {
  clearTimeout(timer);
  await browser.close();
}
