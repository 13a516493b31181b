# Two commands on a fresh machine:  make grade  (set up, grade the example class)  and  make test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2
# Test processes of the default run (pytest-xdist): a CI machine has 2 cores.
TEST_JOBS ?= 2
# The CPU build of torch: PyPI's default Linux wheel is the multi-GB CUDA one. Every install names this pin.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
SUBMISSIONS ?= examples/submissions
OUT    ?= grades

.PHONY: install test test-all grade grade-dask notebooks bench bench-checks bench-scaling student-dist verify review figures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0 --index-url $(TORCH_INDEX)
	$(PY) -m pip install --quiet -e '.[dev]'
	@sh scripts/install-bubblewrap.sh
	@touch $(STAMP)

install: $(STAMP)  ## venv with CPU torch, the package and its test tools; bubblewrap when possible

test: install  ## the default test run (slow tests left out), in $(TEST_JOBS) processes
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile

test-all: install  ## every test, slow ones included
	$(PY) -m pytest -q -m ""

grade: install  ## grade $(SUBMISSIONS) into $(OUT)
	$(PY) -m autograder grade $(SUBMISSIONS) --out $(OUT) -j $(JOBS)

grade-dask: install  ## grade $(SUBMISSIONS) into $(OUT) on a local Dask cluster of $(JOBS) workers
	$(PY) -m autograder grade $(SUBMISSIONS) --out $(OUT) --cluster local:$(JOBS)

notebooks: install  ## rebuild the template and the solution notebook from their sources
	$(PY) student_template/build.py

bench: install  ## grade-time vs nbconvert --execute time, side by side
	$(PY) bench/grade_vs_execute.py

bench-checks: install  ## what grading one notebook costs, check by check (NOTEBOOK=… to choose; default the solution)
	$(PY) bench/check_costs.py $(NOTEBOOK)

bench-scaling: install  ## throughput of -j 1, -j 2, --cluster local:1 and local:2 on one class of 200 notebooks
	$(PY) bench/scaling.py

clean:
	rm -rf $(OUT) .pytest_cache

student-dist: install  ## dist/student/ and dist/student.zip: template, engine, public checks only
	$(PY) student_template/dist.py --out dist/student

verify: install  ## self-checks: solution 100, template 0, student bundle leaks nothing
	$(PY) -m autograder verify

review: install  ## review sheets of the written answers in $(OUT)/review/
	$(PY) -m autograder review $(SUBMISSIONS) --out $(OUT)

figures: install  ## docs/figures/reverse_kl.png, computed by reference/kl_optima.py
	$(PY) -m reference.figures --out docs/figures
