"""Which llama.cpp build a machine gets: every ggml extension the CPU advertises *and* the OS grants
(XCR0, the kernel's AMX permission), never one CPUID alone promises; and what the installed build
reports against this machine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.backends.llama_build import (
    PORTABLE_X86,
    TILE,
    YMM,
    ZMM,
    CpuGrants,
    build_report,
    cmake_args,
    expected_features,
    parse_system_info,
    probe,
)

ICELAKE = frozenset(["sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "xsave", "avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw", "avx512vbmi", "avx512_vnni"])
SAPPHIRE = ICELAKE | {"avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"}


def _on(args: str) -> set[str]:
    return {word[2:].split("=")[0] for word in args.split() if word.endswith("=ON")}


def test_every_granted_extension_is_on_and_nothing_else():
    grants = CpuGrants(ICELAKE, ZMM, tile_permission=False)
    assert _on(cmake_args(grants)) == {"GGML_SSE42", "GGML_F16C", "GGML_FMA", "GGML_BMI2", "GGML_AVX",
                                       "GGML_AVX2", "GGML_AVX512", "GGML_AVX512_VBMI", "GGML_AVX512_VNNI"}
    assert "-DGGML_NATIVE=OFF" in cmake_args(grants) and "-DGGML_AMX_INT8=OFF" in cmake_args(grants)
    # tuned for this CPU, but never -march=native (instructions the OS may not grant)
    assert cmake_args(grants).endswith("-DCMAKE_C_FLAGS=-mtune=native -DCMAKE_CXX_FLAGS=-mtune=native")
    assert "-march" not in cmake_args(grants)
    assert expected_features(grants) == ["F16C", "FMA", "BMI2", "AVX", "AVX2", "AVX512", "AVX512_VBMI",
                                         "AVX512_VNNI"]


@pytest.mark.parametrize("xcr0,permission,amx", [
    (ZMM, True, False),          # CPUID advertises AMX, the OS does not save tile state: the SIGILL VM
    (ZMM | TILE, False, False),  # tile state enabled, but the kernel refuses this process
    (ZMM | TILE, True, True),    # granted
])
def test_amx_only_when_the_os_grants_it(xcr0, permission, amx):
    grants = CpuGrants(SAPPHIRE, xcr0, permission)
    on = _on(cmake_args(grants))
    assert ("GGML_AMX_INT8" in on) is amx and ("GGML_AMX_TILE" in on) is amx and ("GGML_AMX_BF16" in on) is amx
    assert {"GGML_AVX512", "GGML_AVX512_BF16", "GGML_AVX_VNNI"} <= on
    assert ("AMX_INT8" in [e.name for e in grants.refused()]) is not amx


def test_avx512_needs_the_zmm_state():
    grants = CpuGrants(ICELAKE, YMM, tile_permission=False)  # an OS that saves only YMM
    on = _on(cmake_args(grants))
    assert "GGML_AVX2" in on and not any(o.startswith("GGML_AVX512") for o in on)
    assert {e.name for e in grants.refused()} >= {"AVX512", "AVX512_VBMI", "AVX512_VNNI"}


def test_unknown_os_state_gives_the_portable_build():
    assert cmake_args(CpuGrants(ICELAKE, None, False)) == PORTABLE_X86
    assert cmake_args(CpuGrants(frozenset(), None, False)) == PORTABLE_X86


def test_system_info_is_parsed():
    text = "CPU : SSE3 = 1 | AVX = 1 | AVX512 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"
    assert parse_system_info(text) == {"SSE3": "1", "AVX": "1", "AVX512": "1", "LLAMAFILE": "1",
                                       "OPENMP": "1", "REPACK": "1"}


def test_the_probe_runs_as_setup_runs_it():
    """./dev asks the system Python for the flags before anything is installed (stdlib only)."""
    out = subprocess.run([sys.executable, "-m", "harness.backends.llama_build", "cmake-args"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == cmake_args(probe()) and out.startswith("-DGGML_NATIVE=OFF")


def test_the_installed_build_uses_every_extension_this_machine_grants():
    """The installed llama.cpp reports (llama_print_system_info) every SIMD extension the CPU
    grants here, unless setup installed another flag set (CMAKE_ARGS, or the fallback after a
    build of this machine's died)."""
    from harness.backends.llama_cpp import system_info

    report = build_report(system_info())
    print(f"\n{report.system_info}\ngranted: {' '.join(report.granted)}")
    chosen_here = report.cmake_args is None or report.cmake_args == cmake_args(probe())
    if chosen_here:
        assert report.unused == (), f"the build leaves out {report.unused}: rerun ./dev setup"
        assert report.brief().endswith("(every extension this CPU grants)")
