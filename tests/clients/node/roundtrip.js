// Round trip through the LRS with the @xapi/xapi client library.
// Usage: node roundtrip.js <endpoint, e.g. http://127.0.0.1:8080/xapi/> <key> <secret>
// Prints one JSON line with what it saw; exits non-zero on the first failure.
"use strict";

const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const XAPI = require("@xapi/xapi");

async function main() {
  const [endpoint, key, secret] = process.argv.slice(2);
  const xapi = new XAPI({ endpoint, auth: XAPI.toBasicAuth(key, secret), version: "1.0.3" });
  const learner = { objectType: "Agent", name: "Nguyễn Văn A", mbox: `mailto:${crypto.randomUUID()}@example.org` };
  const completed = { id: "http://adlnet.gov/expapi/verbs/completed", display: { "en-US": "completed" } };
  const registration = crypto.randomUUID();
  const unit = (n) => ({
    objectType: "Activity",
    id: `http://example.org/courses/digital-literacy/unit-${n}`,
    definition: { name: { "en-US": `Unit ${n}`, "vi-VN": `Bài ${n}` } },
  });

  const about = await xapi.getAbout();
  assert.ok(about.data.version.includes("1.0.3"), JSON.stringify(about.data));

  const givenId = crypto.randomUUID();
  const one = await xapi.sendStatement({
    statement: {
      id: givenId, actor: learner, verb: completed, object: unit(1),
      result: { score: { scaled: 0.9, raw: 9, min: 0, max: 10 }, success: true, duration: "PT12M30S" },
      context: { registration },
    },
  });
  assert.deepEqual(one.data, [givenId]);
  assert.equal(one.headers["x-experience-api-version"], "1.0.3");

  const batch = await xapi.sendStatements({
    statements: [2, 3, 4, 5].map((n) => ({ actor: learner, verb: completed, object: unit(n), context: { registration } })),
  });
  assert.equal(batch.data.length, 4);

  const fetched = await xapi.getStatement({ statementId: givenId });
  assert.equal(fetched.data.id, givenId);
  assert.equal(fetched.data.actor.name, learner.name);
  assert.equal(fetched.data.object.definition.name["vi-VN"], "Bài 1");
  assert.equal(fetched.data.result.score.raw, 9);
  assert.ok(fetched.data.stored && fetched.data.authority);

  let page = await xapi.getStatements({ agent: learner, verb: completed.id, registration, limit: 2 });
  const seen = page.data.statements.map((s) => s.id);
  let pages = 1;
  while (page.data.more) {
    page = await xapi.getMoreStatements({ more: page.data.more });
    seen.push(...page.data.statements.map((s) => s.id));
    pages += 1;
  }
  assert.deepEqual(new Set(seen), new Set([givenId, ...batch.data]));

  const voiding = await xapi.voidStatement({ actor: learner, statementId: batch.data[0] });
  assert.equal(voiding.data.length, 1);
  await assert.rejects(xapi.getStatement({ statementId: batch.data[0] }), (err) => err.response.status === 404);
  const voided = await xapi.getVoidedStatement({ voidedStatementId: batch.data[0] });
  assert.equal(voided.data.id, batch.data[0]);

  await assert.rejects(
    xapi.sendStatement({ statement: { actor: { name: "no identifier" }, verb: completed, object: unit(1) } }),
    (err) => err.response.status === 400 && typeof err.response.data.error === "string",
  );

  console.log(JSON.stringify({ stored: 1 + batch.data.length, seen: seen.length, pages, voided: voided.data.id }));
}

main().catch((err) => {
  const detail = err.response ? ` (HTTP ${err.response.status}: ${JSON.stringify(err.response.data)})` : "";
  console.error(`${err.stack || err}${detail}`);
  process.exit(1);
});
