#!/usr/bin/env bash
# Container smoke test: build the image offline, run it on 127.0.0.1, wait for health, load the demo
# page in headless chromium, check a plot, and remove everything it created.
#
#   sudo bash tests/docker/smoke.sh        (needs a running Docker engine and debootstrap)
#
# Offline: no public image is pulled and pip inside the build never reaches an index. The base
# image is a Debian bookworm made with debootstrap (python3 + a venv) and `docker import`ed; the
# wheels are downloaded on the host into wheels/ and installed with --no-index.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
if ! docker info >/dev/null 2>&1; then
    echo "smoke: no usable Docker engine; skipped"
    exit 0
fi
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
BASE=ncviz-smoke-base:bookworm
IMAGE=ncviz-smoke:$$
NAME=ncviz-smoke-$$
ROOTFS=${NCVIZ_ROOTFS:-/tmp/ncviz-rootfs}
KEEP_BASE=${KEEP_BASE:-0}
SHOTS=$(mktemp -d)
created_base=0
created_rootfs=0

# Everything this script creates goes: the container with its anonymous /cache volume (-v), the
# image, the base image and the debootstrap tree it made (unless KEEP_BASE=1), wheels, screenshots.
cleanup() {
    docker rm -f -v "$NAME" >/dev/null 2>&1 || true
    docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
    if [ "$created_base" = 1 ] && [ "$KEEP_BASE" != 1 ]; then docker rmi -f "$BASE" >/dev/null 2>&1 || true; fi
    if [ "$created_rootfs" = 1 ] && [ "$KEEP_BASE" != 1 ]; then rm -rf "$ROOTFS"; fi
    find "$ROOT/wheels" -name '*.whl' -delete
    rm -rf "$SHOTS"
}
trap cleanup EXIT

t0=$(date +%s)
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
        created_rootfs=1
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS"
    fi
    chroot "$ROOTFS" python3 -m venv /opt/venv
    tar -C "$ROOTFS" -c . | docker import \
        --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$BASE" >/dev/null
    created_base=1
fi
echo "smoke: base image ready after $(( $(date +%s) - t0 )) s"

# setuptools: the image builds the ncviz wheel itself (pip wheel --no-build-isolation)
"$PYTHON" -m pip download -q --only-binary=:all: -d "$ROOT/wheels" -r requirements.txt "setuptools>=77"
t1=$(date +%s)
docker build -q --build-arg BASE_IMAGE="$BASE" -t "$IMAGE" . >/dev/null
echo "smoke: image built in $(( $(date +%s) - t1 )) s ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f GB", $1/1e9}'))"

# a run mounted in the log folder (NCVIZ_LOGDIR=/data) opens by its link
docker run -d --name "$NAME" -p 127.0.0.1::8501 \
    -v "$ROOT/checkpoints/digits-mlp:/data/sweep/mlp:ro" "$IMAGE" >/dev/null
PORT=$(docker port "$NAME" 8501/tcp | head -1 | sed 's/.*://')
t2=$(date +%s)
for _ in $(seq 1 120); do
    status=$(docker inspect -f '{{.State.Health.Status}}' "$NAME")
    curl -fs "http://127.0.0.1:$PORT/_stcore/health" >/dev/null 2>&1 && break
    [ "$status" = unhealthy ] && { docker logs "$NAME"; exit 1; }
    sleep 1
done
echo "smoke: healthy after $(( $(date +%s) - t2 )) s on port $PORT"

# the app user can read the code but not change it
docker exec "$NAME" python3 -c 'import os, sys, ncviz; code = os.path.dirname(ncviz.__file__)
sys.exit(not os.access(code + "/cli.py", os.R_OK) or os.access(code + "/cli.py", os.W_OK)
         or os.access(code, os.W_OK))' || { echo "smoke: app code is writable by the app user"; exit 1; }

"$PYTHON" - "$PORT" "$SHOTS" <<'PY'
import sys, time
from playwright.sync_api import sync_playwright
port, shots = sys.argv[1], sys.argv[2]
flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    start = time.perf_counter()
    page.goto(f"http://127.0.0.1:{port}")
    page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=f"{shots}/docker.png", full_page=True)
    print(f"smoke: demo page drew its first plot {time.perf_counter() - start:.1f} s after loading")
    page.goto(f"http://127.0.0.1:{port}/training?run=sweep/mlp")  # the log folder's run
    page.locator(".js-plotly-plot").first.wait_for(timeout=300_000)
    body = page.inner_text("body")
    assert "Traceback" not in body and "not available here" not in body, body[:500]
    print("smoke: the mounted log-folder run opened by its link")
    browser.close()
PY
echo "smoke: passed in $(( $(date +%s) - t0 )) s"
