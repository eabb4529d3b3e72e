# The project's vocabulary. `make up` and `make test` are all a fresh machine needs.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= .lectern

.PHONY: ocr-deps venv up test test-fast lint security openapi eval browser-deps validators clean

venv: ocr-deps
	@bash scripts/bootstrap.sh $(VENV)

# OCR of scanned pages and images (lectern.adapters.local.tesseract_ocr): Debian's tesseract with English data.
# More languages: apt-get install tesseract-ocr-deu ... and LECTERN_OCR_LANGUAGES=eng+deu.
ocr-deps:
	@tesseract --list-langs 2>/dev/null | grep -qx eng || { \
	  echo "Installing Debian's tesseract-ocr for OCR..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	     tesseract-ocr tesseract-ocr-eng >/dev/null) \
	  || { echo "could not install tesseract-ocr (need root and Debian's package index)"; exit 1; }; }

up: venv
	$(VENV)/bin/lectern up --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser test..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "could not install chromium (need root and Debian's package index)"; exit 1; }; }

# Bandit rules, pip-audit, secret scan. `make test` passes --offline-ok: here no advisory database is reachable,
# and the script then says so loudly instead of failing; `make security` alone is strict.
security: venv
	@bash scripts/security_check.sh $(SECURITY_FLAGS)

# cfn-lint (in the venv), asl-validator (npm) and checkov (its own venv), pinned: tests/infra/test_validators.py
validators:
	@bash scripts/install_validators.sh

test: venv browser-deps validators lint
	@bash scripts/security_check.sh --offline-ok
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not model and not browser"

# The lint gate of `make test`: ruff with the project's rules (complexity <= 10) and mypy on the package, clean.
lint: venv
	$(VENV)/bin/ruff check lambdas tests scripts cdk
	$(VENV)/bin/mypy

openapi: venv
	$(PY) scripts/openapi.py --write docs/openapi.json

eval: venv
	$(VENV)/bin/lectern eval retrieval --dataset ../shared/data/scifact --out docs/results/scifact-retrieval.json --data-dir .lectern-eval

clean:
	rm -rf .pytest_cache .ruff_cache .mypy_cache
