"""A built wheel works without the source tree: it carries the template library and the
profiles (mapped from the top-level templates/ and profiles/ folders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh venv outside the source tree with the built wheel installed; the dependencies come
    from this environment's site-packages through a .pth line (no download of the heavy ones)."""
    root = tmp_path_factory.mktemp("wheel")
    wheels = root / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
                           capture_output=True, text=True, cwd=root)
    if build.returncode != 0:
        pytest.fail(f"the wheel did not build: {build.stderr[-2000:]}")
    (wheel,) = wheels.glob("harness-*.whl")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, cwd=root)
    if install.returncode != 0:
        pytest.fail(f"the wheel did not install: {install.stderr[-2000:]}")
    deps = sysconfig.get_paths()["purelib"]
    (site / "zz-deps.pth").write_text(deps + "\n")  # after the wheel's own files on sys.path
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["HARNESS_HOME"] = str(root / "home")
    return python, env


def _run(installed, code: str) -> str:
    python, env = installed
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_installed_package_is_not_the_source_tree(installed):
    where = _run(installed, "import harness; print(harness.__file__)").strip()
    assert not where.startswith(str(REPO)) and "site-packages" in where


def test_the_wheel_lists_the_seven_templates_and_two_profiles(installed):
    code = ("import json; from harness.prompt.templates import list_library; "
            "from harness.generation.profiles import list_profiles; "
            "print(json.dumps([list_library(), list_profiles()]))")
    templates, profiles = json.loads(_run(installed, code))
    assert templates == sorted(p.stem for p in (REPO / "templates").glob("*.jinja"))
    assert len(templates) == 7
    assert sorted(profiles) == sorted(p.stem for p in (REPO / "profiles").glob("*.yaml"))
    assert len(profiles) == 2


def test_the_installed_cli_renders_with_a_library_template(installed, tmp_path):
    messages = tmp_path / "m.json"
    messages.write_text(json.dumps([{"role": "user", "content": "Hi"}]))
    out = _run(installed, "import sys; from harness.cli.main import main; "
                          f"sys.exit(main(['render', '--template', 'chatml', '--messages', {str(messages)!r}]))")
    assert out == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
