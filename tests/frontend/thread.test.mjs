// The page's conversation state (frontend/thread.js) under node.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createThread, queryBody, recordTurn, resetThread, searchedNote } from "../../frontend/thread.js";

test("the first question starts a conversation, follow-ups carry its id", () => {
  const t = createThread();
  assert.deepEqual(queryBody(t, "What is the meal allowance?", 5), { question: "What is the meal allowance?", top_k: 5 });
  recordTurn(t, "What is the meal allowance?", {
    conversation_id: "c1",
    answer: "55 EUR [1]",
    citations: [{ filename: "travel.md" }, { filename: "travel.md" }],
    rewrite: "none",
  });
  assert.deepEqual(queryBody(t, "And where?", 5), { question: "And where?", top_k: 5, conversation_id: "c1" });
  const turn = recordTurn(t, "And where?", {
    conversation_id: "c1",
    answer: "In Germany [1]",
    standalone_question: "And where? (meal allowance)",
    rewrite: "terms",
  });
  assert.equal(turn.standalone, "And where? (meal allowance)");
  assert.deepEqual(
    t.turns.map((x) => [x.question, x.sources]),
    [
      ["What is the meal allowance?", ["travel.md"]],
      ["And where?", []],
    ],
  );
});

test("new conversation forgets the id and the turns", () => {
  const t = createThread();
  recordTurn(t, "q", { conversation_id: "c1", answer: "a" });
  resetThread(t);
  assert.deepEqual(t, { conversationId: null, turns: [] });
  assert.equal(queryBody(t, "q", 3).conversation_id, undefined);
});

test("an answer without a conversation (an older server) keeps the page working", () => {
  const t = createThread();
  const turn = recordTurn(t, "q", null);
  assert.equal(t.conversationId, null);
  assert.deepEqual([turn.answer, turn.abstained, turn.standalone], ["", false, "q"]);
});

test("searchedNote says what was searched only when the question was rewritten", () => {
  assert.equal(searchedNote({ rewrite: "none", standalone_question: "q" }), "");
  assert.equal(searchedNote(undefined), "");
  assert.equal(searchedNote({ rewrite: "model", standalone_question: "How many caps did Roberts win?" }), "Searched: How many caps did Roberts win?");
  assert.match(searchedNote({ rewrite: "terms", standalone_question: "And? (meal)" }), /^Searched: And\? \(meal\) \(with the previous/);
});
