"""Sphinx configuration of the course site that `make book` builds (python -m workbench.book: the sources are written
under book/_build/src, the site goes to book/_build/html).

Offline: every script a page loads is a local file. The chapters' Plotly figures are drawn by plotly.js from the
plotly package, the equations by MathJax 3 from the django-static-mathjax package (PyPI); workbench.book, listed in
``extensions``, copies both into _static.
"""
project = "workbench"
author = "the workbench authors"
html_title = "workbench: the course"

extensions = ["myst_nb", "workbench.book"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_dmath_double_inline = True  # $$...$$ inside a paragraph is display math, as in Jupyter

nb_execution_mode = "off"  # the chapters are notebooks already executed at their defaults
nb_ipywidgets_js = {}  # no widget manager from a CDN: the chapters carry no widget state
nb_merge_streams = True

html_theme = "sphinx_book_theme"
html_theme_options = {"show_navbar_depth": 1, "use_download_button": False, "use_fullscreen_button": False}
html_js_files = ["plotly.min.js"]  # before the pages' figures, which call Plotly.newPlot as they load
html_context = {"default_mode": "auto"}  # light or dark as the reader's system is (empty: the theme logs an error)
html_copy_source = False  # the chapters' notebooks, outputs and all, need not be served twice

# MathJax 3's TeX-to-SVG component: SVG needs no font files, which a page opened from disk could not load
mathjax_path = "mathjax/tex-svg-full.js"
# set (rather than mathjax4_config, Sphinx 9's default): MathJax 3 reads it; MyST's classes of math to typeset
mathjax3_config = {"options": {"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"}}
