#!/usr/bin/env bash
# Build llama.cpp's llama-server (the real OpenAI-compatible server of the LLM tests) from
# the llama.cpp source that the llama-cpp-python sdist on PyPI vendors, into a cache
# outside the repository. Prints the binary's path. Idempotent: a cached build is reused.
#
#   tests/control_plane/build-llama-server.sh            # or: make llama-server
#
# Cache: $TRADER_RUNTIME_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/trader-runtime)/llama-server-VERSION/.
# Needs cmake, a C++17 compiler and PyPI; about 4 minutes on 2 cores, a ~15 MB static
# binary, no UI, no OpenSSL, no curl: nothing is downloaded when it runs.
set -euo pipefail

VERSION=0.3.36   # keep in step with LLAMA_CPP_PYTHON_VERSION in llama_testkit.py
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
PYTHON=${PYTHON:-python3}
CACHE=${TRADER_RUNTIME_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trader-runtime}
DEST="$CACHE/llama-server-$VERSION"

if [ -x "$DEST/llama-server" ]; then
    echo "$DEST/llama-server"
    exit 0
fi
command -v cmake >/dev/null || { echo "build-llama-server: cmake is needed" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "build-llama-server: llama-cpp-python $VERSION sdist -> $DEST (about 4 minutes)" >&2
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$work" >&2
echo "$SHA256  $work/llama_cpp_python-$VERSION.tar.gz" | sha256sum --check --quiet
tar xzf "$work/llama_cpp_python-$VERSION.tar.gz" -C "$work"
cmake -S "$work/llama_cpp_python-$VERSION/vendor/llama.cpp" -B "$work/build" \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF \
    > "$work/cmake.log" 2>&1 || { tail -30 "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" --target llama-server -j"$(nproc)" > "$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; exit 1; }
mkdir -p "$DEST"
install -m 755 "$work/build/bin/llama-server" "$DEST/llama-server.tmp.$$"
mv -f "$DEST/llama-server.tmp.$$" "$DEST/llama-server"
echo "$DEST/llama-server"
