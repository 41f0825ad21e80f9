# ncviz dashboard for a shared (GPU) server.
#   docker build -t ncviz .            # torch from PyPI (a CUDA build; runs on CPU-only hosts too)
#   docker build -t ncviz --build-arg TORCH_INDEX_URL=<PyTorch's CPU or CUDA wheel index> .
#   docker run -d --restart unless-stopped -p 8501:8501 -v ncviz-cache:/cache \
#       -v /srv/runs:/data:ro [--gpus all] ncviz
# The image installs the wheel `pip wheel .` builds (the dashboard and the bundled runs inside, as
# `pip install ncviz` gives them) and runs `ncviz serve` on the log folder NCVIZ_LOGDIR (/data).
# Offline builds: put wheels (pip download) in wheels/ and pass BASE_IMAGE=<a local image with
# python3.11>; tests/docker/smoke.sh does both.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NCVIZ_SHARED=1 \
    NCVIZ_CACHE_DIR=/cache \
    NCVIZ_LOGDIR=/data \
    NCVIZ_MAX_UPLOAD_MB=512 \
    NUMBA_CACHE_DIR=/app/.numba-cache \
    MPLCONFIGDIR=/tmp \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION=true \
    STREAMLIT_SERVER_MAX_UPLOAD_SIZE=512 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_CLIENT_TOOLBAR_MODE=minimal \
    STREAMLIT_CLIENT_SHOW_ERROR_DETAILS=none

WORKDIR /app

# Dependencies first, in their own layer: wheels/ (may hold only .gitkeep) allows offline builds.
COPY requirements.txt ./
COPY wheels/ /wheels/
# DL3013: torch is pinned through TORCH_SPEC (torch==2.13.0); hadolint cannot see into the ARG.
# hadolint ignore=DL3013
RUN if ls /wheels/*.whl >/dev/null 2>&1; then \
        python3 -m pip install --no-cache-dir --no-index --find-links /wheels \
            -r requirements.txt "setuptools>=77"; \
    elif [ -n "${TORCH_INDEX_URL}" ]; then \
        python3 -m pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}" && \
        python3 -m pip install --no-cache-dir -r requirements.txt "setuptools>=77"; \
    else \
        python3 -m pip install --no-cache-dir -r requirements.txt "setuptools>=77"; \
    fi && rm -rf /wheels

RUN useradd --create-home --uid 10001 ncviz && mkdir -p /cache /data /app/.numba-cache \
    && chown ncviz:ncviz /cache /app/.numba-cache

# The wheel, built here from the sources as `pip wheel .` builds it and installed into the
# root-owned site-packages: the app user can read the code and the bundled runs, never change them.
COPY pyproject.toml setup.py README.md /src/
COPY ncviz/ /src/ncviz/
COPY app/ /src/app/
COPY checkpoints/ /src/checkpoints/
RUN python3 -m pip wheel --no-cache-dir --no-deps --no-build-isolation -w /tmp/dist /src \
    && python3 -m pip install --no-cache-dir --no-deps /tmp/dist/ncviz-*.whl \
    && rm -rf /src /tmp/dist

USER 10001
# Compile umap/numba and analyse the bundled runs now, so the first page is fast.
RUN python3 -m ncviz.server.warmup

VOLUME ["/cache"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"]
CMD ["ncviz", "serve", "--host", "0.0.0.0", "--port", "8501"]
