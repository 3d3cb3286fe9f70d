# The two commands a newcomer needs: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# The model for requests that name none: set, so that a model trained into the store never takes its place.
DEFAULT_MODEL ?= news-topic

.PHONY: run test test-cluster train-setup test-container bench lint typecheck settings-docs fixtures models clean

# Serving needs only the `serve` extra (no torch); the stamp files make set-up happen once per pyproject change.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The pinned versions of requirements/serve.txt, the same the image installs; then the project itself.
$(VENV)/.serve-installed: pyproject.toml requirements/serve.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/serve.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Tests train tiny models, so they need the `train` extra (torch==2.13.0, a local CPU wheel) and the dev group.
$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train,score]' --group dev
	touch $@ $(VENV)/.serve-installed

# Training only: the `train` extra (torch 2.13 CPU, gensim, scikit-learn...), for .venv/bin/lstm-train.
$(VENV)/.train-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train]'
	touch $@ $(VENV)/.serve-installed

train-setup: $(VENV)/.train-installed

run: $(VENV)/.serve-installed
	$(BIN)/lstm-service serve --host $(HOST) --port $(PORT) --default-model $(DEFAULT_MODEL)

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m "not container and not cluster" $(PYTEST_ARGS)

# Scoring inside a real local Ray cluster and Spark local[2] (slow to start; the ray and spark extras).
test-cluster: $(VENV)/.test-installed
	$(BIN)/python -m pip install --quiet -e '.[ray,spark]'
	$(BIN)/python -m pytest -m cluster tests/scoring $(PYTEST_ARGS)

test-container: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m container tests/container $(PYTEST_ARGS)

bench: $(VENV)/.test-installed
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check service training tests bench
	$(BIN)/ruff format --check service training tests bench

# mypy over service/ ([tool.mypy] in pyproject.toml: strict on the engine and the bundle contract).
typecheck: $(VENV)/.test-installed
	$(BIN)/mypy

# Re-write the settings table of docs/settings.md from service/settings.py (a test fails while they differ).
settings-docs: $(VENV)/.serve-installed
	$(BIN)/python -m service.settings_doc

# Re-write the committed fixture bundles under tests/fixtures/ (after a change to the bundle format or training).
fixtures: $(VENV)/.test-installed
	$(BIN)/python tests/fixtures/make_fixture_bundles.py

# Re-train the two default models (each writes a new version; the commands are also in each manifest).
models: $(VENV)/.test-installed
	$(BIN)/lstm-train train --dataset bbc-news --name news-topic --tokenizer word --max-length 600 \
		--min-freq 2 --max-vocab 14000 --pooling max --w2v train --w2v-mode finetune --seed 13 --threads 1 \
		--epochs 30 --dropout 0.5 --embedding-dropout 0.2 --w2v-epochs 20 --lr 1e-3
	$(BIN)/lstm-train train --dataset zh-sentiment --name review-sentiment-zh --tokenizer char \
		--max-length 128 --pooling max --w2v train --w2v-mode frozen --epochs 30 --seed 13 --threads 1

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
