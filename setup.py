"""Package discovery for setuptools (everything else is in pyproject.toml).

The library folders stay at the top of the repository, where the design puts them, and the
wheel carries them inside the package: templates/ -> harness/library/templates, profiles/ ->
harness/library/profiles (harness.paths.library_dir looks there first).
"""

from setuptools import find_packages, setup

LIBRARY = {"harness.library.templates": "templates", "harness.library.profiles": "profiles"}

setup(
    packages=[*find_packages(include=["harness", "harness.*"]), *LIBRARY],
    package_dir=LIBRARY,
    package_data={"harness.library.templates": ["*.jinja"], "harness.library.profiles": ["*.yaml"]},
)
