// annulus-bench's report.html in a real browser (Debian's chromium, driven by
// playwright-core): the page loads offline with no console error, draws one
// mark per measured point and a tooltip with the knob value, and its in-page
// advisor picks what annulus::rank_candidates picked for every goal the page
// lists under "checks" (the recall slider and text boxes moved as a user
// would). Saves a screenshot.
//
//   node report_test.cjs REPORT.html SCREENSHOT.png
//
// Exit 77 (ctest: skipped) when chromium or playwright-core is missing,
// unless ANNULUS_REQUIRE_BROWSER=1 (CI), where that is a failure.
"use strict";
const fs = require("fs");
const path = require("path");

const [report, screenshot] = process.argv.slice(2);
if (!report || !screenshot) {
  console.error("usage: node report_test.cjs REPORT.html SCREENSHOT.png");
  process.exit(2);
}
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
function skip(why) {
  if (process.env.ANNULUS_REQUIRE_BROWSER === "1") {
    console.error("FAIL: " + why + " (ANNULUS_REQUIRE_BROWSER=1)");
    process.exit(1);
  }
  console.log("skipped: " + why);
  process.exit(77);
}
let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch (e) {
  skip("no playwright-core (npm ci --prefix " + __dirname + ")");
}
if (!fs.existsSync(chromiumPath)) skip("no chromium at " + chromiumPath + " (apt-get install chromium)");

let failures = 0;
function check(ok, what) {
  console.log((ok ? "ok   " : "FAIL ") + what);
  if (!ok) ++failures;
}

(async () => {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("console", m => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", e => errors.push(String(e)));
  // Offline: any request beyond the file itself is an error.
  const requests = [];
  page.on("request", r => { if (!r.url().startsWith("file:")) requests.push(r.url()); });
  await page.goto("file://" + path.resolve(report));

  const data = await page.evaluate(() => JSON.parse(document.getElementById("measurements").textContent));
  check(data.curves.length > 0, `the page embeds ${data.curves.length} curves`);
  check(data.curves.some(c => c.annulus) && data.checks.length > 0, "annulus curves and the C++ picks are embedded");

  // One mark per measured point, per curve.
  const marks = await page.evaluate(() => {
    const count = {};
    document.querySelectorAll("#chart .mark").forEach(m => { count[m.dataset.curve] = (count[m.dataset.curve] || 0) + 1; });
    return count;
  });
  for (const c of data.curves)
    check(marks[c.name] === c.points.length, `${c.name}: ${marks[c.name]} marks for ${c.points.length} points`);
  const bars = await page.locator("#bytes-bars .bar").count();
  check(bars === data.curves.length, `one bytes-per-vector bar per curve (${bars})`);

  // Hover shows the knob value: on a mark with a knob that no other mark covers.
  const target = await page.evaluate(() => {
    for (const m of document.querySelectorAll("#chart .mark")) {
      if (!m.dataset.setting) continue;
      const box = m.getBoundingClientRect();
      const x = box.left + box.width / 2, y = box.top + box.height / 2;
      if (document.elementFromPoint(x, y) === m) return { x, y, curve: m.dataset.curve, setting: m.dataset.setting };
    }
    return null;
  });
  check(target !== null, "a mark with a knob value can be hovered");
  if (target) {
    await page.mouse.move(target.x, target.y);
    const tip = await page.locator("#tooltip").innerText();
    check(tip.includes(target.setting) && tip.includes(target.curve),
          `hover on ${target.curve} ${target.setting}: "${tip.replace(/\n/g, " | ")}"`);
  }

  // The recommendation follows the controls as the C++ ranking says it must.
  async function setGoals(g, useSlider) {
    if (useSlider) {
      // The slider is on -log10(1 - recall); it writes the recall box rounded to 4 digits.
      await page.locator("#recall-slider").fill(String(-Math.log10(1 - g.target_recall)));
    } else {
      await page.locator("#target-recall").fill(String(g.target_recall));
    }
    await page.locator("#ram-budget").fill(g.ram_budget_bytes === null ? "" : String(g.ram_budget_bytes));
    await page.locator("#p99").fill(g.p99_us === null ? "" : g.p99_us + "us");
    await page.locator("#plan-n").fill(String(g.plan_n || data.rows));
  }
  const seen = new Set();
  let i = 0;
  const asRead = v => (v === null ? Infinity : v);
  for (const want of data.checks) {
    await setGoals(want.goals, i++ % 2 === 1);
    const got = await page.locator("#recommendation").evaluate(e => ({ ...e.dataset }));
    const complaint = await page.locator("#control-error").innerText();
    // The page must have read exactly these goals (a stale pick after a
    // refused entry, or a slider rounding the target, would pass otherwise).
    const read = JSON.parse(got.goals, (k, v) => v);
    const g = want.goals;
    const readAsGiven = complaint === "" && read.target_recall === g.target_recall &&
        (read.ram_budget_bytes ?? Infinity) === asRead(g.ram_budget_bytes) &&
        (read.p99_us ?? Infinity) === asRead(g.p99_us) && read.plan_n === (g.plan_n || data.rows);
    seen.add(got.pick + " " + got.setting + " " + got.verdict);
    // Same order, and each rank's planned p99 and bytes within 1e-9 (the
    // growth models; log may differ in a last bit between libm and V8).
    const pageRanks = JSON.parse(got.ranked);
    const near = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
    const sameOrder = pageRanks.length === want.ranked.length &&
        pageRanks.every((p, j) => p.rank === want.ranked[j].rank && near(p.planned_p99_us, want.ranked[j].planned_p99_us) &&
                                  near(p.planned_bytes, want.ranked[j].planned_bytes));
    check(readAsGiven && got.verdict === want.verdict && got.pick === want.pick && got.setting === want.setting &&
              sameOrder,
          `recall ${g.target_recall}, RAM ${g.ram_budget_bytes ?? "open"}, p99 ${g.p99_us ?? "open"} us, ` +
          `${g.plan_n} vectors${readAsGiven ? "" : " (NOT read as given: " + got.goals + " " + complaint + ")"}: ` +
          `page ${got.verdict} "${got.pick}" ${got.setting}; C++ ${want.verdict} "${want.pick}" ${want.setting}` +
          (sameOrder ? `; all ${want.ranked.length} ranks agree`
                     : `; ranks differ: page ${got.ranked} C++ ${JSON.stringify(want.ranked)}`));
  }
  check(seen.size >= 2, `the goals move the recommendation (${seen.size} distinct picks)`);

  // A bad entry is reported beside the controls, not thrown.
  await page.locator("#plan-n").fill("lots");
  const complaint = await page.locator("#control-error").innerText();
  check(complaint.includes("count"), `a bad item count is explained: "${complaint}"`);

  // The screenshot: RAM-rich serving of 10^8 vectors at recall 0.95 and 1 ms.
  await setGoals({ target_recall: 0.95, ram_budget_bytes: 256e9, p99_us: 1000, plan_n: 1e8 }, false);
  await page.locator("#ram-budget").fill("256GB");
  await page.locator("#p99").fill("1ms");
  await page.locator("#plan-n").fill("1e8");
  const typed = await page.locator("#recommendation").evaluate(e => e.dataset.pick + " " + e.dataset.setting);
  await page.locator("#ram-budget").fill("256000000000");
  await page.locator("#p99").fill("1000us");
  await page.locator("#plan-n").fill("100000000");
  const raw = await page.locator("#recommendation").evaluate(e => e.dataset.pick + " " + e.dataset.setting);
  check(typed === raw, `units are read as annulus-bench reads them (256GB, 1ms, 1e8 = 256000000000, 1000us, 100000000): ${typed}`);
  await page.locator("#ram-budget").fill("256GB");
  await page.locator("#p99").fill("1ms");
  await page.locator("#plan-n").fill("1e8");
  await page.mouse.move(0, 0);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log("wrote " + screenshot);

  check(errors.length === 0, "no console errors" + (errors.length ? ": " + errors.join("; ") : ""));
  check(requests.length === 0, "no network requests" + (requests.length ? ": " + requests.join(", ") : ""));
  await browser.close();
  if (failures) {
    console.error(`${failures} check(s) failed`);
    process.exit(1);
  }
})().catch(e => {
  console.error(e);
  process.exit(1);
});
