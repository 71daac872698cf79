"""The control plane's one way to ask an LLM: an OpenAI-compatible chat-completions client
that returns a JSON object or a :class:`ChatFailure` with the reason (``_chat.py``).

Used by the analysis endpoint's ``llm`` backend and by trader generation."""

from control_plane.llm._chat import ChatAnswer, ChatClient, ChatFailure, FailureKind, add_usage, cost_usd, parse_answer

__all__ = ["ChatAnswer", "ChatClient", "ChatFailure", "FailureKind", "add_usage", "cost_usd", "parse_answer"]
