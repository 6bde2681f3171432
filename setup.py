"""Package discovery for setuptools (everything else is in pyproject.toml).

The statistics kernel (harness/stats/_rowstats.c) is compiled here. Its results must not depend
on the vector width the compiler picks, so nothing may contract a multiply and an add into one
rounding (-ffp-contract=off) and no fast-math is allowed (reassociation would reorder its sums).

The library folders stay at the top of the repository, where the design puts them, and the
wheel carries them inside the package: templates/ -> harness/library/templates, profiles/ ->
harness/library/profiles (harness.paths.library_dir looks there first).
"""

from setuptools import Extension, find_packages, setup

LIBRARY = {"harness.library.templates": "templates", "harness.library.profiles": "profiles"}

setup(
    packages=[*find_packages(include=["harness", "harness.*"]), *LIBRARY],
    package_dir=LIBRARY,
    ext_modules=[Extension("harness.stats._rowstats", ["harness/stats/_rowstats.c"],
                           extra_compile_args=["-O3", "-ffp-contract=off", "-fno-trapping-math"])],
    package_data={"harness.library.templates": ["*.jinja"], "harness.library.profiles": ["*.yaml"]},
)
