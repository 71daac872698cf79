"""A local OpenAI-compatible server for tests, speaking the wire protocol
(``POST /v1/chat/completions``, bearer auth, JSON bodies as OpenAI documents), answering
programmed replies in order."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import orjson
from aiohttp import web

KEY = "sk-test-0123456789abcdef"


def completion(content: Any, *, finish: str = "stop", refusal: str | None = None, model: str = "m-std") -> dict:
    text = content if isinstance(content, str) else orjson.dumps(content).decode()
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "finish_reason": finish,
                     "message": {"role": "assistant", "content": text, "refusal": refusal}}],
        "usage": {"prompt_tokens": 812, "completion_tokens": 41, "total_tokens": 853},
    }


class OpenAIStub:
    """Answers programmed replies in order: (status, headers, body) or "hang"."""

    def __init__(self) -> None:
        self.replies: deque[Any] = deque()
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.auth.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        self.requests.append(await request.json())
        reply = self.replies.popleft() if self.replies else (500, {}, {"error": {"message": "no reply programmed"}})
        if reply == "hang":
            await asyncio.sleep(3600)
        status, headers, payload = reply
        return web.Response(status=status, headers=headers,
                            body=payload if isinstance(payload, bytes) else orjson.dumps(payload),
                            content_type="application/json")


async def start_stub(stub: OpenAIStub) -> web.AppRunner:
    """Serve ``stub`` on a free loopback port; sets ``stub.base_url`` (``http://127.0.0.1:P/v1``)."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", stub.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stub.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    return runner
