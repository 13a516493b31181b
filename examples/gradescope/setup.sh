#!/usr/bin/env bash
# Gradescope autograder setup: runs once when the image is built, with this
# repository unpacked in /autograder/source (examples/gradescope/make_zip.py builds the zip).
set -euo pipefail
apt-get update -qq
apt-get install -y -qq python3 python3-venv bubblewrap
python3 -m venv /autograder/venv
# The CPU build of torch, pinned as in the Makefile (PyPI's default Linux wheel is the multi-GB CUDA one).
/autograder/venv/bin/pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install --quiet /autograder/source
