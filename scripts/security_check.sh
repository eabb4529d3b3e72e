#!/usr/bin/env bash
# Security hygiene, run by `make security` (and so by `make test`):
#   1. ruff's bandit rules (S) over the code that ships: lambdas/, sagemaker_endpoints/, cdk/
#   2. pip-audit over the installed environment (needs an advisory database: PyPI's JSON API or OSV)
#   3. a secret scan of every tracked file (AWS keys, private keys, tokens)
#
# Usage: scripts/security_check.sh [--offline-ok]
#   --offline-ok  when no advisory database can be reached, say so and carry on (exit 0) instead of failing.
#                 Without it, an audit that could not check anything is a failure, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
OFFLINE_OK=0
for arg in "$@"; do
  case "$arg" in
    --offline-ok) OFFLINE_OK=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
status=0

echo "== 1/3 ruff bandit rules (S) on lambdas/ sagemaker_endpoints/ cdk/"
# S101 (assert) stays ignored as in pyproject.toml: asserts narrow types for mypy, they guard no input.
# Only tracked files: CI checks what is committed, not another session's work in progress.
mapfile -t PYFILES < <(git ls-files -- 'lambdas/*.py' 'sagemaker_endpoints/*.py' 'cdk/*.py')
if ! "$VENV/bin/ruff" check --select S --ignore S101 --output-format concise "${PYFILES[@]}"; then
  echo "FAIL: bandit findings (fix them, or add '# noqa: S<code>  <reason>' where the finding is wrong)"
  status=1
fi

echo "== 2/3 pip-audit on the installed environment"
AUDIT_JSON=$(mktemp)
trap 'rm -f "$AUDIT_JSON"' EXIT
"$VENV/bin/pip-audit" --progress-spinner off --format json --output "$AUDIT_JSON" >/dev/null 2>&1
audit_rc=$?
"$PY" - "$AUDIT_JSON" "$audit_rc" "$OFFLINE_OK" <<'PYEOF'
import json, sys
path, rc, offline_ok = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
try:
    deps = json.load(open(path))["dependencies"]
except Exception:
    deps = None
if deps is None:
    print(f"pip-audit produced no report (exit {rc}): the advisory database could not be reached.")
    sys.exit(0 if offline_ok else 1)
audited = [d for d in deps if "skip_reason" not in d]
vulnerable = [d for d in audited if d.get("vulns")]
for d in vulnerable:
    ids = ", ".join(v["id"] for v in d["vulns"])
    print(f"VULNERABLE: {d['name']} {d['version']}: {ids}")
print(f"pip-audit: {len(audited)} of {len(deps)} packages audited, {len(vulnerable)} vulnerable.")
if vulnerable:
    sys.exit(1)
if not audited:
    print(
        "NOT AUDITED: no advisory database was reachable (PyPI's per-version JSON API and OSV are needed; this"
        " machine only reaches a package mirror). The result says nothing about vulnerabilities."
    )
    if offline_ok:
        print("--offline-ok given: continuing.")
        sys.exit(0)
    sys.exit(1)
PYEOF
[ $? -eq 0 ] || status=1

echo "== 3/3 secret scan of tracked files"
git ls-files -z | "$PY" -c '
import re, sys
from pathlib import Path
PATTERNS = {
    "AWS access key id": re.compile(rb"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"),
    "AWS secret access key": re.compile(
        rb"(?i)aws_?secret_?access_?key[\"\x27]?\s*[:=]\s*[\"\x27]?[A-Za-z0-9/+]{40}\b"),
    "private key": re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY( BLOCK)?-----"),
    "GitHub token": re.compile(rb"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{60,}"),
    "Slack token": re.compile(rb"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "OpenAI/Anthropic key": re.compile(rb"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{32,}"),
    "Hugging Face token": re.compile(rb"\bhf_[A-Za-z0-9]{34,}\b"),
    "Google API key": re.compile(rb"\bAIza[0-9A-Za-z_-]{35}\b"),
}
# Documented placeholders (AWS docs examples, moto/localstack dummies) are not secrets.
ALLOWED = re.compile(rb"EXAMPLE|AKIAIOSFODNN7|wJalrXUtnFEMI|(?i:dummy|fake|testing|placeholder)")
found = 0
for name in sys.stdin.buffer.read().split(b"\0"):
    if not name:
        continue
    path = Path(name.decode())
    if not path.is_file() or path.stat().st_size > 5_000_000:
        continue
    data = path.read_bytes()
    for label, pattern in PATTERNS.items():
        for m in pattern.finditer(data):
            line = data.count(b"\n", 0, m.start()) + 1
            text = data[data.rfind(b"\n", 0, m.start()) + 1 : data.find(b"\n", m.end()) % (len(data) + 1)]
            if ALLOWED.search(text):
                continue
            found += 1
            print(f"SECRET? {path}:{line}: {label}")
print(f"secret scan: {found} finding(s)")
sys.exit(1 if found else 0)
' || status=1

if [ $status -eq 0 ]; then echo "security check: OK"; else echo "security check: FAILED"; fi
exit $status
