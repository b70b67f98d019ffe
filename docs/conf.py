"""Sphinx configuration of the skmade documentation.

Build with ``make docs`` (installs the ``docs`` extra and builds a copy of this folder
in ``build/``, so that nothing generated lands in the source tree). Warnings are
errors, and references are checked (``nitpicky``): a reference to skmade that does
not resolve fails the build.

Links to scikit-learn, numpy, scipy, pandas and torch go through intersphinx. Their
inventories are fetched once into ``build/intersphinx`` and reused; without network
(and without a cached copy) the build goes on offline, and references into those
projects render as plain names instead of failing.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import skmade


def _repository_root() -> Path:
    """The folder holding pyproject.toml, above this file (docs/ or its copy)."""
    here = Path(__file__).resolve().parent
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    raise RuntimeError(f"No pyproject.toml above {here}")


ROOT = _repository_root()
sys.path.insert(0, str(ROOT))

project = "skmade"
author = "skmade developers"
copyright = "2026, skmade developers"
release = version = skmade.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served with the site: math renders offline
    "numpydoc",
    "myst_parser",  # the benchmark findings are markdown pages
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
root_doc = "index"

# ---------------------------------------------------------------- API pages

autosummary_generate = False
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set = set()
# Python's own names in type hints and numpydoc's type descriptions are not links.
nitpicky = True
nitpick_ignore_regex = [
    ("py:class", r"(array-like|ndarray|DataFrame|optional|callable|default.*)"),
]

# ---------------------------------------------------------------- intersphinx

_INVENTORIES = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "sklearn": "https://scikit-learn.org/stable/",
    "pandas": "https://pandas.pydata.org/docs/",
    "torch": "https://docs.pytorch.org/docs/stable/",
    "matplotlib": "https://matplotlib.org/stable/",
}
_CACHE = ROOT / "build" / "intersphinx"


def _inventory(name: str, url: str) -> Path | None:
    """A local copy of the project's objects.inv, fetched once; None offline."""
    path = _CACHE / f"{name}.inv"
    if not path.is_file():
        try:
            with urllib.request.urlopen(url + "objects.inv", timeout=5) as response:
                data = response.read()
        except OSError:
            return None
        _CACHE.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


intersphinx_mapping = {}
for _name, _url in _INVENTORIES.items():
    _path = _inventory(_name, _url)
    if _path is not None:
        intersphinx_mapping[_name] = (_url, str(_path))
    else:  # offline: references into this project stay plain names
        _module = {"python": r"(builtins|collections|typing|pathlib)"}.get(_name, _name)
        nitpick_ignore_regex += [
            (r"py:.*", rf"{_module}(\..*)?"),
            (r"py:.*", r"(int|float|str|bool|dict|list|tuple|object|None)"),
        ]

# ---------------------------------------------------------------- markdown pages

myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

# ---------------------------------------------------------------- gallery

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "reference_url": {"skmade": None},
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
}

# ---------------------------------------------------------------- HTML

html_theme = "alabaster"
html_title = f"skmade {release}"
html_static_path: list = []
html_theme_options = {
    "description": "MADE density estimators with the scikit-learn API",
    "fixed_sidebar": True,
}
