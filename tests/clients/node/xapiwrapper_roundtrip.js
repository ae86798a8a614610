// Round trip through the LRS with ADL's xAPI Wrapper for Node (adl-xapiwrapper).
// Usage: node xapiwrapper_roundtrip.js <endpoint, e.g. http://127.0.0.1:8080/xapi/> <key> <secret>
// Prints one JSON line with what it saw; exits non-zero on the first failure.
"use strict";

const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const adl = require("adl-xapiwrapper");

// The wrapper calls back (error, response, body) with the raw response.
function call(method, ...args) {
  return new Promise((resolve, reject) => {
    method(...args, (error, response, body) => (error ? reject(error) : resolve({ status: response.statusCode, body })));
  });
}

function json(reply, status = 200) {
  assert.equal(reply.status, status, reply.body);
  return JSON.parse(reply.body);
}

async function main() {
  const [url, user, pass] = process.argv.slice(2);
  adl.debugLevel = "error";
  const lrs = new adl.XAPIWrapper({ url, auth: { user, pass } });
  const bind = (name) => lrs[name].bind(lrs);
  const learner = { objectType: "Agent", name: "Lê Văn C", mbox: `mailto:${crypto.randomUUID()}@example.org` };
  const verb = { id: "http://adlnet.gov/expapi/verbs/attempted", display: { "en-US": "attempted" } };
  const registration = crypto.randomUUID();
  const activity = (n) => ({ objectType: "Activity", id: `http://example.org/courses/digital-literacy/wrapper-${n}`,
    definition: { name: { "en-US": `Quiz ${n}`, "vi-VN": `Bài kiểm tra ${n}` } } });

  const statements = [1, 2, 3].map((n) => ({ actor: learner, verb, object: activity(n), context: { registration },
    result: { score: { scaled: n / 4 } } }));
  const ids = json(await call(bind("sendStatements"), statements));
  assert.equal(ids.length, 3);

  let page = json(await call(bind("getStatements"), { agent: JSON.stringify(learner), registration, limit: 2 }, null));
  const seen = page.statements.map((s) => s.id);
  let pages = 1;
  while (page.more) {
    page = json(await call(bind("getStatements"), null, page.more));
    seen.push(...page.statements.map((s) => s.id));
    pages += 1;
  }
  assert.deepEqual(new Set(seen), new Set(ids));

  const canonical = json(await call(bind("getActivities"), activity(2).id));
  assert.equal(canonical.definition.name["vi-VN"], "Bài kiểm tra 2");
  const person = json(await call(bind("getAgents"), learner));
  assert.deepEqual(person.mbox, [learner.mbox]);

  // State: a PUT without preconditions is fine in 1.0.x; profile: a PUT creating the document sends If-None-Match.
  assert.equal((await call(bind("sendState"), activity(1).id, learner, "progress", registration, "40%", null, null)).status, 204);
  const state = await call(bind("getState"), activity(1).id, learner, "progress", registration, null);
  assert.equal(state.status, 200);
  assert.equal(state.body, "40%");
  const created = await call(bind("sendAgentProfile"), learner, "prefs", ["vi-VN"], null, "*");
  assert.equal(created.status, 204, created.body);
  assert.deepEqual(json(await call(bind("getAgentProfile"), learner, "prefs", null)), ["vi-VN"]);

  console.log(JSON.stringify({ stored: ids.length, seen: seen.length, pages }));
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
