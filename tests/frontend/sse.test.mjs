// The page's SSE parser (frontend/sse.js) under node: chunking, line endings, comments, the end of the stream.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SSEParser, readEventStream } from "../../frontend/sse.js";

function collect(feed) {
  const events = [];
  const parser = new SSEParser((name, data) => events.push([name, data]));
  feed(parser);
  return events;
}

// every rule in one stream: named and default events, multi-line data, CRLF, a lone CR, comments (keep-alives),
// "data:" without a space, a field without a colon, id/retry ignored, an event with no data dropped
const STREAM =
  ": keep-alive\n\n" +
  'event: token\ndata: {"text":"Hel"}\n\n' +
  "event: token\r\ndata: line one\r\ndata: line two\r\n\r\n" +
  "data:no space\rid: 7\rretry: 100\r\r" +
  "event: status\n: a comment inside an event\ndata\n\n" +
  "event: ignored-without-data\n\n" +
  'event: done\ndata: {"answer":"é 🙂"}\n\n';
const EXPECTED = [
  ["token", '{"text":"Hel"}'],
  ["token", "line one\nline two"],
  ["message", "no space"],
  ["status", ""],
  ["done", '{"answer":"é 🙂"}'],
];

test("a whole stream in one chunk gives every event", () => {
  assert.deepEqual(
    collect((p) => {
      p.push(STREAM);
      p.end();
    }),
    EXPECTED,
  );
});

test("the same events whatever the split point, one split anywhere in the stream", () => {
  for (let i = 0; i <= STREAM.length; i++) {
    const events = collect((p) => {
      p.push(STREAM.slice(0, i));
      p.push(STREAM.slice(i));
      p.end();
    });
    assert.deepEqual(events, EXPECTED, `split at ${i}: ${JSON.stringify(STREAM.slice(Math.max(0, i - 5), i + 5))}`);
  }
});

test("one character at a time, and CR and LF of a CRLF arriving in separate chunks", () => {
  assert.deepEqual(
    collect((p) => {
      for (const c of STREAM) p.push(c);
      p.end();
    }),
    EXPECTED,
  );
  // a CR at the end of a chunk is held until the next chunk says whether an LF follows
  const events = collect((p) => {
    p.push("data: a\r");
    p.push("\ndata: b\r");
    p.push("\n\r");
    p.push("\n");
  });
  assert.deepEqual(events, [["message", "a\nb"]]);
});

test("events are delivered as soon as their blank line arrives, not at the end", () => {
  const events = [];
  const p = new SSEParser((name, data) => events.push([name, data]));
  p.push("event: token\ndata: 1\n");
  assert.deepEqual(events, []);
  p.push("\nevent: token\ndata: 2");
  assert.deepEqual(events, [["token", "1"]]);
});

test("an event without its trailing blank line is delivered at the end of the stream", () => {
  for (const tail of ["event: done\ndata: {}", "event: done\ndata: {}\n", "event: done\ndata: {}\r", "data: x\r\n"]) {
    const events = collect((p) => {
      p.push("data: first\n\n");
      p.push(tail);
      p.end();
    });
    const last = tail.startsWith("data: x") ? ["message", "x"] : ["done", "{}"];
    assert.deepEqual(events, [["message", "first"], last], JSON.stringify(tail));
  }
});

test("an empty stream, only comments, or only a half event without data give no event", () => {
  assert.deepEqual(collect((p) => p.end()), []);
  assert.deepEqual(
    collect((p) => {
      p.push(": ping\n\n: ping\n\n");
      p.end();
    }),
    [],
  );
  assert.deepEqual(
    collect((p) => {
      p.push("event: token");
      p.end();
    }),
    [],
  );
});

function responseOf(bytes, cuts) {
  const chunks = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    chunks.push(bytes.slice(start, cut));
    start = cut;
  }
  const body = new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
}

test("readEventStream decodes UTF-8 split at every byte boundary, inside multi-byte characters too", async () => {
  const bytes = new TextEncoder().encode(STREAM);
  for (let i = 0; i <= bytes.length; i++) {
    const events = [];
    await readEventStream(responseOf(bytes, [i]), (name, data) => events.push([name, data]));
    assert.deepEqual(events, EXPECTED, `byte split at ${i}`);
  }
});

test("readEventStream delivers a last event that lacks its blank line", async () => {
  const bytes = new TextEncoder().encode('event: token\ndata: {"text":"a"}\n\nevent: done\ndata: {"answer":"a"}');
  const events = [];
  await readEventStream(responseOf(bytes, [3, 20, 30]), (name, data) => events.push([name, data]));
  assert.deepEqual(events, [
    ["token", '{"text":"a"}'],
    ["done", '{"answer":"a"}'],
  ]);
});
