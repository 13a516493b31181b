"""The student's view of the Python installation: what is found to hide, and how it is hidden (no bwrap run)."""

from __future__ import annotations

from pathlib import Path

from autograder.sandbox import isolation as iso


def _site(tmp_path: Path) -> Path:
    """A site folder with this project installed as pip does (editable and not), beside an unrelated package."""
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    for folder in ("autograder/checks", "reference", "torch", "dgm_autograder-0.1.0.dist-info",
                   "torch-2.13.0.dist-info", "untagged-1.0.dist-info", "__pycache__"):
        (site / folder).mkdir(parents=True)
    (site / "dgm_autograder-0.1.0.dist-info" / "top_level.txt").write_text("autograder\nreference\n")
    (site / "dgm_autograder-0.1.0.dist-info" / "RECORD").write_text(
        "../../../bin/dgm-grade,,\n__editable__.dgm_autograder-0.1.0.pth,,\n"
        "__editable___dgm_autograder_0_1_0_finder.py,,\n"
        "__pycache__/__editable___dgm_autograder_0_1_0_finder.cpython-311.pyc,,\n"
        "autograder/__init__.py,,\ndgm_autograder-0.1.0.dist-info/RECORD,,\n")
    (site / "torch-2.13.0.dist-info" / "top_level.txt").write_text("torch\n")
    (site / "untagged-1.0.dist-info" / "RECORD").write_text("untagged.py,,\n")  # no top_level.txt: RECORD decides
    for name in ("__editable__.dgm_autograder-0.1.0.pth", "__editable___dgm_autograder_0_1_0_finder.py",
                 "__pycache__/__editable___dgm_autograder_0_1_0_finder.cpython-311.pyc", "untagged.py", "six.py"):
        (site / name).write_text("x")
    return site


def test_every_file_of_this_project_in_a_site_folder_is_found_and_nothing_else(tmp_path):
    site = _site(tmp_path)
    found = {Path(p).relative_to(site).as_posix() for p in iso._copies_in(str(site))}
    assert found == {"autograder", "reference", "dgm_autograder-0.1.0.dist-info",
                     "__editable__.dgm_autograder-0.1.0.pth", "__editable___dgm_autograder_0_1_0_finder.py",
                     "__pycache__/__editable___dgm_autograder_0_1_0_finder.cpython-311.pyc"}


def test_a_rebuilt_site_folder_leaves_the_hidden_entries_out_and_binds_the_rest(tmp_path):
    site = _site(tmp_path)
    (site / "link.py").symlink_to("six.py")
    hidden = set(iso._copies_in(str(site)))
    argv = iso._rebuilt_without(str(site), hidden)
    assert argv[:2] == ["--tmpfs", str(site)] and argv[-2:] == ["--remount-ro", str(site)]
    bound = {argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"}
    assert bound == {str(site / n) for n in ("torch", "torch-2.13.0.dist-info", "untagged-1.0.dist-info",
                                             "__pycache__", "untagged.py", "six.py")}
    assert ["--symlink", "six.py", str(site / "link.py")] == argv[argv.index("--symlink"):argv.index("--symlink") + 3]


def test_the_view_binds_only_the_python_installation_and_never_the_tree_or_a_parent_folder():
    argv = iso._python_view()
    sources = [argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--dev-bind")]
    roots = iso._python_roots()
    assert all(s == "/dev/null" or any(iso._inside(s, r) for r in roots) for s in sources), sources
    repo = str(Path(iso.__file__).resolve().parents[2])
    assert not [s for s in sources if iso._inside(repo, s)]  # no folder that holds the tree, /tmp or / itself
    assert not [s for s in sources if any(iso._inside(s, p) for p in iso._own_package_dirs())]
