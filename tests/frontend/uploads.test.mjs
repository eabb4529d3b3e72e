// The page's duplicate-upload choice (frontend/uploads.js) under node.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createBody, loadDuplicateChoice, replacesNotice, saveDuplicateChoice } from "../../frontend/uploads.js";

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)) };
}

test("the choice defaults to replace, is remembered, and refuses values the API does not know", () => {
  const s = memoryStorage();
  assert.equal(loadDuplicateChoice(() => s), "replace");
  saveDuplicateChoice(() => s, "keep_both");
  assert.equal(loadDuplicateChoice(() => s), "keep_both");
  saveDuplicateChoice(() => s, "overwrite-everything");
  assert.equal(loadDuplicateChoice(() => s), "keep_both");
  s.setItem("lectern.onDuplicate", "bogus");
  assert.equal(loadDuplicateChoice(() => s), "replace");
  assert.equal(loadDuplicateChoice(() => { throw new Error("denied"); }), "replace");
});

test("the create body carries on_duplicate", () => {
  const file = { name: "policy.pdf", size: 12 };
  assert.deepEqual(createBody(file, "application/pdf", "reject"), {
    filename: "policy.pdf",
    content_type: "application/pdf",
    size_bytes: 12,
    on_duplicate: "reject",
  });
  assert.equal(createBody(file, "application/pdf", undefined).on_duplicate, "replace");
});

test("an upload that replaces documents is announced with their dates; none replaced, no notice", () => {
  assert.equal(replacesNotice("a.md", []), null);
  assert.equal(replacesNotice("a.md", undefined), null);
  const known = new Map([["d1", { created_at: "2026-11-30T10:00:00Z" }]]);
  const one = replacesNotice("a.md", ["d1"], known);
  assert.match(one, /“a\.md” replaces the earlier version \(added 2026-11-30\) once it is indexed/);
  assert.match(one, /keep both/);
  assert.match(replacesNotice("a.md", ["d1", "d2"], known), /replaces 2 earlier versions \(added 2026-11-30\)/);
});
