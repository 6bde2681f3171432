"""The load probe's verdict cache: keyed by size, mtime and the header's hash, not the path."""

from __future__ import annotations

import os
import shutil

from harness.models.probe import _key


def test_a_copy_with_the_same_mtime_shares_the_verdict_and_an_edit_does_not(tmp_path):
    a = tmp_path / "a.gguf"
    a.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    b = tmp_path / "moved" / "b.gguf"
    b.parent.mkdir()
    shutil.copy2(a, b)
    assert _key(a) == _key(b)
    data = bytearray(b.read_bytes())
    data[10] ^= 1
    b.write_bytes(bytes(data))
    st = a.stat()
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _key(a) != _key(b)  # same size and mtime, another header
