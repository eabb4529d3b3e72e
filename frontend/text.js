// Pure text helpers of the page: counts, file extensions, times, latencies, citation markers, the words to mark in
// a passage, the health line. No DOM, no page state (they run under node in tests/frontend/text.test.mjs).

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** "Report.PDF" -> "pdf"; "" when the name has no dot. */
export function extensionOf(name) {
  const i = name.lastIndexOf(".");
  return i === -1 ? "" : name.slice(i + 1).toLowerCase();
}

/** "just now", "5 min ago", "3 h ago", else the date; "" for a time that does not parse. */
export function timeAgo(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.round((now - t) / 1000);
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  return new Date(t).toLocaleDateString();
}

export function formatLatency(ms) {
  if (typeof ms !== "number") return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

const MARKER = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;

/**
 * An answer's text split at its citation markers: "A [1, 2]." -> [{text: "A "}, {n: 1}, {n: 2}, {text: "."}].
 * The page renders the text parts as text nodes and each n as a citation button.
 */
export function answerParts(text) {
  const parts = [];
  let last = 0;
  for (const m of text.matchAll(MARKER)) {
    if (m.index > last) parts.push({ text: text.slice(last, m.index) });
    for (const part of m[1].split(/[,;]/)) parts.push({ n: Number(part.trim()) });
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}

/** The supporting sentence of a citation (offsets in code points), or "" when it carries none. */
export function supportText(c) {
  const start = Number(c.support_start) || 0;
  const end = Number(c.support_end) || 0;
  return c.text && end > start ? Array.from(c.text).slice(start, end).join("") : "";
}

const STOPWORDS = new Set(
  ("the a an and or of to in on at for by with from as is are was were be been being it its this that these those " +
    "what which who whom whose when where why how does did do can could would should will shall may might " +
    "about into over under than then there their they them you your we our i me my not no yes").split(" "),
);

/** The question's key words (3+ letters or with a digit, no stop words), lower-cased, each once. */
export function highlightTerms(question) {
  const words = question.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
  return [...new Set(words.filter((w) => (w.length >= 3 || /\d/.test(w)) && !STOPWORDS.has(w)))];
}

/** "Model restarting: killed by SIGKILL; retrying in 2 s" from /v1/health's components and details. */
export function healthSummary(data) {
  const components = data?.components || {};
  const details = data?.details || {};
  const bad = Object.entries(components).filter(([, v]) => !["ok", "starting", "idle"].includes(v));
  if (!bad.length) return `API ${data?.status || "degraded"}`;
  return bad
    .map(([name, v]) => {
      const label = name.charAt(0).toUpperCase() + name.slice(1);
      return details[name] ? `${label} ${v}: ${details[name]}` : `${label} ${v}`;
    })
    .join(" · ");
}
