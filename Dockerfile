# The per-user machine image (also runs the control plane with a different command).
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY machine ./machine
COPY sandbox ./sandbox
COPY indicators ./indicators
COPY control_plane ./control_plane
COPY exchange_sim ./exchange_sim
COPY fly_engine ./fly_engine
RUN pip install --no-cache-dir . && useradd --system --uid 10001 machine
# The machine starts as root only so that sandbox workers can drop to an
# unprivileged uid and enter an empty network namespace; it serves on 8080.
EXPOSE 8080
CMD ["trader-machine"]
