"""Sphinx configuration.

Build with ``pip install -e '.[docs]'`` then ``sphinx-build docs docs/_build``.
"""

project = "skmade"
author = "skmade developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
numpydoc_show_class_members = False
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "quickstart",
}
html_theme = "alabaster"
exclude_patterns = ["_build"]
