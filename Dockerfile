# The serving image: FastAPI + onnxruntime and the bundles in model_store/. No torch, no training code.
#
#   docker build -t lstm-service \
#       --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#       --build-arg CREATED="$(git log -1 --format=%cI)" --build-arg SOURCE=https://example.org/your/repo .
#   docker run --rm -p 127.0.0.1:8000:8000 --read-only --tmpfs /tmp lstm-service
#
# Reproducible: the dependencies are the pinned, hashed versions of requirements/serve.txt (the same file
# `make run` installs), so two builds of one commit install the same files. Pin the base by digest too
# (--build-arg BASE_IMAGE=python:3.12-slim@sha256:...; docker/README.md says how to find it).
# Where no registry is reachable, build FROM a local base: --build-arg BASE_IMAGE=localhost/python:3.11-slim-bookworm
# (docker/README.md has the podman commands). Any Debian-based image with python3 and the venv module works.
# No `# syntax=` line on purpose: BuildKit would pull that frontend from a registry, even offline.
ARG BASE_IMAGE=python:3.12-slim

# ---- deps: a virtual environment with the pinned serving dependencies, and nothing else ----------------
# Its only input is requirements/serve.txt (or serve-grpc.txt): edits to the code, the docs or the models
# never rebuild it.
FROM ${BASE_IMAGE} AS deps

# A package mirror, if PyPI is not where yours lives (--build-arg PIP_INDEX_URL=...). Behind a proxy, pass
# --build-arg HTTPS_PROXY=... (predefined: docker keeps it out of the image history). Behind a TLS-
# intercepting proxy, mount its CA bundle over the system one for the build (docker/README.md). Build
# args live in the build stages only: none of them reaches the final image.
ARG PIP_INDEX_URL=https://pypi.org/simple
# Which lock to install: serve (the default image) or serve-grpc (the same pins plus grpcio, for
# LSTM_SERVICE_GRPC_PORT; docs/grpc.md). Tag the gRPC image apart: --build-arg REQUIREMENTS=serve-grpc
# -t lstm-service:grpc.
ARG REQUIREMENTS=serve

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# binutils, for `strip` and `readelf` below; this stage's apt files never reach the image.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*

COPY requirements/${REQUIREMENTS}.txt /tmp/serve.txt
# Wheels only (no compiler, no sdist builds), every file checked against the lock's hashes.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --only-binary :all: --no-compile -r /tmp/serve.txt \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

# Drop what serving never loads (about 80 MB of 190): onnxruntime's C API library (the Python binding
# links everything it needs itself; removed only while that stays true), its transformer-optimisation,
# quantization and conversion tools, and its ONNX-backend test API, the only importer of protobuf (whose
# code goes too, unless grpcio is installed, which needs it; its metadata stays, so the installed versions
# still match the lock); numpy's f2py,
# distutils, C headers and the subpackages that `import numpy` leaves unloaded and the service never
# uses (random, fft, polynomial, ma); every package's test suite and type stubs; and debug info some
# extension modules ship (uvloop: 13 MB -> 2 MB; only files with a .debug_info section are stripped, so
# the libraries auditwheel rewrote in *.libs/ are left alone).
RUN cd /opt/venv/lib/python3*/site-packages \
 && rm -rf onnxruntime/transformers onnxruntime/tools onnxruntime/quantization onnxruntime/backend \
           numpy/f2py numpy/distutils numpy/_pyinstaller numpy/_core/include \
           numpy/random numpy/fft numpy/polynomial numpy/ma \
 && if [ ! -d grpc ]; then rm -rf google/protobuf; fi \
 && if ! readelf -d onnxruntime/capi/onnxruntime_pybind11_state*.so | grep -q 'NEEDED.*libonnxruntime'; then \
        rm -f onnxruntime/capi/libonnxruntime.so*; fi \
 && find . -depth -type d -name tests -prune -exec rm -rf {} + \
 && find . -name '*.pyi' -delete \
 && find . -name '*.so' -not -path '*.libs/*' -exec sh -c \
      'for f; do if readelf -S "$f" | grep -q "\.debug_info"; then strip --strip-debug "$f"; fi; done' sh {} +

# Bytecode only for the modules the service imports (about 7 MB of the 27 MB compiling everything would
# take): on a read-only root Python cannot cache it, and compiling at each start would cost seconds. A
# module missing from this list still works; it is compiled in memory when first imported. The same
# command proves that what is left imports and runs an event loop.
RUN /opt/venv/bin/python -c "import asyncio, anyio._backends._asyncio, anyio.streams.memory, fastapi, \
fastapi.openapi.docs, fastapi.openapi.utils, fastapi.responses, httptools, numpy, onnxruntime, orjson, \
prometheus_client, prometheus_client.core, pydantic.v1, pydantic_settings, uvicorn.lifespan.on, \
uvicorn.loops.uvloop, uvicorn.main, \
uvicorn.protocols.http.httptools_impl, uvicorn.supervisors, uvloop; uvloop.run(asyncio.sleep(0)); \
assert 'CPUExecutionProvider' in onnxruntime.get_available_providers()"
# The gRPC image: the same for the modules the gRPC server imports.
RUN if [ -d "$(echo /opt/venv/lib/python3*/site-packages)/grpc" ]; then /opt/venv/bin/python -c "import grpc, \
grpc.aio, grpc_health.v1.health, grpc_reflection.v1alpha.reflection, google.protobuf.json_format"; fi
# The service's own code goes to /opt/app (the app stage); this .pth file puts it on the venv's path.
RUN echo /opt/app > "$(echo /opt/venv/lib/python3*/site-packages)/lstm_service_app.pth"

# ---- app: the service package, built into its own folder ----------------------------------------------
# Only service/ is copied, so the package discovery in pyproject.toml finds no `training` package: the
# image carries no training code. pyproject.toml and README.md are read for the package metadata.
FROM deps AS app
ARG PIP_INDEX_URL=https://pypi.org/simple
RUN python3 -m venv /opt/build
COPY pyproject.toml README.md /src/
COPY service/ /src/service/
# Installed (not just copied) so the image knows its own name and version; the script's interpreter is
# the serving venv's, and the bytecode is compiled here because the root is read-only at run time.
RUN /opt/build/bin/pip install --quiet --no-deps --no-compile --target /opt/app /src \
 && sed -i '1s|.*|#!/opt/venv/bin/python|' /opt/app/bin/lstm-service \
 && /opt/venv/bin/python -m compileall -q /opt/app/service \
 && /opt/venv/bin/python -c "import service.cli, service.api.app"

# ---- runtime ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app

# Slowest-changing first: the dependencies, then the code, then the bundles.
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /opt/app /opt/app
# The default bundles. Mount your own store over /models (read-only is enough) or set LSTM_SERVICE_MODEL_STORE.
COPY model_store/ /models/
COPY LICENSE /usr/share/doc/lstm-service/LICENSE

# Everything is configured through LSTM_SERVICE_* variables (docs/settings.md lists all of them). No default
# model is set: the first model of the store by name serves requests that name none, so a store mounted
# over /models without the bundled models starts as it is (set LSTM_SERVICE_DEFAULT_MODEL to choose).
# The root filesystem can be read-only: bytecode is compiled at build time, and the only writable place
# anything needs is /tmp (mount a tmpfs there).
ENV PATH=/opt/app/bin:/opt/venv/bin:$PATH \
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

# Ready = the models loaded and verified as LSTM_SERVICE_READINESS asks (a 503 or no answer fails the
# check). Python's urllib, since slim images have no curl. The start period covers loading the models.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; port = os.environ.get('LSTM_SERVICE_PORT', '8000'); sys.exit(0 if u.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"]

# Exec form: the server is PID 1 and receives SIGTERM itself (`docker stop`), then drains and exits 0.
# The drain window (LSTM_SERVICE_DRAIN_SECONDS) plus the longest request must fit in the stop timeout
# (docker: 10 s by default).
ENTRYPOINT ["lstm-service"]
CMD ["serve"]

# Last, so that a new commit changes only the image's metadata, not a layer. VERSION matches pyproject.toml
# (a test checks it); REVISION, CREATED (RFC 3339; the commit time keeps rebuilds identical) and SOURCE
# come from the build command above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="lstm-service" \
      org.opencontainers.image.description="Embedding + LSTM text classifier served with FastAPI and onnxruntime" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"
