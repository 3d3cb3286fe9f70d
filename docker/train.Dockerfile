# Optional training image: CPU torch + the training code, so a model can be trained and exported without
# a local Python setup. Not needed for serving (the root Dockerfile has no torch). Build from the repo root:
#
#   docker build -f docker/train.Dockerfile -t lstm-service-train .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/work" lstm-service-train \
#       train --data data/reviews.csv --text-column text --label-column label --name my-model
#
# /work is the working folder: data is read from it, checkpoints go to /work/runs/<name> and the bundle
# to /work/model_store/<name>/<version>, i.e. into the mounted folder, owned by you thanks to --user.
# docker/train.Dockerfile.dockerignore decides what of the repository this build sees.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

# torch from the CPU-only index: the PyPI wheel for Linux pulls several GB of CUDA libraries. The version
# matches the pin in pyproject.toml's `train` extra, so the install below keeps this build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /src
COPY pyproject.toml README.md* ./
COPY service/ service/
COPY training/ training/
RUN /opt/venv/bin/pip install '.[train]' \
 && /opt/venv/bin/python -c "import torch, training.cli; assert torch.__version__.endswith('+cpu'), torch.__version__" \
 && rm -rf /src

# Runs as whoever `--user` says (your uid, so what it writes into /work is yours); without it, as this
# unprivileged user. HOME on /tmp so library caches never need a writable home.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin trainer \
 && mkdir -p /work && chmod 1777 /work
ENV HOME=/tmp \
    LSTM_SERVICE_MODEL_STORE=/work/model_store
USER 10001:10001
WORKDIR /work

ENTRYPOINT ["lstm-service"]
CMD ["train", "--help"]
