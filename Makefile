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
PROJECTS := $(notdir $(patsubst %/,%,$(dir $(wildcard projects/*/__init__.py))))
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONPATH := $(CURDIR)

.PHONY: setup system-packages demo demo-word2vec_lstm test test-core test-slow bench lint freeze clean $(addprefix test-,$(PROJECTS))

setup: system-packages $(STAMP)

# Debian packages: the Fashion-MNIST data and graphviz (for model plots).
system-packages: $(FASHION_MNIST) /usr/bin/dot
$(FASHION_MNIST) /usr/bin/dot:
	$(SUDO) apt-get update -q
	$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist graphviz

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	touch $@

$(CNN_DATA)/metadata.json: | setup
	$(PY) -m projects.cnn_vision.prepare --output_dir=$(CNN_DATA)

demo: setup $(CNN_DATA)/metadata.json
	$(PY) -m projects.cnn_vision.train --gin_file=projects/cnn_vision/configs/default.gin --model_dir=$(CNN_RUN)
	$(PY) -m projects.cnn_vision.evaluate --model_dir=$(CNN_RUN)
	$(PY) -m projects.cnn_vision.export --model_dir=$(CNN_RUN)
	@$(PY) -c "import json; r = json.load(open('$(CNN_RUN)/eval_test.json')); \
	  print(f\"\nTest accuracy: {r['accuracy']:.4f} on {sum(map(sum, r['confusion_matrix']))} Fashion-MNIST test images\")"
	@echo "Export: $(CURDIR)/$(CNN_RUN)/export/$$(ls $(CNN_RUN)/export | sort -n | tail -1)"

$(W2V_DATA)/metadata.json: | setup
	$(PY) -m projects.word2vec_lstm.prepare --output_dir=$(W2V_DATA)

# word2vec on the BBC News training split, then the LSTM classifier on its vectors (README commands).
demo-word2vec_lstm: setup $(W2V_DATA)/metadata.json
	$(PY) -m projects.word2vec_lstm.train_word2vec --gin_file=projects/word2vec_lstm/configs/word2vec.gin \
	  --model_dir=$(W2V_VECTORS) --jit_compile
	$(PY) -m projects.word2vec_lstm.neighbors --model_dir=$(W2V_VECTORS) --word=market --word=film
	$(PY) -m projects.word2vec_lstm.train --gin_file=projects/word2vec_lstm/configs/default.gin --model_dir=$(W2V_RUN)
	$(PY) -m projects.word2vec_lstm.evaluate --model_dir=$(W2V_RUN)
	$(PY) -m projects.word2vec_lstm.export --model_dir=$(W2V_RUN)
	$(PY) -m projects.word2vec_lstm.predict --export_dir=$(W2V_RUN)/export \
	  "Shares in the bank fell after its profits missed forecasts" "The striker scored twice in the cup final"

test: setup
	$(PY) -m pytest -q

test-core: setup
	$(PY) -m pytest -q tests

$(addprefix test-,$(PROJECTS)): test-%: setup
	$(PY) -m pytest -q projects/$*

test-slow: setup
	$(PY) -m pytest -q -m slow

bench: setup $(CNN_DATA)/metadata.json $(W2V_DATA)/metadata.json
	$(PY) -m projects.cnn_vision.bench
	$(PY) -m projects.word2vec_lstm.bench
	$(PY) -m projects.word2vec_lstm.baseline

lint: setup
	$(VENV)/bin/ruff check .

freeze: $(STAMP)
	{ echo "# Every package of the virtualenv, pinned (pip freeze). Regenerate with \`make freeze\`."; \
	  $(PY) -m pip freeze | grep -v -E '^(pip|setuptools|wheel)=='; } > constraints.txt

clean:
	rm -rf $(VENV) data runs
