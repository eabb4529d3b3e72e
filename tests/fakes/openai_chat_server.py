"""A stand-in for llama.cpp's OpenAI-compatible server, run as a child process exactly where LlamaServer
runs llama_serve: same command-line arguments (--model, --host, --port; the rest ignored), /v1/models listing
the model path, /v1/chat/completions answering with the extractive test model, streamed word by word (SSE
chunks, a usage chunk, [DONE]) with FAKE_CHAT_DELAY_S between words so a test can kill it mid-stream.

Run: python tests/fakes/openai_chat_server.py --model M --host 127.0.0.1 --port P
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "lambdas"))

from lectern.adapters.local.extractive_model import ExtractiveChatModel
from lectern.domain.models import ChatMessage

DELAY_S = float(os.environ.get("FAKE_CHAT_DELAY_S", "0.05"))
MODEL = ExtractiveChatModel()


def _chunk(text: str | None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    body = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


class Handler(BaseHTTPRequestHandler):
    model_path = ""

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": self.model_path}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        messages = [ChatMessage(m["role"], m["content"]) for m in body["messages"]]
        words = MODEL.generate(messages, max_tokens=body.get("max_tokens", 64), temperature=0).text.split(" ")
        if not body.get("stream"):
            self._json(
                200,
                {
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": " ".join(words)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 10,
                        "completion_tokens": len(words),
                        "total_tokens": 10 + len(words),
                    },
                },
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, word in enumerate(words):
            self.wfile.write(_chunk(word if i == 0 else " " + word))
            self.wfile.flush()
            time.sleep(DELAY_S)
        self.wfile.write(_chunk(None, "stop"))
        usage = {"prompt_tokens": 10, "completion_tokens": len(words), "total_tokens": 10 + len(words)}
        self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args, _ = parser.parse_known_args()
    Handler.model_path = args.model
    print(f"fake chat server for {args.model} on {args.host}:{args.port}", flush=True)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
