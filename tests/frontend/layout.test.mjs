// The passage view's page layout (frontend/layout.js) under node: the page image's path, line rectangles from
// word boxes, and the support span's region.
import assert from "node:assert/strict";
import { test } from "node:test";

import { citationRegions, hasLayout, lineRects, pageImagePath, rectStyle } from "../../frontend/layout.js";

const close = (a, b) => Math.abs(a - b) < 1e-9;

test("the page image path names the document and page, escaped", () => {
  assert.equal(pageImagePath({ document_id: "a b/c", page: 3 }), "/v1/documents/a%20b%2Fc/pages/3/image");
  assert.equal(pageImagePath({ document_id: "d" }), "/v1/documents/d/pages/1/image");
});

test("words on one line merge into one rectangle, a new line starts another", () => {
  const boxes = [
    [0, 5, 0.1, 0.1, 0.2, 0.12],
    [6, 10, 0.22, 0.101, 0.3, 0.121],
    [11, 15, 0.1, 0.2, 0.25, 0.22],
  ];
  const rects = lineRects(boxes, 0);
  assert.equal(rects.length, 2);
  assert.ok(close(rects[0].x, 0.1) && close(rects[0].w, 0.2) && close(rects[0].y, 0.1));
  assert.ok(close(rects[0].h, 0.021));
  assert.ok(close(rects[1].y, 0.2) && close(rects[1].w, 0.15));
});

test("a two-column passage: a word far left of the line so far starts a new rectangle", () => {
  const rects = lineRects([[0, 1, 0.6, 0.1, 0.7, 0.12], [2, 3, 0.1, 0.1, 0.2, 0.12]], 0);
  assert.equal(rects.length, 2);
});

test("padding stays inside the page", () => {
  const [r] = lineRects([[0, 1, 0.0, 0.0, 1.0, 0.05]], 0.01);
  assert.equal(r.x, 0);
  assert.equal(r.y, 0);
  assert.ok(r.x + r.w <= 1 && close(r.w, 1));
});

test("the support region holds only the supporting sentence's words", () => {
  const c = {
    text: "Site notice. Brennan Pipeworks is the contractor.",
    support_start: 13,
    support_end: 49,
    boxes: [
      [0, 4, 0.1, 0.1, 0.15, 0.12],
      [5, 12, 0.16, 0.1, 0.25, 0.12],
      [13, 20, 0.1, 0.3, 0.2, 0.32],
      [21, 30, 0.21, 0.3, 0.3, 0.32],
      [31, 33, 0.31, 0.3, 0.33, 0.32],
      [34, 37, 0.34, 0.3, 0.37, 0.32],
      [38, 49, 0.38, 0.3, 0.5, 0.32],
    ],
  };
  const { passage, support } = citationRegions(c);
  assert.equal(passage.length, 2);
  assert.equal(support.length, 1);
  assert.ok(support[0].y > 0.29 && support[0].y < 0.3);
  assert.ok(close(support[0].x, 0.096) && support[0].x + support[0].w > 0.5);
});

test("without a span the whole passage is the support; without boxes there is no layout", () => {
  const c = { text: "a b", boxes: [[0, 1, 0.1, 0.1, 0.2, 0.2]], support_start: 0, support_end: 0 };
  assert.deepEqual(citationRegions(c).support, citationRegions(c).passage);
  assert.equal(hasLayout({ boxes: [] }), false);
  assert.equal(hasLayout({}), false);
  assert.deepEqual(citationRegions({ text: "x" }), { passage: [], support: [] });
});

test("rectangles become CSS percentages", () => {
  assert.deepEqual(rectStyle({ x: 0.1, y: 0.25, w: 0.5, h: 0.02 }), {
    left: "10.000%",
    top: "25.000%",
    width: "50.000%",
    height: "2.000%",
  });
});
