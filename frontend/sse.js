// Server-sent events over fetch: the text/event-stream format, parsed incrementally. Pure: no DOM, no page state
// (it runs under node in tests/frontend/sse.test.mjs).

/**
 * Incremental parser for the text/event-stream format. Feed it decoded text in any chunking; it calls
 * onEvent(name, data) for every complete event (data lines joined with "\n"; name defaults to "message").
 */
export class SSEParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.event = "";
    this.data = [];
  }

  push(text) {
    const buf = this.buffer + text;
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i];
      if (c !== "\n" && c !== "\r") continue;
      if (c === "\r" && i + 1 === buf.length) break; // could be the first half of \r\n: wait for more
      const line = buf.slice(start, i);
      if (c === "\r" && buf[i + 1] === "\n") i++;
      start = i + 1;
      this.line(line);
    }
    this.buffer = buf.slice(start);
  }

  /** End of stream: be lenient and deliver a last event that lacks its blank line. */
  end() {
    if (this.buffer) this.line(this.buffer.replace(/\r$/, ""));
    this.buffer = "";
    this.line("");
  }

  line(line) {
    if (line === "") {
      if (this.data.length) this.onEvent(this.event || "message", this.data.join("\n"));
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    // "id" and "retry" do not matter for a one-shot stream.
  }
}

/** Reads a fetch Response body as SSE, calling onEvent(name, data) as events arrive. */
export async function readEventStream(response, onEvent) {
  const parser = new SSEParser(onEvent);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.push(decoder.decode(value, { stream: true }));
  }
  parser.push(decoder.decode());
  parser.end();
}
