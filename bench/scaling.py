"""Throughput of one class graded four ways in one run: -j 1, -j 2, --cluster local:1, --cluster local:2.

    python bench/scaling.py [--notebooks 200]        (make bench-scaling)

The class is copies and variants of the example class (each copy gets a
comment cell of its own, so no two notebooks are byte-identical and nothing
is deduplicated or resumed). Every configuration grades into a fresh folder
as a whole command; the script prints wall time, throughput in notebooks per
minute per core, and the ratios the targets are stated in:
``local:2 / local:1`` (target ≥ 1.8) and ``local:2 / -j 2`` (target ≥ 0.9).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "submissions"
CONFIGS = (("-j 1", ["-j", "1"], 1), ("-j 2", ["-j", "2"], 2),
           ("--cluster local:1", ["--cluster", "local:1"], 1), ("--cluster local:2", ["--cluster", "local:2"], 2))


def build_class(folder: Path, n: int) -> None:
    """``n`` notebooks cycling through the example class, each made unique by a comment cell."""
    examples = sorted(EXAMPLES.glob("*.ipynb"))
    for i in range(n):
        nb = json.loads(examples[i % len(examples)].read_bytes())
        nb["cells"].append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                            "source": f"# copy {i}"})
        (folder / f"student{i:04d}.ipynb").write_text(json.dumps(nb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", type=int, default=200)
    args = parser.parse_args()
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "submissions"
        subs.mkdir()
        build_class(subs, args.notebooks)
        for name, flags, cores in CONFIGS:
            out = Path(tmp) / name.replace(" ", "").replace("-", "").replace(":", "")
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out),
                                   "--json", *flags], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            seconds[name] = time.perf_counter() - start
            if done.returncode != 0:
                sys.exit(f"{name} failed (exit {done.returncode}): {done.stderr[-500:]}")
            rate = args.notebooks / seconds[name] * 60 / cores
            print(f"{name:18s} {seconds[name]:8.1f} s   {rate:6.1f} notebooks/min/core", flush=True)
    print(f"\n{args.notebooks} notebooks: local:2 / local:1 speed-up "
          f"{seconds['--cluster local:1'] / seconds['--cluster local:2']:.2f} (target ≥ 1.8); "
          f"local:2 throughput / -j 2 {seconds['-j 2'] / seconds['--cluster local:2']:.2f} (target ≥ 0.90); "
          f"-j 2 / -j 1 speed-up {seconds['-j 1'] / seconds['-j 2']:.2f}")


if __name__ == "__main__":
    main()
