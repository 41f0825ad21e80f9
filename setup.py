"""Packaging beyond what pyproject.toml can say: the wheel carries the dashboard's scripts
(``app/`` → package ``ncviz_dashboard``) and the bundled runs (``checkpoints/`` → package data of
``ncviz_demo_runs``), so that ``pip install ncviz`` then ``ncviz serve`` works outside a checkout.
The library itself (``ncviz``) never imports the dashboard."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["ncviz", "ncviz.*"]), "ncviz_dashboard", "ncviz_demo_runs"],
    package_dir={"ncviz_dashboard": "app", "ncviz_demo_runs": "checkpoints"},
    package_data={
        "ncviz": ["data/*.csv", "data/*.md"],
        "ncviz_dashboard": ["*.py", "views/*.py"],
        "ncviz_demo_runs": ["**/*"],
    },
    include_package_data=False,
)
