"""Build the Gradescope autograder zip: ``setup.sh`` and ``run_autograder`` at the top, the package beside them.

    python examples/gradescope/make_zip.py [OUT.zip]     (default: dist/gradescope-autograder.zip)
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGE = ("pyproject.toml", "README.md", "autograder", "reference")


def build(out: Path) -> Path:
    """Write the zip to ``out`` (scripts executable, caches left out); returns ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for script in ("setup.sh", "run_autograder"):
            info = zipfile.ZipInfo(script)
            info.external_attr = 0o100755 << 16
            archive.writestr(info, (HERE / script).read_bytes())
        for name in PACKAGE:
            paths = [ROOT / name] if (ROOT / name).is_file() else sorted((ROOT / name).rglob("*"))
            for path in paths:
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(ROOT).as_posix())
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist" / "gradescope-autograder.zip"
    print(f"wrote {build(target)}")
