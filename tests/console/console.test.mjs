// Drives the IdentityVault console in a real browser (Debian's Chromium
// through playwright-core) against a real `idv serve`, and checks every
// page with axe-core. Usage: node console.test.mjs path/to/idv [screenshot-dir]
//
// Each step asserts what a person would see; any failure exits non-zero.
// Screenshots of each page at 1440x900 go to the screenshot directory (a
// temporary one by default), for a reviewer to look at.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createRequire } from "node:module";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const IDV = process.argv[2];
if (!IDV) {
  console.error("usage: node console.test.mjs path/to/idv [screenshot-dir]");
  process.exit(2);
}
const SHOTS = process.argv[3] || mkdtempSync(join(tmpdir(), "idv-console-shots-"));
mkdirSync(SHOTS, { recursive: true });
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

let step = "start";
let current = null; // the page being driven, for a screenshot on failure
let base = ""; // the server's URL
const log = (m) => console.log(`  ${m}`);

/** Starts `idv serve` on a free port; resolves to its URL and bootstrap token. */
function startServer(dataDir) {
  return new Promise((resolve, reject) => {
    const p = spawn(IDV, ["serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0"], {
      env: { ...process.env, RUST_LOG: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    let url;
    const timer = setTimeout(() => reject(new Error(`the server did not start: ${out}`)), 60_000);
    p.stdout.on("data", (d) => {
      out += d.toString();
      const u = out.match(/IdentityVault listening on (http:\/\/\S+)/);
      const t = out.match(/Admin bootstrap token \(shown once, store it now\): (\S+)/);
      const c = out.match(/Console: (http:\/\/\S+)/);
      if (u) url = u[1];
      if (url && t && c) {
        clearTimeout(timer);
        resolve({ proc: p, url, token: t[1], console: c[1] });
      }
    });
    p.on("exit", (code) => reject(new Error(`the server exited (${code}): ${out}`)));
  });
}

/** Starts the test identity provider; resolves to its issuer URL. */
function startIdp(base) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(dirname(new URL(import.meta.url).pathname), "idp.mjs"), base], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the identity provider did not start: ${out}`)), 30_000);
    p.stdout.on("data", (d) => {
      out += d.toString();
      const m = out.match(/issuer (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ proc: p, issuer: m[1] });
      }
    });
  });
}

async function api(base, token, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Runs axe-core on the page: no serious or critical violation. */
async function accessible(page, name) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`),
    [],
    `axe on ${name}`,
  );
  log(`axe: ${name}: ${result.violations.length} violation(s), none serious or critical; ${result.passes.length} rules passed`);
}

async function shot(page, name, fullPage = false) {
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  log(`screenshot: ${file}`);
}

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), "idv-console-data-"));
  const server = await startServer(dataDir);
  base = server.url;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
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
  const cspViolations = [];
  const newPage = async () => {
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await ctx.newPage();
    current = page;
    page.on("console", (m) => {
      // Only our pages: the identity provider's are its own business.
      if (/Content Security Policy/i.test(m.text()) && page.url().startsWith(base)) cspViolations.push(m.text());
    });
    return { ctx, page };
  };
  try {
    step = "the README's run command prints the console URL";
    assert.equal(server.console, `${base}/console`);

    step = "seed agents through the API";
    const admin = server.token;
    const ids = [];
    for (const [name, env] of [
      ["payments-reconciler", "prod"],
      ["kyc-screener", "prod"],
      ["ledger-summariser", "test"],
    ]) {
      const a = await api(base, admin, "POST", "/v1/agents", {
        name,
        owner: "dana@bank.example",
        purpose: "month-end close",
        environment: env,
        class: "finance",
      });
      await api(base, admin, "POST", `/v1/agents/${a.id}/activate`, { reason: "go live" });
      ids.push(a.id);
    }

    step = "seed agent-to-agent calls through AuthZEN (the graph and the heat map's data)";
    await api(base, admin, "POST", "/v1/policies", {
      policies:
        '@id("same-owner") permit(principal is Agent, action == Action::"invoke", resource is Agent) when { principal.owner == resource.owner };\n' +
        '@id("large") @requires_approval("transfers above 10,000 need the owner\'s approval") ' +
        'permit(principal is Agent, action == Action::"transfer", resource) when { context has amount && context.amount > 10000 };',
      activate: true,
    });
    const pep = (await api(base, admin, "POST", "/v1/admin-tokens", { name: "gateway", role: "pep" })).token;
    for (const [from, to, n] of [[0, 1, 3], [1, 2, 2], [0, 2, 1]]) {
      for (let i = 0; i < n; i++) {
        const d = await api(base, pep, "POST", "/access/v1/evaluation", {
          subject: { type: "agent", id: ids[from] },
          action: { name: "invoke" },
          resource: { type: "agent", id: ids[to] },
          context: {},
        });
        assert.equal(d.decision, true, JSON.stringify(d));
      }
    }

    step = "an unsigned visitor lands on the sign-in page";
    const { ctx, page } = await newPage();
    await page.goto(`${base}/console`);
    assert.equal(new URL(page.url()).pathname, "/console/login");
    await accessible(page, "sign-in");
    await shot(page, "01-sign-in");

    step = "a wrong token is refused with a clear message";
    await page.fill("#token", "idvat_not-a-real-token");
    await page.click("#sign-in");
    assert.match(await page.textContent("#sign-in-error"), /admin token/i);

    step = "break-glass sign-in lands on the overview";
    await page.fill("#token", admin);
    await page.click("#sign-in");
    await page.waitForURL(`${base}/console`);
    assert.equal((await page.textContent("#total-agents")).trim(), "3");
    await accessible(page, "overview");
    await shot(page, "02-overview");
    const cookies = await ctx.cookies();
    const session = cookies.find((c) => c.name === "idv_session");
    assert.ok(session, "a session cookie");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");

    step = "the inventory lists the agents";
    await page.click("nav >> text=Agents");
    await page.waitForURL(`${base}/console/agents`);
    assert.equal(await page.locator("table.list tbody tr").count(), 3);
    await accessible(page, "inventory");
    await shot(page, "03-inventory");

    step = "a bulk action says how many it changes, then suspends them";
    await page.check(`input.pick[value="${ids[0]}"]`);
    await page.check(`input.pick[value="${ids[1]}"]`);
    assert.equal((await page.textContent("#selected-count")).trim(), "2 selected");
    await page.selectOption("#bulk-action", "suspend");
    await page.fill("#bulk-reason", "fraud investigation INC-4411");
    let confirmed = null;
    page.once("dialog", async (d) => {
      confirmed = d.message();
      await d.accept();
    });
    await page.click("#bulk-apply");
    await page.waitForSelector("#notice");
    assert.equal(confirmed, "Suspend 2 agent(s)?");
    for (const id of ids.slice(0, 2)) {
      assert.equal((await api(base, admin, "GET", `/v1/agents/${id}`)).status, "suspended");
    }
    assert.equal((await api(base, admin, "GET", `/v1/agents/${ids[2]}`)).status, "active");

    step = "the suspensions are on the record, naming the console session";
    const events = (await api(base, admin, "GET", "/v1/audit/events?limit=1000")).items;
    const suspends = events.filter((e) => e.action === "agent.suspend" && e.outcome === "success");
    assert.equal(suspends.length, 2);
    for (const e of suspends) assert.match(JSON.stringify(e), /console_session/);
    assert.ok(events.some((e) => e.action === "console.sign_in" && e.outcome === "success"));

    step = "filtering (htmx) narrows the list";
    await page.selectOption("select[name=status]", "suspended");
    await page.click("form.filters button[type=submit]");
    await page.waitForURL(/status=suspended/);
    await page.waitForFunction(() => document.querySelectorAll("table.list tbody tr").length === 2);

    step = "the agent's page, and a lifecycle action from it";
    await page.click(`a[href="/console/agents/${ids[0]}"]`);
    await page.waitForURL(`${base}/console/agents/${ids[0]}`);
    assert.equal((await page.textContent("#agent-status")).trim(), "suspended");
    step = "the agent's page answers what it can do, whom it talks to, and what happened to it";
    assert.match(await page.textContent("#can"), /invoke[\s\S]*same-owner/);
    assert.match(await page.textContent("#can"), /transfer[\s\S]*approval[\s\S]*large/);
    assert.equal(await page.locator("#edges tbody tr").count(), 2, "calls two agents");
    assert.match(await page.textContent("#timeline"), /agent\.suspend[\s\S]*agent\.activate[\s\S]*agent\.create/);
    await accessible(page, "agent detail");
    await shot(page, "04-agent", true);
    await page.selectOption("#lifecycle-action", "resume");
    await page.fill("#lifecycle-reason", "cleared");
    await page.click("#lifecycle-apply");
    await page.waitForFunction(() => document.querySelector("#agent-status").textContent.trim() === "active");

    step = "a credential issued from the agent's page: its secret shown once";
    await page.selectOption("#credential-kind", "client_secret");
    await page.click("#credential-issue");
    await page.waitForSelector("#secret");
    const secret1 = (await page.textContent("#secret")).trim();
    assert.match(secret1, /^idv\w+_[0-9A-Za-z]{20,}$/);
    assert.ok(!page.url().includes(secret1), "no secret in the URL");
    await accessible(page, "secret shown once");
    await shot(page, "05-secret-once");
    step = "and rotated with an overlap: the successor's secret shown once";
    await page.click("#back-to-agent");
    await page.waitForURL(`${base}/console/agents/${ids[0]}`);
    assert.equal(await page.locator("#credentials tbody tr").count(), 1);
    assert.ok(!(await page.content()).includes(secret1), "the secret is not shown again");
    await page.fill("#credentials input[name=overlap]", "1h");
    await page.click("#credentials button.rotate");
    await page.waitForSelector("#secret");
    const secret2 = (await page.textContent("#secret")).trim();
    assert.notEqual(secret1, secret2);
    await page.click("#back-to-agent");
    await page.waitForURL(`${base}/console/agents/${ids[0]}`);
    assert.equal(await page.locator("#credentials tbody tr").count(), 2);
    await shot(page, "06-agent-credentials");
    const credEvents = (await api(base, admin, "GET", "/v1/audit/events?limit=1000")).items.filter(
      (e) => (e.action === "credential.create" || e.action === "credential.rotate") && e.outcome === "success",
    );
    assert.equal(credEvents.filter((e) => e.action === "credential.rotate").length, 1);
    assert.ok(credEvents.some((e) => e.action === "credential.create"));
    for (const e of credEvents) assert.match(JSON.stringify(e), /console_session/);

    step = "the audit page shows those events with the person as actor";
    await page.click("nav >> text=Audit");
    await page.waitForURL(`${base}/console/audit`);
    await accessible(page, "audit");
    await page.fill("input[name=action]", "credential.rotate");
    await page.click("#audit-search");
    await page.waitForURL(/action=credential.rotate/);
    await page.waitForFunction(() => document.querySelectorAll("#events tbody tr").length === 1);
    assert.match(await page.textContent("#events tbody"), /admin_token:bootstrap/);
    await shot(page, "07-audit");
    await page.click("#events tbody a");
    await page.waitForSelector("#event-integrity");
    assert.match(await page.textContent("#event-integrity"), /matches/);
    assert.match(await page.textContent("#event-hash"), /^[0-9a-f]{64}$/);
    await accessible(page, "audit event");
    await shot(page, "08-audit-event");
    step = "the search exports as CSV";
    await page.goBack();
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#audit-export")]);
    const csv = readFileSync(await download.path(), "utf8");
    assert.match(csv.split("\n")[0], /^seq,time,actor_kind,actor_name,action/);
    assert.equal(csv.trim().split("\n").length, 2, csv);
    assert.match(csv, /credential\.rotate/);

    step = "the whole chain verified from the audit page";
    await page.click("#verify-chain");
    await page.waitForSelector("#chain-status.notice");
    assert.match(await page.textContent("#chain-status"), /^Intact: every event up to \d+ verified/);

    step = "the communication graph renders its agents and calls";
    await page.click("nav >> text=Graph");
    await page.waitForURL(`${base}/console/graph`);
    await page.waitForSelector("#graph[data-rendered]");
    assert.equal(await page.getAttribute("#graph", "data-rendered"), "3");
    assert.match(await page.textContent("#graph-summary"), /3 agents, 3 caller/);
    assert.ok(await page.locator("#graph canvas").count() >= 1, "ECharts drew on a canvas");
    await accessible(page, "graph");
    await shot(page, "09-graph");
    step = "the access heat map renders agents by actions";
    await page.click("nav >> text=Heat map");
    await page.waitForURL(`${base}/console/heatmap`);
    await page.waitForSelector("#heatmap[data-rendered]");
    assert.equal(await page.getAttribute("#heatmap", "data-rendered"), "2");
    assert.equal(await page.locator("#heat-table tbody tr").count(), 2);
    await page.waitForSelector("#heatweek[data-rendered]");
    assert.equal(await page.getAttribute("#heatweek", "data-rendered"), "168");
    await accessible(page, "heat map");
    await shot(page, "10-heatmap");
    await page.locator("#heatweek").scrollIntoViewIfNeeded();
    await shot(page, "10b-heatmap-hour-of-week");

    step = "the approvals queue: a transfer waiting for a person, approved with a comment";
    const asked = await api(base, pep, "POST", "/access/v1/evaluation", {
      subject: { type: "agent", id: ids[2] },
      action: { name: "transfer" },
      resource: { type: "agent", id: ids[0] },
      context: { amount: 25000 },
    });
    assert.equal(asked.decision, false);
    assert.equal(asked.context.decision, "requires_approval", JSON.stringify(asked, null, 1));
    await page.click("nav >> text=Approvals");
    await page.waitForURL(`${base}/console/approvals`);
    assert.equal(await page.locator("#approvals tbody tr").count(), 1);
    assert.match(await page.textContent("#approvals tbody"), /transfer/);
    await accessible(page, "approvals");
    await shot(page, "11-approvals");
    await page.fill("#approvals input[name=comment]", "checked with the desk");
    await page.click("#approvals button.approve");
    await page.waitForURL(`${base}/console/approvals`);
    assert.match(await page.textContent("#approvals tbody"), /Nothing here/);
    const decided = (await api(base, admin, "GET", "/v1/approvals?status=approved")).items;
    assert.equal(decided.length, 1);
    assert.equal(decided[0].comment, "checked with the desk");

    step = "the policies: versions, what changed, a draft tested on recorded decisions, roles and grants";
    await page.click("nav >> text=Policies");
    await page.waitForSelector("#versions");
    assert.ok((await page.locator("#versions tbody tr").count()) >= 1);
    assert.ok((await page.locator("#diff .add").count()) > 0, "the active version's lines, added");
    await accessible(page, "policies");
    await shot(page, "21-policies");
    await page.click("#draft summary");
    await page.fill("#draft-policies", 'permit(principal, action, resource);');
    await page.click("#draft-test");
    await page.waitForSelector("#test-summary");
    assert.match(await page.textContent("#test-summary"), /would change under it/);
    await accessible(page, "policy draft test");
    await shot(page, "22-policy-test");

    step = "the portfolio: every tenant side by side (platform operators)";
    await api(base, admin, "POST", "/v1/tenants", { name: "acme-pay", display_name: "Acme Payments" });
    await page.click("nav >> text=Tenants");
    await page.waitForURL(`${base}/console/tenants`);
    assert.equal(await page.locator("#tenants tbody tr").count(), 2);
    assert.match(await page.textContent("#tenants tbody"), /Acme Payments/);
    await accessible(page, "tenants");

    step = "the operations pages: rotation and keys, leases, webhooks";
    for (const [label, id] of [["Rotation", "#keys"], ["Leases", "#leases"], ["Webhooks", "#webhooks"]]) {
      await page.click(`nav >> text="${label}"`);
      await page.waitForSelector(id);
      await accessible(page, label);
    }

    step = "a webhook subscription's deliveries, one sent again";
    const hook = (await api(base, admin, "POST", "/v1/webhooks", { url: `${base}/healthz`, events: ["agent.*"] })).webhook;
    await api(base, admin, "POST", `/v1/webhooks/${hook.id}/test`);
    await page.click('nav >> text="Webhooks"');
    await page.click(`#webhooks a[href="/console/webhooks/${hook.id}"]`);
    await page.waitForSelector("#deliveries button.redeliver");
    await accessible(page, "webhook deliveries");
    await page.click("#deliveries button.redeliver");
    await page.waitForSelector("#notice");
    assert.match(await page.textContent("#notice"), /webhook\.test queued again/);
    assert.equal(await page.locator("#deliveries tbody tr").count(), 2);
    await shot(page, "12b-webhook-deliveries");

    step = "the ROI calculator: the product sheet's defaults, live figures, a link that reproduces it";
    await page.click("nav >> text=ROI");
    await page.waitForURL(`${base}/console/roi`);
    assert.match(await page.textContent("#live-facts"), /3 agent identities managed; 1 credential rotations/);
    assert.equal(await page.inputValue("#roi-agents"), "3");
    assert.equal((await page.textContent("#roi-total")).trim(), "$349,840");
    assert.equal((await page.textContent("#roi-percent")).trim(), "192 %");
    await page.waitForSelector("#roi-chart[data-rendered]");
    await accessible(page, "ROI calculator");
    await shot(page, "12-roi");
    await page.fill("#roi-hours", "10");
    await page.click("#roi-calculate");
    await page.waitForURL(/credential_hours_per_week=10/);
    assert.equal((await page.textContent("#roi-credentials")).trim(), "$49,920");
    const link = page.url();
    const again = await ctx.newPage();
    await again.goto(link);
    assert.equal((await again.textContent("#roi-credentials")).trim(), "$49,920");
    await again.close();

    step = "the sessions page lists this session";
    await page.click("nav >> text=Sessions");
    await page.waitForURL(`${base}/console/sessions`);
    assert.match(await page.textContent("#sessions"), /this session/);
    await accessible(page, "sessions");
    await shot(page, "13-sessions");

    step = "the dark theme";
    await page.goto(`${base}/console`);
    await page.click("#theme-toggle");
    await accessible(page, "overview (dark)");
    await shot(page, "14-overview-dark");

    step = "a state-changing request without the CSRF token is refused";
    let res = await page.request.post(`${base}/console/agents/${ids[2]}/lifecycle`, {
      form: { action: "suspend", reason: "no token" },
      headers: { origin: base },
    });
    assert.equal(res.status(), 403);
    step = "a request from another site is refused";
    const csrf = await page.getAttribute("input[name=_csrf]", "value");
    res = await page.request.post(`${base}/console/agents/${ids[2]}/lifecycle`, {
      form: { _csrf: csrf, action: "suspend", reason: "cross-site" },
      headers: { origin: "https://evil.example" },
    });
    assert.equal(res.status(), 403);
    assert.equal((await api(base, admin, "GET", `/v1/agents/${ids[2]}`)).status, "active");

    step = "an auditor sees no action buttons, and a forged post is refused and recorded";
    const auditor = (await api(base, admin, "POST", "/v1/admin-tokens", { name: "examiner", role: "auditor" })).token;
    const a2 = await newPage();
    await a2.page.goto(`${base}/console/login`);
    await a2.page.fill("#token", auditor);
    await a2.page.click("#sign-in");
    await a2.page.waitForURL(`${base}/console`);
    await a2.page.goto(`${base}/console/agents`);
    assert.equal(await a2.page.locator("#bulk-apply").count(), 0);
    assert.equal(await a2.page.locator("nav >> text=Tenants").count(), 0, "no portfolio for a tenant's auditor");
    assert.equal(await a2.page.locator("input.pick").count(), 0);
    await a2.page.goto(`${base}/console/agents/${ids[2]}`);
    assert.equal(await a2.page.locator("#lifecycle-apply").count(), 0);
    await accessible(a2.page, "agent detail (auditor)");
    const auditorCsrf = await a2.page.getAttribute("input[name=_csrf]", "value");
    res = await a2.page.request.post(`${base}/console/agents/${ids[2]}/lifecycle`, {
      form: { _csrf: auditorCsrf, action: "suspend", reason: "forged" },
      headers: { origin: base },
    });
    assert.equal(res.status(), 403);
    assert.equal((await api(base, admin, "GET", `/v1/agents/${ids[2]}`)).status, "active");
    const denied = (await api(base, admin, "GET", "/v1/audit/events?limit=1000")).items.filter(
      (e) => e.outcome === "denied" && e.actor.name === "examiner",
    );
    assert.ok(denied.length >= 1, "the forged post is audited as denied");
    await a2.ctx.close();

    step = "sign out: the old session cookie no longer works";
    await page.click("#sign-out");
    await page.waitForURL(`${base}/console/login`);
    const old = await fetch(`${base}/console`, {
      headers: { cookie: `idv_session=${session.value}` },
      redirect: "manual",
    });
    assert.equal(old.status, 303);
    assert.equal(old.headers.get("location"), "/console/login");
    const events2 = (await api(base, admin, "GET", "/v1/audit/events?limit=1000")).items;
    assert.ok(events2.some((e) => e.action === "console.sign_out"));

    step = "single sign-on through a real OpenID Connect provider (oidc-provider)";
    const idp = await startIdp(base);
    try {
      await api(base, admin, "PUT", "/v1/sso", {
        issuer: idp.issuer,
        client_id: "idv-console",
        client_secret: "console-secret-for-tests",
        scopes: ["openid", "email", "profile", "groups"],
        groups_claim: "groups",
        role_map: { "iam-admins": "admin", auditors: "auditor", developers: "owner" },
      });
      const signInAs = async (login) => {
        const p = await newPage();
        await p.page.goto(`${base}/console/login`);
        await p.page.click("#sso");
        await p.page.waitForURL((u) => u.toString().startsWith(idp.issuer));
        await p.page.fill("input[name=login]", login);
        await p.page.fill("input[name=password]", "any");
        await p.page.click("button[type=submit]");
        await p.page.waitForSelector("button[type=submit]");
        await p.page.click("button[type=submit]");
        return p;
      };

      step = "a person whose groups map to no role is refused, and it is recorded";
      const eve = await signInAs("eve");
      await eve.page.waitForSelector("#sign-in-error");
      assert.match(await eve.page.textContent("#sign-in-error"), /eve@bank\.example is not in a group/);
      await accessible(eve.page, "sign-in refused");
      await shot(eve.page, "15-sso-refused");
      assert.equal((await eve.ctx.cookies()).filter((c) => c.name === "idv_session").length, 0);
      await eve.ctx.close();
      const refusals = (await api(base, admin, "GET", "/v1/audit/events?action=console.sign_in&outcome=denied")).items;
      assert.ok(refusals.some((e) => e.actor.kind === "person" && e.actor.name === "eve@bank.example"), JSON.stringify(refusals));

      step = "a person in a mapped group signs in and acts as themselves";
      const alice = await signInAs("alice");
      await alice.page.waitForURL(`${base}/console`);
      assert.match(await alice.page.textContent("header .who"), /Alice Example/);
      assert.match(await alice.page.textContent("header .who"), /admin/);
      await shot(alice.page, "16-sso-overview");
      step = "as that person: register an agent, activate it, issue and rotate a credential";
      await alice.page.click("nav >> text=Agents");
      await alice.page.click("#register summary");
      await alice.page.fill("#new-name", "fraud-sentinel");
      await alice.page.fill("#new-purpose", "watches card transactions");
      await alice.page.selectOption("#new-environment", "prod");
      await alice.page.click("#register-agent");
      await alice.page.waitForSelector("#agent-status");
      const newId = alice.page.url().split("/").pop();
      const created = await api(base, admin, "GET", `/v1/agents/${newId}`);
      assert.equal(created.owner, "alice@bank.example", "owned by whoever registers it");
      await alice.page.selectOption("#lifecycle-action", "activate");
      await alice.page.fill("#lifecycle-reason", "approved in CAB-2231");
      await alice.page.click("#lifecycle-apply");
      await alice.page.waitForFunction(() => document.querySelector("#agent-status").textContent.trim() === "active");
      await alice.page.click("#credential-issue");
      await alice.page.waitForSelector("#secret");
      await alice.page.click("#back-to-agent");
      await alice.page.fill("#credentials input[name=overlap]", "15m");
      await alice.page.click("#credentials button.rotate");
      await alice.page.waitForSelector("#secret");
      await alice.page.click("#back-to-agent");
      await alice.page.waitForURL(`${base}/console/agents/${newId}`);

      step = "the audit page shows those events with the person as actor";
      for (const action of ["credential.create", "credential.rotate"]) {
        await alice.page.goto(`${base}/console/audit?action=${action}&actor=alice%40bank.example`);
        assert.match(await alice.page.textContent("#events tbody"), /person:alice@bank\.example/, action);
      }
      const byAlice = (await api(base, admin, "GET", "/v1/audit/events?action=credential.rotate")).items.pop();
      assert.equal(byAlice.actor.kind, "person");
      assert.equal(byAlice.actor.name, "alice@bank.example");
      assert.equal(byAlice.details.request.person.issuer, idp.issuer);
      assert.equal(byAlice.details.request.person.subject, "alice");

      step = "as that person: suspend it from the inventory with a bulk action";
      await alice.page.goto(`${base}/console/agents?name=fraud-`);
      await alice.page.check(`input.pick[value="${newId}"]`);
      await alice.page.selectOption("#bulk-action", "suspend");
      await alice.page.fill("#bulk-reason", "card fraud spike");
      alice.page.once("dialog", (d) => d.accept());
      await alice.page.click("#bulk-apply");
      await alice.page.waitForSelector("#notice");
      assert.equal((await api(base, admin, "GET", `/v1/agents/${newId}`)).status, "suspended");
      const suspendedBy = (await api(base, admin, "GET", "/v1/audit/events?action=agent.suspend")).items.pop();
      assert.equal(suspendedBy.actor.name, "alice@bank.example");
      await shot(alice.page, "17-sso-inventory");

      step = "a developer (owner role) sees and manages only their own agents";
      const dev = await signInAs("dev");
      await dev.page.waitForURL(`${base}/console`);
      assert.equal((await dev.page.textContent("#total-agents")).trim(), "0");
      for (const hidden of ["Graph", "Heat map", "Audit", "ROI", "Tenants"]) {
        assert.equal(await dev.page.locator(`nav >> text="${hidden}"`).count(), 0, hidden);
      }
      await dev.page.click("nav >> text=Agents");
      assert.match(await dev.page.textContent("table.list tbody"), /No agents match/);
      await dev.page.click("#register summary");
      await dev.page.fill("#new-name", "dev-helper");
      await dev.page.fill("#new-purpose", "summarises pull requests");
      await dev.page.click("#register-agent");
      await dev.page.waitForSelector("#agent-status");
      const devAgent = await api(base, admin, "GET", `/v1/agents/${dev.page.url().split("/").pop()}`);
      assert.equal(devAgent.owner, "dev@bank.example");
      await dev.page.goto(`${base}/console/agents`);
      assert.equal(await dev.page.locator("table.list tbody tr").count(), 1);
      await accessible(dev.page, "inventory (owner)");
      await shot(dev.page, "18-owner-inventory");
      const other = await dev.page.goto(`${base}/console/agents/${ids[2]}`);
      assert.equal(other.status(), 404, "someone else's agent does not exist for an owner");
      const devCsrf = await (async () => {
        await dev.page.goto(`${base}/console/agents`);
        return dev.page.getAttribute("input[name=_csrf]", "value");
      })();
      const forged = await dev.page.request.post(`${base}/console/agents/${ids[1]}/lifecycle`, {
        form: { _csrf: devCsrf, action: "resume", reason: "not mine" },
        headers: { origin: base },
      });
      assert.equal(forged.status(), 404);
      assert.equal((await api(base, admin, "GET", `/v1/agents/${ids[1]}`)).status, "suspended", "unchanged");
      assert.equal((await dev.page.goto(`${base}/console/graph/data`)).status(), 403);

      step = "a developer asks for access for their agent; an admin (not the requester) approves it";
      await api(base, admin, "PUT", "/v1/roles/reader", { actions: ["read"] });
      await dev.page.goto(`${base}/console/agents/${devAgent.id}`);
      await dev.page.click("#request-access");
      await dev.page.waitForSelector("#ask-agent");
      assert.equal(await dev.page.inputValue("#ask-agent"), devAgent.id);
      await dev.page.selectOption("#ask-role", "reader");
      await dev.page.selectOption("#ask-duration", "1d");
      await dev.page.fill("#ask-justification", "reads the backlog for triage");
      await dev.page.click("#ask-send");
      await dev.page.waitForSelector("#notice");
      assert.match(await dev.page.textContent("#access-requests tbody"), /pending/);
      assert.equal(await dev.page.locator("#access-requests button.approve").count(), 0, "no approving one's own");
      await accessible(dev.page, "access requests (owner)");
      await shot(dev.page, "19-access-request");
      await alice.page.goto(`${base}/console/access-requests?status=pending`);
      await alice.page.fill("#access-requests input[name=comment]", "ok for a day");
      await alice.page.click("#access-requests button.approve");
      await alice.page.waitForSelector("#notice");
      const jit = (await api(base, admin, "GET", `/v1/access-requests?agent_id=${devAgent.id}`)).items[0];
      assert.equal(jit.state, "approved");
      assert.equal(jit.requested_by, "dev@bank.example");
      assert.equal(jit.decided_by, "alice@bank.example");
      await dev.page.goto(`${base}/console/access-requests`);
      assert.match(await dev.page.textContent("#access-requests tbody"), /approved by alice@bank\.example/);
      await accessible(alice.page, "access requests (approver)");
      await shot(alice.page, "20-access-request-approved");
      await dev.ctx.close();

      step = "signing out ends the session here and at the provider (RP-initiated logout)";
      const aliceCookie = (await alice.ctx.cookies()).find((c) => c.name === "idv_session");
      await alice.page.click("#sign-out");
      await alice.page.waitForURL((u) => u.toString().startsWith(idp.issuer));
      await alice.page.click("button[type=submit][value=yes], button[name=logout]");
      await alice.page.waitForURL((u) => u.toString().startsWith(`${base}/console/login`));
      const stale = await fetch(`${base}/console`, { headers: { cookie: `idv_session=${aliceCookie.value}` }, redirect: "manual" });
      assert.equal(stale.status, 303);
      await alice.ctx.close();
    } finally {
      idp.proc.kill("SIGTERM");
    }

    step = "no page broke the Content-Security-Policy";
    assert.deepEqual(cspViolations, []);
    await ctx.close();
    console.log(`console browser tests: passed (screenshots in ${SHOTS})`);
  } catch (e) {
    console.error(`console browser tests: FAILED at step "${step}"`);
    console.error(e);
    if (current) {
      await current.screenshot({ path: join(SHOTS, "failure.png") }).catch(() => {});
      console.error(`the page at failure: ${current.url()} (screenshot ${join(SHOTS, "failure.png")})`);
      console.error((await current.content().catch(() => "")).slice(0, 2000));
    }
    process.exitCode = 1;
  } finally {
    await browser.close();
    server.proc.kill("SIGTERM");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
