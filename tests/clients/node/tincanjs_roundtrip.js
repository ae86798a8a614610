// Round trip through the LRS with TinCanJS (Rustici's xAPI library, its Node build).
// Usage: node tincanjs_roundtrip.js <endpoint, e.g. http://127.0.0.1:8080/xapi/> <key> <secret>
// Prints one JSON line with what it saw; exits non-zero on the first failure.
"use strict";

const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const TinCan = require("tincanjs");

// TinCanJS calls back (err, result); err is null or the failed request.
function call(method, ...args) {
  return new Promise((resolve, reject) => {
    const cfg = args.pop() || {};
    method(...args, { ...cfg, callback: (err, result) => (err ? reject(describe(err)) : resolve(result)) });
  });
}

function describe(err) {
  return new Error(err && err.status !== undefined ? `HTTP ${err.status}: ${err.responseText}` : String(err));
}

async function main() {
  const [endpoint, username, password] = process.argv.slice(2);
  const lrs = new TinCan.LRS({ endpoint, username, password, allowFail: false, version: "1.0.2" });
  const bind = (name) => lrs[name].bind(lrs);
  const learner = new TinCan.Agent({ name: "Trần Thị B", mbox: `mailto:${crypto.randomUUID()}@example.org` });
  const verb = new TinCan.Verb({ id: "http://adlnet.gov/expapi/verbs/completed", display: { "en-US": "completed" } });
  const registration = crypto.randomUUID();
  const unit = (n) => new TinCan.Activity({
    id: `http://example.org/courses/digital-literacy/tincanjs-unit-${n}`,
    definition: { name: { "en-US": `Unit ${n}`, "vi-VN": `Bài ${n}` } },
  });

  const given = new TinCan.Statement({
    id: crypto.randomUUID(), actor: learner, verb, target: unit(1), context: { registration },
    result: { score: { raw: 7, min: 0, max: 10 }, success: true, duration: "PT5M" },
  });
  await call(bind("saveStatement"), given, {});
  const batch = [2, 3, 4].map((n) => new TinCan.Statement({
    id: crypto.randomUUID(), actor: learner, verb, target: unit(n), context: { registration } }));
  await call(bind("saveStatements"), batch, {});

  const fetched = await call(bind("retrieveStatement"), given.id, {});
  assert.equal(fetched.id, given.id);
  assert.equal(fetched.actor.name, "Trần Thị B");
  assert.equal(fetched.target.definition.name["vi-VN"], "Bài 1");
  assert.equal(fetched.result.score.raw, 7);
  assert.ok(fetched.stored && fetched.authority);

  let page = await call(bind("queryStatements"), { params: { agent: learner, verb, registration, limit: 2 } });
  const seen = page.statements.map((s) => s.id);
  let pages = 1;
  while (page.more) {
    page = await call(bind("moreStatements"), { url: page.more });
    seen.push(...page.statements.map((s) => s.id));
    pages += 1;
  }
  assert.deepEqual(new Set(seen), new Set([given.id, ...batch.map((s) => s.id)]));

  // Documents: state (no precondition needed) and an activity profile (TinCanJS sends If-None-Match: *).
  const activity = unit(1);
  await call(bind("saveState"), "bookmark", "page-3", { activity, agent: learner, registration, contentType: "text/plain" });
  const state = await call(bind("retrieveState"), "bookmark", { activity, agent: learner, registration });
  assert.equal(state.contents, "page-3");
  await call(bind("saveActivityProfile"), "settings", { level: 2 }, { activity, contentType: "application/json" });
  const profile = await call(bind("retrieveActivityProfile"), "settings", { activity });
  assert.deepEqual(profile.contents, { level: 2 });  // parsed by TinCanJS (application/json)
  assert.equal(profile.contentType, "application/json");
  const canonical = await call(bind("retrieveActivity"), activity.id, {});
  assert.equal(canonical.definition.name["vi-VN"], "Bài 1");

  console.log(JSON.stringify({ stored: 1 + batch.length, seen: seen.length, pages }));
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
