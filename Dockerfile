# The serving image: FastAPI + onnxruntime and the bundles in model_store/. No torch, no training code.
#
#   docker build -t lstm-service .
#   docker run --rm -p 8000:8000 --read-only --tmpfs /tmp lstm-service
#
# Where no registry is reachable, build FROM a local base: --build-arg BASE_IMAGE=localhost/python:3.11-slim-bookworm
# (docker/README.md has the podman commands). Any Debian-based image with python3 and the venv module works.
# No `# syntax=` line on purpose: BuildKit would pull that frontend from a registry, even offline.
ARG BASE_IMAGE=python:3.12-slim

# ---- builder: a virtual environment with the service and its serving dependencies ----------------------
FROM ${BASE_IMAGE} AS builder

# A package mirror, if PyPI is not where yours lives (--build-arg PIP_INDEX_URL=...). Behind a proxy, pass
# --build-arg HTTPS_PROXY=... (predefined: docker keeps it out of the image history). Behind a TLS-
# intercepting proxy, mount its CA bundle over the system one for the build (docker/README.md). Build
# args live in this stage only: none of them reaches the final image.
ARG PIP_INDEX_URL=https://pypi.org/simple

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# binutils, for `strip` below; the builder stage is thrown away, so nothing of apt reaches the image.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/venv
WORKDIR /src

# Dependencies first, in their own layer, so editing service/ does not re-download them: install the
# project's `serve` extra against an empty stand-in package, then drop the stand-in.
COPY pyproject.toml README.md* ./
RUN mkdir service && touch service/__init__.py \
 && /opt/venv/bin/pip install '.[serve]' \
 && /opt/venv/bin/pip uninstall --yes lstm-service

# Drop what serving never loads (about 70 MB of 240): the packages' own test suites; jieba's
# part-of-speech tagger, keyword extraction and paddle model (the tokenizer only calls jieba.tokenize);
# onnxruntime's transformer-optimisation and model-conversion tools; and the debug info that some
# extension modules ship (uvloop: 13 MB -> 2 MB). Only files that carry a .debug_info section are
# stripped, so the libraries auditwheel rewrote (*.libs/) are left alone. The check at the end proves
# that what is left still imports, runs an event loop and segments Chinese.
RUN cd /opt/venv/lib/python3*/site-packages \
 && rm -rf jieba/posseg jieba/analyse jieba/lac_small onnxruntime/transformers onnxruntime/tools \
 && find . -depth -type d -name tests -prune -exec rm -rf {} + \
 && find . -name '*.so' -not -path '*.libs/*' -exec sh -c \
      'for f; do if readelf -S "$f" | grep -q "\.debug_info"; then strip --strip-debug "$f"; fi; done' sh {} + \
 && /opt/venv/bin/python -c "import asyncio, jieba, numpy, onnxruntime, httptools, uvloop; \
uvloop.run(asyncio.sleep(0)); assert len(list(jieba.tokenize('我们在北京工作'))) > 1"

# The service itself, as a regular (non-editable) install. Only service/ is copied, so the package
# discovery in pyproject.toml finds no `training` package: the image carries no training code.
COPY service/ service/
# pip (and setuptools on Pythons before 3.12) are not needed at run time.
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && /opt/venv/bin/python -c "import service, onnxruntime, fastapi, uvicorn"

# ---- runtime ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="lstm-service" \
      org.opencontainers.image.description="Embedding + LSTM text classifier served with FastAPI and onnxruntime" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
# The default bundles. Mount your own store over /models (read-only is enough) or set LSTM_SERVICE_MODEL_STORE.
COPY model_store/ /models/

# Everything is configured through LSTM_SERVICE_* variables (see the project README for all of them).
# The root filesystem can be read-only: bytecode is compiled at install time, and the only writable
# place anything needs is /tmp (mount a tmpfs there).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    LSTM_SERVICE_MODEL_STORE=/models \
    LSTM_SERVICE_HOST=0.0.0.0 \
    LSTM_SERVICE_PORT=8000 \
    LSTM_SERVICE_WORKERS=1 \
    LSTM_SERVICE_LOG_FORMAT=json \
    LSTM_SERVICE_DRAIN_SECONDS=3

USER 10001:10001
WORKDIR /tmp
EXPOSE 8000

# Ready = every model loaded and verified (a 503 or no answer fails the check). Python's urllib, since
# slim images have no curl. The start period covers loading and verifying the models.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; port = os.environ.get('LSTM_SERVICE_PORT', '8000'); sys.exit(0 if u.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"]

# Exec form: the server is PID 1 and receives SIGTERM itself (`docker stop`), then drains and exits 0.
# The drain window (LSTM_SERVICE_DRAIN_SECONDS) plus the longest request must fit in the stop timeout
# (docker: 10 s by default).
ENTRYPOINT ["lstm-service"]
CMD ["serve"]
