# Plain make, no Bazel. `make demo` and `make test` install everything they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
CNN_DATA := data/cnn_vision/fashion_mnist
CNN_RUN := runs/cnn_vision/default
W2V_DATA := data/word2vec_lstm/bbc
W2V_VECTORS := runs/word2vec_lstm/word2vec
W2V_RUN := runs/word2vec_lstm/default
MT_DATA := data/transformer/gettext_de
MT_RUN := runs/transformer/default
KJV := /usr/share/sword/modules/texts/ztext/engKJV2006eb/nt.bzz
WEB := /usr/share/sword/modules/texts/ztext/engWEB2015eb/nt.bzz
BERT := models/all-MiniLM-L6-v2
BERT_DATA := data/bert_similarity/bible
BERT_RUN := runs/bert_similarity/default
WD_DATA := data/wide_deep/bikeshare
WD_RUN := runs/wide_deep/default
# The versions serving/models.config (and serving/docker/models.config) serve.
CNN_EXPORTS := $(CNN_RUN)/export/1/saved_model.pb $(CNN_RUN)/export/2/saved_model.pb
W2V_EXPORTS := $(W2V_RUN)/export/1/saved_model.pb
WD_EXPORTS := $(WD_RUN)/export/1/saved_model.pb
SAMPLES := runs/cnn_vision/samples
RESULTS := $(notdir $(patsubst %/,%,$(dir $(wildcard projects/*/results.py))))
PROJECTS := $(notdir $(patsubst %/,%,$(dir $(wildcard projects/*/__init__.py))))
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONPATH := $(CURDIR)
# Bare `make` lists the targets and installs nothing.
.DEFAULT_GOAL := help

.PHONY: help setup system-packages quickstart demo demo-cnn_vision demo-word2vec_lstm demo-transformer demo-bert_similarity demo-wide_deep demo-serving test test-core test-serving test-examples \
	test-slow bench bench-serving lint freeze clean $(addprefix test-,$(PROJECTS)) $(addprefix results-,$(RESULTS))

# Each target's line in `make help` is its "## " comment; a target without one fails tests/test_makefile.py.
help: ## this list; installs nothing
	@echo "Usage: make <target>. Every target but help and clean first installs what it needs (make setup)."
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z][a-z0-9_-]*:[^=]*## / {printf "  %-22s %s\n", $$1, $$2}' $(firstword $(MAKEFILE_LIST))
	@printf "  %-22s %s\n" "test-<project>" "one project's tests: $(PROJECTS)" \
	  "results-<project>" "one README results table over splits and seeds (hours): $(RESULTS)"

setup: system-packages $(STAMP) ## the virtualenv (.venv) and the Debian packages the data comes from

# Debian packages: the Fashion-MNIST data, graphviz (for model plots), gettext (msgfmt, for the
# transformer's catalog tests), curl (the quickstart's and the serving demo's request), the King James and
# World English Bibles (bert_similarity's verse pairs).
system-packages: $(FASHION_MNIST) /usr/bin/dot /usr/bin/msgfmt /usr/bin/curl $(KJV) $(WEB) ## the Debian packages only (apt-get)
$(FASHION_MNIST) /usr/bin/dot /usr/bin/msgfmt /usr/bin/curl $(KJV) $(WEB):
	$(SUDO) apt-get update -q
	$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist graphviz gettext curl \
	  sword-text-kjv sword-text-web

$(STAMP): requirements.txt requirements-extras.txt requirements-dev.txt requirements-nodeps.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $@

$(CNN_DATA)/metadata.json: | setup
	$(PY) -m projects.cnn_vision.prepare --output_dir=$(CNN_DATA)

# One project end to end in about a minute after setup: wide_deep prepared, trained beside its baseline,
# evaluated, exported, served and asked once with curl.
quickstart: setup ## start here: one project end to end, from data to a served prediction, in about a minute
	$(PY) -m projects.wide_deep.quickstart

# The whole tour (about 43 minutes on 2 cores; README.md times each part): the projects trained, evaluated and
# exported, then served.
demo: demo-cnn_vision demo-word2vec_lstm demo-transformer demo-bert_similarity demo-wide_deep demo-serving ## the whole tour: every demo below

demo-cnn_vision: setup $(CNN_DATA)/metadata.json ## Fashion-MNIST CNN: train, evaluate, export two versions
	$(PY) -m projects.cnn_vision.train --gin_file=projects/cnn_vision/configs/default.gin --model_dir=$(CNN_RUN)
	$(PY) -m projects.cnn_vision.evaluate --model_dir=$(CNN_RUN)
	$(MAKE) --no-print-directory $(CNN_EXPORTS)
	@$(PY) -c "import json; r = json.load(open('$(CNN_RUN)/eval_test.json')); \
	  print(f\"\nTest accuracy: {r['accuracy']:.4f} on {sum(map(sum, r['confusion_matrix']))} Fashion-MNIST test images\")"
	@echo "Exports: $(CURDIR)/$(CNN_RUN)/export/{1,2}"

# Version 1 from the checkpoint before the last ("stable"), version 2 from the last ("canary").
$(CNN_RUN)/export/1/saved_model.pb:
	$(PY) -m projects.cnn_vision.export --model_dir=$(CNN_RUN) --checkpoint=-2 --version=1
$(CNN_RUN)/export/2/saved_model.pb: | $(CNN_RUN)/export/1/saved_model.pb
	$(PY) -m projects.cnn_vision.export --model_dir=$(CNN_RUN) --version=2
$(W2V_RUN)/export/1/saved_model.pb:
	$(PY) -m projects.word2vec_lstm.export --model_dir=$(W2V_RUN) --version=1
$(WD_RUN)/export/1/saved_model.pb:
	$(PY) -m projects.wide_deep.export --model_dir=$(WD_RUN) --version=1

$(W2V_DATA)/metadata.json: | setup
	$(PY) -m projects.word2vec_lstm.prepare --output_dir=$(W2V_DATA)

# word2vec on the BBC News training split, then the LSTM classifier on its vectors (README commands).
demo-word2vec_lstm: setup $(W2V_DATA)/metadata.json ## BBC News: word2vec, then the LSTM classifier; evaluate, export, predict
	$(PY) -m projects.word2vec_lstm.train_word2vec --gin_file=projects/word2vec_lstm/configs/word2vec.gin \
	  --model_dir=$(W2V_VECTORS)
	$(PY) -m projects.word2vec_lstm.neighbors --model_dir=$(W2V_VECTORS) --word=market --word=film
	$(PY) -m projects.word2vec_lstm.train --gin_file=projects/word2vec_lstm/configs/default.gin --model_dir=$(W2V_RUN)
	$(PY) -m projects.word2vec_lstm.evaluate --model_dir=$(W2V_RUN)
	$(MAKE) --no-print-directory $(W2V_EXPORTS)
	$(PY) -m projects.word2vec_lstm.predict --export_dir=$(W2V_RUN)/export \
	  "Shares in the bank fell after its profits missed forecasts" "The striker scored twice in the cup final"

$(MT_DATA)/metadata.json: | setup
	$(PY) -m projects.transformer.prepare --output_dir=$(MT_DATA)

# English->German from the gettext catalogs: about 17 minutes of training, BLEU/chrF on the test split, export,
# translate.
demo-transformer: setup $(MT_DATA)/metadata.json ## English->German Transformer: train, BLEU/chrF, export, translate
	$(PY) -m projects.transformer.train --gin_file=projects/transformer/configs/default.gin --model_dir=$(MT_RUN)
	$(PY) -m projects.transformer.evaluate --model_dir=$(MT_RUN)
	[ -e $(MT_RUN)/export/1/saved_model.pb ] || $(PY) -m projects.transformer.export --model_dir=$(MT_RUN) --version=1
	$(PY) -m projects.transformer.translate --export_dir=$(MT_RUN)/export "could not open file" \
	  "Delete the selected folder?" "The printer '%s' is not available"

$(BERT)/conversion.json: | setup
	$(PY) -m projects.bert_similarity.convert --output_dir=$(BERT)
$(BERT_DATA)/metadata.json: | setup
	$(PY) -m projects.bert_similarity.prepare --output_dir=$(BERT_DATA)

# all-MiniLM-L6-v2 converted to TF Hub format, fine-tuned as a cross-encoder on KJV/WEB verse pairs, evaluated
# against the zero-shot baseline, exported, and asked about two pairs.
demo-bert_similarity: setup $(BERT)/conversion.json $(BERT_DATA)/metadata.json ## MiniLM cross-encoder on Bible verse pairs: fine-tune, evaluate, export, predict
	$(PY) -m projects.bert_similarity.train --gin_file=projects/bert_similarity/configs/default.gin --model_dir=$(BERT_RUN)
	$(PY) -m projects.bert_similarity.evaluate --model_dir=$(BERT_RUN)
	[ -e $(BERT_RUN)/export/1/saved_model.pb ] || $(PY) -m projects.bert_similarity.export --model_dir=$(BERT_RUN) --version=1
	$(PY) -m projects.bert_similarity.predict --export_dir=$(BERT_RUN)/export "Jesus wept." "Jesus cried."
	$(PY) -m projects.bert_similarity.predict --export_dir=$(BERT_RUN)/export "Jesus wept." "The sea is wide."

$(WD_DATA)/metadata.json: | setup
	$(PY) -m projects.wide_deep.prepare --gin_file=projects/wide_deep/configs/data_bikeshare.gin --output_dir=$(WD_DATA)

# Bikeshare (hourly bikers, whole days held out): the gradient-boosted trees baseline, then the Functional
# wide & deep model trained (about a minute), evaluated beside the baseline, exported and asked about 3 rows.
demo-wide_deep: setup $(WD_DATA)/metadata.json ## Bikeshare wide & deep beside gradient-boosted trees: train, evaluate, export, predict
	$(PY) -m projects.wide_deep.baseline --data_dir=$(WD_DATA)
	$(PY) -m projects.wide_deep.train --gin_file=projects/wide_deep/configs/default.gin --model_dir=$(WD_RUN)
	$(PY) -m projects.wide_deep.evaluate --model_dir=$(WD_RUN)
	$(MAKE) --no-print-directory $(WD_EXPORTS)
	$(PY) -m projects.wide_deep.predict --export_dir=$(WD_RUN)/export --first_row=4000 --rows=3

# Serve the exports above with the embedded server and call it with every client; check the Docker config.
demo-serving: setup $(CNN_EXPORTS) $(W2V_EXPORTS) $(WD_EXPORTS) ## serve the exports, call them with every client, check the Docker configs
	$(PY) -m projects.cnn_vision.samples --data_dir=$(CNN_DATA) --output_dir=$(SAMPLES) --count=4
	$(PY) -m serving.config serving/docker/models.config --compose_file=serving/docker/docker-compose.yml \
	  --batching_parameters_file=serving/docker/batching.config --core_ops_only
	@if [ -e $(MT_RUN)/export/1/saved_model.pb ] && [ -e $(BERT_RUN)/export/1/saved_model.pb ]; then \
	  $(PY) -m serving.config serving/docker/models_text.config --compose_file=serving/docker/docker-compose.yml \
	    --service=embedded-server; \
	else echo "(no transformer or bert_similarity export yet: serving/docker/models_text.config not checked)"; fi
	$(PY) -m serving.demo --model_config_file=serving/models.config --image=$$(ls $(SAMPLES)/*.png | head -1) \
	  --text="Shares in the bank fell after its profits missed forecasts"

test: setup ## the default test suite (about 15 minutes on 2 cores; slow tests excluded)
	$(PY) -m pytest -q

test-core: setup ## core/'s tests
	$(PY) -m pytest -q tests

$(addprefix test-,$(PROJECTS)): test-%: setup
	$(PY) -m pytest -q projects/$*

test-serving: setup ## serving/'s tests
	$(PY) -m pytest -q serving

# The examples/ scripts and the topic map (docs/TOPICS.md) that points at them.
test-examples: setup ## examples/ and the topic map docs/TOPICS.md
	$(PY) -m pytest -q examples tests/test_topics.py

test-slow: setup ## only the tests marked slow
	$(PY) -m pytest -q -m slow

BENCH_INPUTS := $(CNN_DATA)/metadata.json $(W2V_DATA)/metadata.json $(MT_DATA)/metadata.json $(CNN_EXPORTS) \
	$(BERT)/conversion.json $(BERT_DATA)/metadata.json $(WD_DATA)/metadata.json
bench: setup $(BENCH_INPUTS) ## every project's training speed and the server's, each beside its baseline
	$(PY) -m projects.cnn_vision.bench
	$(PY) -m projects.word2vec_lstm.bench
	$(PY) -m projects.word2vec_lstm.baseline
	$(PY) -m projects.transformer.bench
	$(PY) -m projects.bert_similarity.bench
	$(PY) -m projects.wide_deep.bench
	$(MAKE) --no-print-directory bench-serving

bench-serving: setup $(CNN_EXPORTS) $(W2V_EXPORTS) $(WD_EXPORTS) ## the servers beside the in-process call and Flask (about 12 min)
	$(PY) -m projects.cnn_vision.samples --data_dir=$(CNN_DATA) --output_dir=$(SAMPLES) --count=4
	$(PY) -m serving.bench --export_dir=$(CNN_RUN)/export/2 --image=$$(ls $(SAMPLES)/*.png | head -1) \
	  --text_export_dir=$(W2V_RUN)/export/1 --wide_deep_export_dir=$(WD_RUN)/export/1 --json=runs/serving_bench.json \
	  $(if $(wildcard $(MT_RUN)/export/1/saved_model.pb),--transformer_export_dir=$(MT_RUN)/export/1) \
	  $(if $(wildcard $(BERT_RUN)/export/1/saved_model.pb),--bert_similarity_export_dir=$(BERT_RUN)/export/1)

# The README results tables: every row over its project's splits and seeds, written into the README
# (hours, not part of `make test`; finished runs are kept in runs/<project>/results and resume).
# Pass flags with RESULTS_FLAGS; a smaller table is printed, not written into the README:
#   make results-wide_deep RESULTS_FLAGS="--splits=0,1 --seeds=1 --nowrite_readme"
$(addprefix results-,$(RESULTS)): results-%: setup
	$(PY) -m projects.$*.results --write_readme $(RESULTS_FLAGS)

lint: setup ## ruff
	$(VENV)/bin/ruff check .

freeze: $(STAMP) ## pin every package of the venv into constraints.txt
	{ echo "# Every package of the virtualenv, pinned (pip freeze). Regenerate with \`make freeze\`."; \
	  $(PY) -m pip freeze | grep -v -E '^(pip|setuptools|wheel)=='; } > constraints.txt

clean: ## remove .venv, data, runs and models
	rm -rf $(VENV) data runs models
