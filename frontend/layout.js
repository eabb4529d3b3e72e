// Where a citation sits on its page: the page image's URL and the regions to highlight over it, from the
// citation's word boxes ([start, end, x0, y0, x1, y1]: the word's offsets in the passage text, in code points, and
// its box as fractions of the page, origin top left). Pure (no DOM): tests/frontend/layout.test.mjs runs it.

/** The API path of a citation's page image. */
export function pageImagePath(c) {
  return `/v1/documents/${encodeURIComponent(c.document_id)}/pages/${Number(c.page) || 1}/image`;
}

/** Whether the passage view can show the citation on its page (the server sent its words' boxes). */
export function hasLayout(c) {
  return Array.isArray(c?.boxes) && c.boxes.length > 0;
}

/**
 * Word boxes merged into one rectangle per line (words whose vertical extents overlap by half and that follow one
 * another), each padded by `pad` (a fraction of the page) and kept inside the page: [{x, y, w, h}].
 */
export function lineRects(boxes, pad = 0.004) {
  const rects = [];
  let cur = null;
  for (const [, , x0, y0, x1, y1] of boxes) {
    const h = y1 - y0;
    const sameLine =
      cur && Math.min(cur.y1, y1) - Math.max(cur.y0, y0) > 0.5 * Math.min(h, cur.y1 - cur.y0) && x0 >= cur.x0 - 0.01;
    if (sameLine) {
      cur.x1 = Math.max(cur.x1, x1);
      cur.y0 = Math.min(cur.y0, y0);
      cur.y1 = Math.max(cur.y1, y1);
    } else {
      if (cur) rects.push(cur);
      cur = { x0, y0, x1, y1 };
    }
  }
  if (cur) rects.push(cur);
  return rects.map((r) => {
    const x = Math.max(0, r.x0 - pad);
    const y = Math.max(0, r.y0 - pad);
    return { x, y, w: Math.min(1, r.x1 + pad) - x, h: Math.min(1, r.y1 + pad) - y };
  });
}

/**
 * The regions of a citation on its page: `passage`, the whole passage's lines; `support`, the lines of the
 * sentence that supports the answer (support_start..support_end), or the passage's when it has no span.
 */
export function citationRegions(c) {
  if (!hasLayout(c)) return { passage: [], support: [] };
  const start = Number(c.support_start) || 0;
  const end = Number(c.support_end) || 0;
  const inSpan = end > start ? c.boxes.filter((b) => b[0] < end && b[1] > start) : [];
  return { passage: lineRects(c.boxes), support: lineRects(inSpan.length ? inSpan : c.boxes) };
}

/** A rectangle as CSS percentages of the page image (the overlay is positioned over the image). */
export function rectStyle(r) {
  const pct = (v) => `${(v * 100).toFixed(3)}%`;
  return { left: pct(r.x), top: pct(r.y), width: pct(r.w), height: pct(r.h) };
}
