// The page's pure text helpers (frontend/text.js) under node.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  answerParts,
  extensionOf,
  formatLatency,
  healthSummary,
  highlightTerms,
  plural,
  supportText,
  timeAgo,
} from "../../frontend/text.js";

test("plural", () => {
  assert.equal(plural(0, "page"), "0 pages");
  assert.equal(plural(1, "page"), "1 page");
  assert.equal(plural(12, "chunk"), "12 chunks");
});

test("extensionOf is the last dot's suffix, lower-cased", () => {
  assert.equal(extensionOf("Report.PDF"), "pdf");
  assert.equal(extensionOf("archive.tar.gz"), "gz");
  assert.equal(extensionOf("README"), "");
  assert.equal(extensionOf("notes."), "");
  assert.equal(extensionOf(".env"), "env");
});

test("timeAgo against a given now", () => {
  const now = Date.parse("2026-12-03T12:00:00Z");
  assert.equal(timeAgo("2026-12-03T11:59:30Z", now), "just now");
  assert.equal(timeAgo("2026-12-03T11:55:00Z", now), "5 min ago");
  assert.equal(timeAgo("2026-12-03T09:00:00Z", now), "3 h ago");
  assert.equal(timeAgo("2026-11-01T09:00:00Z", now), new Date(Date.parse("2026-11-01T09:00:00Z")).toLocaleDateString());
  assert.equal(timeAgo("not a date", now), "");
  assert.equal(timeAgo(undefined, now), "");
});

test("formatLatency", () => {
  assert.equal(formatLatency(12.4), "12 ms");
  assert.equal(formatLatency(999), "999 ms");
  assert.equal(formatLatency(1234), "1.23 s");
  assert.equal(formatLatency(12345), "12.3 s");
  assert.equal(formatLatency(undefined), "");
  assert.equal(formatLatency("12"), "");
});

test("answerParts splits text at citation markers, lists with commas or semicolons", () => {
  assert.deepEqual(answerParts("Paris [1]. Also Lyon [2, 3; 4]."), [
    { text: "Paris " },
    { n: 1 },
    { text: ". Also Lyon " },
    { n: 2 },
    { n: 3 },
    { n: 4 },
    { text: "." },
  ]);
  assert.deepEqual(answerParts("[1][2]"), [{ n: 1 }, { n: 2 }]);
  assert.deepEqual(answerParts(""), []);
  // not markers: words, an unclosed bracket (a stream mid-token), a trailing comma
  assert.deepEqual(answerParts("see [a] and [1, ] and [2"), [{ text: "see [a] and [1, ] and [2" }]);
});

test("supportText slices code points, not UTF-16 units", () => {
  const text = "🙂 One. Two is here. Three.";
  // Python's offsets of "Two is here." in code points: the emoji counts once
  assert.equal(supportText({ text, support_start: 7, support_end: 19 }), "Two is here.");
  assert.equal(supportText({ text, support_start: 5, support_end: 5 }), "");
  assert.equal(supportText({ text }), "");
  assert.equal(supportText({ snippet: "x", support_start: 0, support_end: 1 }), "");
});

test("highlightTerms keeps key words once, drops stop words and short words but not numbers", () => {
  assert.deepEqual(highlightTerms("What is the Reactor's cooling time in 2 hours? The reactor!"), [
    "reactor",
    "cooling",
    "time",
    "2",
    "hours",
  ]);
  assert.deepEqual(highlightTerms("Où est l'été ?"), ["est", "été"]);
  assert.deepEqual(highlightTerms("is it?"), []);
});

test("healthSummary names the components that are not fine, with their details", () => {
  assert.equal(healthSummary({ status: "degraded", components: { index: "ok", model: "idle" } }), "API degraded");
  assert.equal(healthSummary({ status: "ok" }), "API ok");
  assert.equal(healthSummary(null), "API degraded");
  assert.equal(
    healthSummary({
      status: "degraded",
      components: { model: "restarting", index: "ok", storage: "down" },
      details: { model: "killed by SIGKILL; retrying in 2 s" },
    }),
    "Model restarting: killed by SIGKILL; retrying in 2 s · Storage down",
  );
});
