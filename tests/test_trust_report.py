"""Issue 13, class 9: the report's Content-Security-Policy admits harness's own two scripts by
hash, not every inline script: a script injected into the page does not run."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from harness.cli.main import main
from tests.support.chromium import chromium, needs_chromium
from tests.support.runs import make_db


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    directory = tmp_path_factory.mktemp("csp")
    out = directory / "report.html"
    assert main(["report", str(make_db(directory)), "--html", str(out)]) == 0
    return out


def test_script_src_lists_hashes_of_exactly_the_inline_scripts(page):
    html = page.read_text(encoding="utf-8")
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', html).group(1)
    script_src = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
    assert "unsafe-inline" not in script_src
    executable = re.findall(r"<script>(.*?)</script>", html, re.S)
    hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
              for s in executable}
    assert len(executable) == 2 and hashes == set(script_src.split()[1:])


@needs_chromium
def test_an_injected_script_does_not_run_but_harness_scripts_do(page, tmp_path):
    html = page.read_text(encoding="utf-8")
    evil = tmp_path / "evil.html"
    evil.write_text(html.replace("</body>", "<script>document.body.setAttribute('data-pwned','1')</script>"
                                 '<img src=x onerror="document.body.setAttribute(\'data-pwned\',\'2\')">'
                                 "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, evil.as_uri(), "--dump-dom").stdout
    body = re.search(r"<body[^>]*>", dom).group()
    assert 'data-ready="1"' in body and "data-pwned" not in body
