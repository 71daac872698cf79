"""A real OpenAI-compatible server for tests: llama.cpp's ``llama-server`` on a tiny model.

``llama-server`` is built once from the llama.cpp source that the ``llama-cpp-python``
sdist on PyPI vendors (``tests/control_plane/build-llama-server.sh``, run by
``make llama-server`` and by ``make test``) into a cache outside the repository:
``$TRADER_RUNTIME_CACHE`` (default ``${XDG_CACHE_HOME:-~/.cache}/trader-runtime``)
``/llama-server-<version>/llama-server``; ``LLAMA_SERVER`` names another binary.

The model is written by the test with the ``gguf`` package: llama architecture, 2 layers,
width 64, random weights, a byte-level ``gpt2`` vocabulary of the 256 bytes plus the
ChatML specials, and a ChatML chat template. A purely random model answers garbage even
under a grammar (invalid UTF-8, runs of whitespace, sometimes a 500 from the server);
with ``printable_bias`` every token embedding carries one constant direction that the
output layer maps onto the printable ASCII tokens, so grammar-constrained answers are
schema-valid JSON and the happy path runs end to end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

#: The llama-cpp-python release whose vendored llama.cpp is built (keep in step with the script).
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
BUILD_SCRIPT = Path(__file__).with_name("build-llama-server.sh")

_CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def cache_dir() -> Path:
    root = os.environ.get("TRADER_RUNTIME_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trader-runtime"


def binary() -> Path:
    """The ``llama-server`` executable (``LLAMA_SERVER`` or the cached build)."""
    named = os.environ.get("LLAMA_SERVER")
    return Path(named) if named else cache_dir() / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}" / "llama-server"


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode map: the 256 byte tokens of a byte-level BPE vocabulary."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    mapping = dict(zip(printable, codes, strict=True))
    return [chr(mapping[byte]) for byte in range(256)]


def write_tiny_model(path: Path, *, seed: int = 0, printable_bias: bool = True) -> Path:
    """Write the random-weight GGUF model described in the module doc to ``path``."""
    import gguf

    n_embd, n_ff, n_layer, n_head = 64, 128, 2, 4
    tokens = _byte_tokens() + ["<|im_start|>", "<|im_end|>"]
    n_vocab = len(tokens)
    im_end = n_vocab - 1
    rng = np.random.default_rng(seed)

    def rand(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("trader-runtime-tiny-random")
    writer.add_context_length(32768)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * 256 + [gguf.TokenType.CONTROL] * 2)
    writer.add_token_merges(["Ġ Ġ"])
    writer.add_bos_token_id(n_vocab - 2)
    writer.add_eos_token_id(im_end)
    writer.add_add_bos_token(False)
    writer.add_chat_template(_CHATML)

    embeddings = rand(n_vocab, n_embd, scale=1.0)
    output = rand(n_vocab, n_embd, scale=1.0)
    if printable_bias:
        # Dimension 0 is a constant of every token's embedding; the residual stream keeps
        # it through both (small) layers, and the output layer turns it into a large logit
        # for printable ASCII (space to tilde) and the end of turn.
        embeddings[:, 0] = 8.0
        output[:, 0] = -4.0
        output[ord(" "):ord("~") + 1, 0] = 4.0
        output[im_end, 0] = 4.0
    writer.add_tensor("token_embd.weight", embeddings)
    for layer in range(n_layer):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{prefix}.{name}.weight", rand(n_embd, n_embd))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", rand(n_ff, n_embd))
        writer.add_tensor(f"{prefix}.ffn_up.weight", rand(n_ff, n_embd))
        writer.add_tensor(f"{prefix}.ffn_down.weight", rand(n_embd, n_ff))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", output)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def llama_server(model: Path, *, log_path: Path, api_key: str | None = None,
                 ctx_size: int = 32768, startup_s: float = 60.0) -> Iterator[str]:
    """Run ``llama-server`` on ``model``; yields its OpenAI base URL (``http://127.0.0.1:P/v1``).

    Raises RuntimeError when the binary is missing or the server is not healthy in ``startup_s``."""
    exe = binary()
    if not exe.is_file():
        raise RuntimeError(f"{exe} is missing: run `make llama-server` (builds it in about 4 minutes)")
    port = _free_port()
    args = [str(exe), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", str(ctx_size),
            "-np", "1", "-t", "1", "--jinja", "--no-webui", "--seed", "7"]  # sampling seed: repeatable answers
    if api_key:
        args += ["--api-key", api_key]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama-server exited {process.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama-server not healthy in {startup_s}s: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
