# The two commands a newcomer needs: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# The model for requests that name none: set, so that a model trained into the store never takes its place.
DEFAULT_MODEL ?= news-topic

.PHONY: run test test-search test-cluster train-setup test-container bench lint typecheck settings-docs fixtures models clean mutate

# Serving needs only the `serve` extra (no torch); the stamp files make set-up happen once per pyproject change.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The pinned versions of requirements/serve.txt, the same the image installs; then the project itself.
$(VENV)/.serve-installed: pyproject.toml requirements/serve.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/serve.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Tests train tiny models, so they need the `train` extra (torch==2.13.0, a local CPU wheel) and the dev group;
# the tracing-grpc extra (tracing with both OTLP exporters) for the tracing tests, log and score for theirs.
$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train,tracing-grpc,log,score]' --group dev
	touch $@ $(VENV)/.serve-installed

# Training only: the `train` extra (torch 2.13 CPU, gensim, scikit-learn...), for .venv/bin/lstm-train.
$(VENV)/.train-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train]'
	touch $@ $(VENV)/.serve-installed

train-setup: $(VENV)/.train-installed

# --default-model only where it is the source: LSTM_SERVICE_DEFAULT_MODEL in the environment wins over the
# default above (the flag would override it), `make run DEFAULT_MODEL=x` over both.
DEFAULT_MODEL_FLAG = $(if $(and $(LSTM_SERVICE_DEFAULT_MODEL),$(filter-out command line,$(origin DEFAULT_MODEL))),,--default-model $(DEFAULT_MODEL))

run: $(VENV)/.serve-installed
	@echo "default model: $(if $(DEFAULT_MODEL_FLAG),$(DEFAULT_MODEL) (--default-model from make; LSTM_SERVICE_DEFAULT_MODEL=NAME make run serves another),$(LSTM_SERVICE_DEFAULT_MODEL) (LSTM_SERVICE_DEFAULT_MODEL from the environment))"
	$(BIN)/lstm-service serve --host $(HOST) --port $(PORT) $(DEFAULT_MODEL_FLAG)

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m "not container and not learning and not search and not cluster" $(PYTEST_ARGS)

# The hyperparameter-search tests: several processes share a study (SQLite and PostgreSQL), killed and resumed.
test-search: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m search tests/training $(PYTEST_ARGS)

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
		--min-freq 2 --max-vocab 14000 --w2v-epochs 20 --epochs 20 --patience 4 --threads 1 --cell lstm \
		--pooling mean --w2v none --embedding-dim 100 --hidden-dim 128 --num-layers 1 --bidirectional \
		--dropout 0.5141863194265843 --embedding-dropout 0.09309978482012252 --lr 0.001985078953084026 \
		--lr-decay 0.5 --batch-size 16 --length-pool 50 --label-smoothing 0.0 --ema-decay 0.99 --seeds 13,14,15
	$(BIN)/lstm-train train --dataset zh-sentiment --name review-sentiment-zh --tokenizer char \
		--max-length 256 --pooling max --w2v train --w2v-mode frozen --epochs 30 --seeds 13,14,15 --threads 1

# Mutation testing (docs/mutation.md; slow, not in CI): one module at a time, each for at most MUTATE_SECONDS,
# then the count per module of killed / survived / timed out / not checked. [tool.mutmut] in pyproject.toml.
MUTATE ?= training.data.delimited service.api.oip.codec service.bundle.store service.engine.budget \
	service.engine.batching service.engine.explain service.engine.registry training.export.graph
MUTATE_SECONDS ?= 3600
MUTATE_CHILDREN ?= 2
mutate: $(VENV)/.test-installed
	@for module in $(MUTATE); do \
		echo "== $$module"; \
		timeout $(MUTATE_SECONDS) $(BIN)/mutmut run "$$module.*" --max-children $(MUTATE_CHILDREN) \
			|| echo "== $$module: stopped after $(MUTATE_SECONDS) s (the rest is 'not checked')"; \
	done
	@$(BIN)/mutmut results --all true | sed -E 's/^ *([a-z_.]+)\.x.*: /\1 /' | sort | uniq -c

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info mutants
