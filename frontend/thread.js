// The conversation the page is in: its id (from the server's first answer) and the turns answered so far.
// Follow-ups are sent with the conversation_id; the server rewrites them into a standalone question and says
// what it searched (standalone_question, rewrite), shown under the question. "New conversation" forgets both.

export function createThread() {
  return { conversationId: null, turns: [] };
}

/** The /v1/query body for a question in this thread. */
export function queryBody(thread, question, topK) {
  const body = { question, top_k: topK };
  if (thread.conversationId) body.conversation_id = thread.conversationId;
  return body;
}

/** Records an answered turn from the `done` data (or the JSON response). Returns the turn. */
export function recordTurn(thread, question, done) {
  const data = done || {};
  if (data.conversation_id) thread.conversationId = data.conversation_id;
  const turn = {
    question,
    answer: typeof data.answer === "string" ? data.answer : "",
    abstained: Boolean(data.abstained),
    standalone: data.standalone_question || question,
    rewrite: data.rewrite || "none",
    sources: Array.isArray(data.citations) ? [...new Set(data.citations.map((c) => c.filename))] : [],
  };
  thread.turns.push(turn);
  return turn;
}

export function resetThread(thread) {
  thread.conversationId = null;
  thread.turns = [];
}

/** "Searched: …" when the server rewrote the follow-up, else "" (nothing to tell). */
export function searchedNote(done) {
  const d = done || {};
  if (!d.rewrite || d.rewrite === "none" || !d.standalone_question) return "";
  const how = d.rewrite === "terms" ? " (with the previous question's key words)" : "";
  return `Searched: ${d.standalone_question}${how}`;
}
