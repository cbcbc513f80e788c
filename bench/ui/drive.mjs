// Drives the official Agent Chat UI in headless Chromium against `rimas serve` (run by agent_chat_ui.sh).
//
// Four flows, each on a new thread (a fresh page load without ?threadId):
//   (a) approve: 1 open the UI, 2 send a message and wait for the streamed answer, 3 wait for the approval
//       card, 4 click Accept and wait for "Refund of 120.00 on A-17 approved by ...";
//   (b) edit:    5 new thread up to the card, change the amount to 80 in the card's edit form,
//                6 submit and wait for "Refund of 80.00 on A-17 approved with edits by ...";
//   (c) ignore:  7 new thread up to the card, click Ignore, wait for the run to end, check (on the page and
//                through GET /threads/{id}/state) that no refund message was added and nothing is pending;
//   (d) resolve: 8 the same with "Mark as Resolved" (the UI sends command.goto = "__end__", no decision).
// After every flow the thread's state is read from the API to check the decision the graph received.
// Each step saves a screenshot in OUT_DIR (01-start.png ... 08-resolved.png; a failing step saves
// NN-<name>-FAILED.png instead) and the script exits 1 naming the flow and step that failed, with the UI's
// toasts and the API errors seen during that step. Browser console errors/warnings, page errors, failed
// requests and HTTP errors go to OUT_DIR/browser.log; every request to the API (method, URL, body, status,
// and the response body of errors) goes to OUT_DIR/api-requests.jsonl. A failing step also prints the run
// requests (with their JSON bodies) made during it and the thread's last messages read from the API.
//
// Environment: UI_URL (page to open, with ?apiUrl=&assistantId=), API_URL, OUT_DIR, PW_MODULES (a folder
// whose node_modules holds playwright-core), CHROMIUM (browser executable), STEP_TIMEOUT_MS (default 30000).

import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") {
    console.error(`drive.mjs: ${name} is not set`);
    process.exit(2);
  }
  return value;
};

const UI_URL = env("UI_URL");
const API_URL = env("API_URL").replace(/\/$/, "");
const OUT_DIR = env("OUT_DIR");
const PW_MODULES = env("PW_MODULES");
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const STEP_TIMEOUT_MS = Number(env("STEP_TIMEOUT_MS", "30000"));

const MESSAGE = "Where is my order A-17?";
const ANSWER_TEXT = "I propose a refund of 120.00.";
const APPROVED_TEXT = /Refund of 120\.00 on A-17 approved by /;
const EDITED_AMOUNT = "80";
const EDITED_TEXT = /Refund of 80\.00 on A-17 approved with edits by /;
const ANY_REFUND_TEXT = /Refund of [0-9.]+ on A-17/;
// The v1 HITL card says "Approve"; the older agent-inbox card (create-agent-chat-app 0.1.x) says "Accept".
const APPROVE_BUTTON = /^\s*(approve|accept)\s*$/i;

const require = createRequire(path.join(path.resolve(PW_MODULES), "package.json"));
const { chromium } = require("playwright-core");

mkdirSync(OUT_DIR, { recursive: true });
const BROWSER_LOG = path.join(OUT_DIR, "browser.log");
const API_LOG = path.join(OUT_DIR, "api-requests.jsonl");
writeFileSync(BROWSER_LOG, "");
writeFileSync(API_LOG, "");
const started = Date.now();
const stamp = () => `+${((Date.now() - started) / 1000).toFixed(1)}s`;
const logBrowser = (line) => appendFileSync(BROWSER_LOG, `${stamp()} ${line}\n`);
const say = (line) => console.log(`[drive ${stamp()}] ${line}`);

const apiErrors = [];
const runRequests = []; // POST .../runs/stream: {t, url, body, status}, for failure reports

const userDataDir = mkdtempSync(path.join(tmpdir(), "rimas-chromium-profile-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 1100 },
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(STEP_TIMEOUT_MS);

page.on("console", (msg) => {
  if (msg.type() === "error" || msg.type() === "warning") logBrowser(`console.${msg.type()}: ${msg.text()}`);
});
page.on("pageerror", (err) => logBrowser(`pageerror: ${err.message}`));
const answered = new WeakSet(); // requests whose response headers arrived
page.on("requestfailed", (req) => {
  const reason = req.failure()?.errorText ?? "unknown";
  if (answered.has(req) && reason === "net::ERR_ABORTED") {
    // The SDK cancels the SSE reader once a run's stream has ended: not an API error.
    logBrowser(`reader cancelled after the response arrived (benign): ${req.method()} ${req.url()}`);
    return;
  }
  logBrowser(`requestfailed: ${req.method()} ${req.url()} -> ${reason}`);
  if (req.url().startsWith(API_URL)) {
    apiErrors.push(`${req.method()} ${req.url().slice(API_URL.length)} failed: ${req.failure()?.errorText}`);
    appendFileSync(
      API_LOG,
      JSON.stringify({ t: stamp(), method: req.method(), url: req.url(), body: req.postData() ?? null,
        failed: req.failure()?.errorText ?? "unknown" }) + "\n",
    );
  }
});
page.on("response", async (res) => {
  const req = res.request();
  answered.add(req);
  const isApi = req.url().startsWith(API_URL);
  if (!isApi && res.status() < 400) return;
  let errorBody = null;
  if (res.status() >= 400) {
    errorBody = await res.text().catch((e) => `<unreadable: ${e.message}>`);
    logBrowser(`http ${res.status()}: ${req.method()} ${req.url()} body=${errorBody}`);
    if (isApi) apiErrors.push(`${req.method()} ${req.url().slice(API_URL.length)} -> ${res.status()} ${errorBody}`);
  }
  if (isApi && req.method() === "POST" && /\/runs\/stream$/.test(new URL(req.url()).pathname)) {
    runRequests.push({ t: stamp(), url: req.url().slice(API_URL.length), body: req.postData() ?? null, status: res.status() });
  }
  if (isApi) {
    appendFileSync(
      API_LOG,
      JSON.stringify({ t: stamp(), method: req.method(), url: req.url(), body: req.postData() ?? null,
        status: res.status(), error_body: errorBody }) + "\n",
    );
  }
});

let exitCode = 0;

async function shot(name) {
  await page.screenshot({ path: path.join(OUT_DIR, name), fullPage: false });
  say(`screenshot ${name}`);
}

async function toastText() {
  const toasts = page.locator("[data-sonner-toast]");
  const count = await toasts.count().catch(() => 0);
  const texts = [];
  for (let i = 0; i < count; i += 1) texts.push((await toasts.nth(i).innerText().catch(() => "")).replace(/\s+/g, " "));
  return texts.filter(Boolean).join(" | ");
}

// Resolves with the label of the first case to happen; rejects when none does within the timeout. A case is
// a locator (waits until visible) or a function returning a promise. An API error recorded after the step
// started ends the wait at once as "apiError", so a server-side failure does not cost the whole timeout.
// (Every wait's rejection is handled, so the losers do not become unhandled rejections.)
function firstOf(cases, { apiErrorMark = null, timeout = STEP_TIMEOUT_MS, what = null } = {}) {
  const entries = Object.entries(cases);
  return new Promise((resolve, reject) => {
    let pending = entries.length;
    let settled = false;
    const finish = (fn, value) => {
      if (settled) return;
      settled = true;
      clearInterval(poll);
      fn(value);
    };
    const poll = setInterval(() => {
      if (apiErrorMark !== null && apiErrors.length > apiErrorMark) finish(resolve, "apiError");
    }, 200);
    for (const [label, target] of entries) {
      const wait = typeof target === "function" ? target() : target.waitFor({ state: "visible", timeout });
      wait.then(
        () => finish(resolve, label),
        (err) => {
          pending -= 1;
          if (pending === 0) {
            const waited = what ?? `any of: ${entries.map(([l]) => l).join(", ")}`;
            finish(reject, new Error(`waited ${timeout / 1000}s for ${waited}; it did not come (${err.message.split("\n")[0]})`));
          }
        },
      );
    }
  });
}

const runError = () => page.getByText("An error occurred").first();

// Throws a clear error for the outcomes of firstOf that are failures.
async function failOn(seen, mark) {
  if (seen === "error") throw new Error(`the UI reported a run error: ${await toastText()}`);
  if (seen === "apiError") throw new Error(`the API answered with an error: ${apiErrors.slice(mark).join(" | ")}`);
}

const threadIdOf = () => new URL(page.url()).searchParams.get("threadId");

async function apiJson(method, urlPath) {
  const res = await fetch(`${API_URL}${urlPath}`, { method });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${urlPath} -> ${res.status} ${text}`);
  return JSON.parse(text);
}

const messageTexts = (state) =>
  (state.values?.messages ?? []).map((m) => (typeof m.content === "string" ? m.content : JSON.stringify(m.content)));

// The thread's state once its run has ended (nothing pending); fails if it is still pending after `ms`.
async function settledState(threadId, ms = 10000) {
  const until = Date.now() + ms;
  for (;;) {
    const thread = await apiJson("GET", `/threads/${threadId}`);
    const state = await apiJson("GET", `/threads/${threadId}/state`);
    const interrupts = (state.tasks ?? []).flatMap((t) => t.interrupts ?? []);
    if (thread.status === "idle" && (state.next ?? []).length === 0 && interrupts.length === 0) return state;
    if (Date.now() > until) {
      throw new Error(
        `thread ${threadId} did not end: status=${thread.status} next=${JSON.stringify(state.next)} ` +
          `interrupts=${interrupts.length}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

let flow = "";
async function step(number, name, screenshot, body) {
  say(`flow ${flow}, step ${number}: ${name}`);
  const t0 = Date.now();
  const mark = apiErrors.length;
  const runMark = runRequests.length;
  try {
    await body(mark);
    await shot(screenshot);
    say(`step ${number} passed in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  } catch (err) {
    const failed = screenshot.replace(/\.png$/, "-FAILED.png");
    await shot(failed).catch(() => {});
    const toasts = await toastText();
    const lines = [`STEP ${number} FAILED (flow ${flow}: ${name}): ${err.message.split("\n")[0]}`];
    const threadId = threadIdOf();
    if (threadId) {
      const last = await apiJson("GET", `/threads/${threadId}/state`)
        .then((state) => messageTexts(state).slice(-2).map((t) => JSON.stringify(t)).join(", "))
        .catch((e) => `<state unreadable: ${e.message}>`);
      lines.push(`  thread: ${threadId}; its last messages (from the API): ${last}`);
    }
    if (toasts) lines.push(`  UI toasts: ${toasts}`);
    for (const e of apiErrors.slice(mark)) lines.push(`  API error: ${e}`);
    for (const r of runRequests.slice(runMark)) lines.push(`  run request during the step: POST ${r.url} -> ${r.status} body=${r.body}`);
    lines.push("  (a failed run's error is in the UI toast above and in rimas-serve.log)");
    lines.push(`  screenshot: ${path.join(OUT_DIR, failed)}; browser log: ${BROWSER_LOG}; API requests: ${API_LOG}`);
    throw new Error(lines.join("\n"));
  }
}

// Opens the UI on a new thread (no ?threadId), waiting for its GET /info; fails on a "Failed to connect" toast.
async function openNewThread() {
  const info = page
    .waitForEvent("requestfinished", { predicate: (r) => r.url().startsWith(`${API_URL}/info`), timeout: 15000 })
    .catch(() => null);
  const infoFailed = page
    .waitForEvent("requestfailed", { predicate: (r) => r.url().startsWith(`${API_URL}/info`), timeout: 15000 })
    .catch(() => null);
  await page.goto(UI_URL, { waitUntil: "load" });
  await page.getByPlaceholder("Type your message...").waitFor({ state: "visible" });
  await Promise.race([info, infoFailed]);
  await page.waitForTimeout(300);
  const toasts = await toastText();
  if (/failed to connect/i.test(toasts)) throw new Error(`the UI cannot reach the server: ${toasts}`);
  if (threadIdOf()) throw new Error(`the page opened thread ${threadIdOf()} instead of a new one`);
}

async function sendAndWaitForAnswer(mark) {
  const input = page.getByPlaceholder("Type your message...");
  await input.fill(MESSAGE);
  await input.press("Enter");
  await page.getByText(MESSAGE).first().waitFor({ state: "visible" });
  await failOn(
    await firstOf(
      { answer: page.getByText(ANSWER_TEXT).first(), error: runError() },
      { apiErrorMark: mark, what: `the streamed answer "${ANSWER_TEXT}"` },
    ),
    mark,
  );
}

async function waitForCard(mark) {
  const seen = await firstOf(
    {
      card: page.getByRole("button", { name: APPROVE_BUTTON }).first(),
      generic: page.getByText("Human Interrupt", { exact: true }).first(),
      error: runError(),
    },
    { apiErrorMark: mark, what: "the approval card (an Accept button) or the generic interrupt table" },
  );
  if (seen === "generic") {
    throw new Error(
      "the UI rendered its generic 'Human Interrupt' table, not an approval card with accept/edit controls: " +
        "this Agent Chat UI build does not recognise the interrupt value's shape (it needs action_request + config.allow_*)",
    );
  }
  await failOn(seen, mark);
}

// Scrolls the chat with the mouse wheel over the middle of the page (negative: up), then lets it settle.
async function wheel(dy) {
  const { width, height } = page.viewportSize();
  await page.mouse.move(width / 2, height / 2);
  await page.mouse.wheel(0, dy);
  await page.waitForTimeout(400);
}

// Waits until the run has ended in the UI (the Send button replaces Cancel) so the screenshot is settled.
const waitForIdleUi = () =>
  page.getByRole("button", { name: "Send" }).waitFor({ state: "visible", timeout: 15000 }).catch(() => {});

// The decision the graph received (state key `decision`), once the run has ended.
async function checkDecision(expect) {
  const threadId = threadIdOf();
  if (!threadId) throw new Error("the page URL has no threadId");
  const state = await settledState(threadId);
  const decision = state.values?.decision;
  const problem = expect(decision ?? {}, state);
  if (problem) throw new Error(`${problem}; decision in the thread's state: ${JSON.stringify(decision)}`);
}

// Flows (c) and (d): a new thread up to the card, click `button` ("Ignore" or "Mark as Resolved"), wait for
// the run to end, then check that no refund message appeared (page and API), nothing is pending, the proposal
// is still the last message, and `expectDecision` accepts the state's `decision` (returns null when it does).
async function endWithoutRefund(button, mark, expectDecision) {
  await openNewThread();
  await sendAndWaitForAnswer(mark);
  await waitForCard(mark);
  const control = page.getByRole("button", { name: button, exact: true });
  await control.waitFor({ state: "visible", timeout: 5000 }).catch(() => {
    throw new Error(`the card shows no "${button}" button`);
  });
  const resumed = page.waitForResponse(
    (r) => /\/runs\/stream$/.test(new URL(r.url()).pathname) && r.request().method() === "POST" &&
      /"command"/.test(r.request().postData() ?? ""),
    { timeout: STEP_TIMEOUT_MS },
  );
  await control.click();
  const res = await resumed;
  if (res.status() >= 400) await failOn("apiError", mark);
  // The run ends: the card goes away. A refund message or a run error would be a failure.
  const seen = await firstOf(
    {
      cardGone: () => control.waitFor({ state: "hidden", timeout: STEP_TIMEOUT_MS }),
      refund: page.getByText(ANY_REFUND_TEXT).first(),
      error: runError(),
    },
    { apiErrorMark: mark, what: `the approval card to go away after "${button}"` },
  );
  await failOn(seen, mark);
  const refundOnPage = async () => {
    if (await page.getByText(ANY_REFUND_TEXT).count()) {
      throw new Error(`a refund message appeared after "${button}": ${await page.getByText(ANY_REFUND_TEXT).first().innerText()}`);
    }
  };
  await refundOnPage();
  await waitForIdleUi();
  await page.waitForTimeout(500); // a late message would show up here
  await refundOnPage();
  await checkDecision((d, state) => {
    const problem = expectDecision(d);
    if (problem) return problem;
    const texts = messageTexts(state);
    const refund = texts.find((t) => ANY_REFUND_TEXT.test(t));
    if (refund) return `the thread's messages include a refund message: ${JSON.stringify(refund)}`;
    const last = texts.at(-1) ?? "";
    return last.includes(ANSWER_TEXT) ? null : `expected the proposal to stay the last message, got ${JSON.stringify(last)}`;
  });
}

try {
  flow = "a (approve)";
  await step(1, "open the UI", "01-start.png", async () => {
    await openNewThread();
  });
  await step(2, "send a message and wait for the streamed answer", "02-streamed.png", async (mark) => {
    await sendAndWaitForAnswer(mark);
    // The card follows at once and the chat sticks to the bottom: scroll up (as a user would, with the
    // wheel; a scripted scroll is undone) to bring the exchange back into view.
    await wheel(-3000);
  });
  await step(3, "wait for the approval card", "03-approval-card.png", async (mark) => {
    await waitForCard(mark);
    await wheel(3000);
  });
  await step(4, "accept and wait for the final message", "04-approved.png", async (mark) => {
    await page.getByRole("button", { name: APPROVE_BUTTON }).first().click();
    await failOn(
      await firstOf(
        { final: page.getByText(APPROVED_TEXT).first(), error: runError() },
        { apiErrorMark: mark, what: `the final message ${APPROVED_TEXT}` },
      ),
      mark,
    );
    await waitForIdleUi();
    await checkDecision((d) =>
      d.type === "approve" && d.actor?.id && d.decided_at ? null : "expected an approve decision with actor and decided_at",
    );
  });

  flow = "b (edit)";
  await step(5, "new thread up to the card, then change the amount to 80 in the edit form", "05-edit-form.png", async (mark) => {
    await openNewThread();
    await sendAndWaitForAnswer(mark);
    await waitForCard(mark);
    const amount = page.locator("xpath=//p[normalize-space(.)='Amount']/following-sibling::textarea").first();
    await amount.waitFor({ state: "visible", timeout: 5000 }).catch(() => {
      throw new Error("the card has no editable 'Amount' field (is allow_edit set in the interrupt's config?)");
    });
    const before = await amount.inputValue();
    if (before.trim() !== "120") throw new Error(`the Amount field shows ${JSON.stringify(before)}, expected "120"`);
    await amount.fill(EDITED_AMOUNT);
    // With an edit made, the card's Accept button becomes Submit.
    await page.getByRole("button", { name: "Submit", exact: true }).waitFor({ state: "visible", timeout: 5000 }).catch(() => {
      throw new Error("the card's button did not turn into Submit after editing the amount");
    });
  });
  await step(6, "submit the edit and wait for the final message", "06-edited.png", async (mark) => {
    await page.getByRole("button", { name: "Submit", exact: true }).click();
    await failOn(
      await firstOf(
        { final: page.getByText(EDITED_TEXT).first(), error: runError() },
        { apiErrorMark: mark, what: `the final message ${EDITED_TEXT}` },
      ),
      mark,
    );
    await waitForIdleUi();
    await checkDecision((d) => {
      const amount = d.edited_action?.args?.amount;
      if (d.type !== "edit") return "expected an edit decision";
      if (typeof amount !== "number" || amount !== 80) return `expected edited_action.args.amount to be the number 80, got ${JSON.stringify(amount)}`;
      return d.actor?.id ? null : "expected the decision to carry the actor";
    });
  });

  flow = "c (ignore)";
  await step(7, "new thread up to the card, click Ignore, check the thread ends with no refund", "07-ignored.png", async (mark) => {
    await endWithoutRefund("Ignore", mark, (d) =>
      d.type === "reject" && d.ignored === true ? null : "expected a reject decision with ignored: true",
    );
  });

  flow = "d (mark as resolved)";
  await step(8, "new thread up to the card, click Mark as Resolved, check the thread ends with no refund", "08-resolved.png", async (mark) => {
    // The UI sends command: {goto: "__end__"} (no resume value): the graph is never resumed, so no decision.
    await endWithoutRefund("Mark as Resolved", mark, (d) =>
      Object.keys(d).length === 0 ? null : "expected no decision (the graph should not have been resumed)",
    );
  });
  say("all 4 flows (8 steps) passed");
} catch (err) {
  console.error(err.message);
  exitCode = 1;
} finally {
  if (apiErrors.length && exitCode === 0) say(`note: ${apiErrors.length} API error(s) seen, see ${BROWSER_LOG}`);
  await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(exitCode);
