"""Which llama.cpp build this machine can run fastest and safely: the CPU extensions the OS
grants, the CMake flags that use exactly those, and what an installed build reports.

A CPU advertises an instruction set through CPUID (Linux lists it in ``/proc/cpuinfo``); a
program may use it only when the OS also saves its registers (XCR0, read with XGETBV) and, for
AMX, grants the process its tile state (``arch_prctl(ARCH_REQ_XCOMP_PERM)``). A virtual machine
can advertise AMX without granting it, and a build that uses it dies with SIGILL; llama.cpp's
own CPU-variant scoring reads CPUID only. So the flags name each ggml extension ON when CPUID
advertises it *and* the OS grants it, OFF otherwise (``-DGGML_NATIVE=OFF`` plus the list) —
the instruction sets ggml uses, as ``-march=native`` would give them, without trusting CPUID.
``./dev`` then proves the build runs (``harness doctor --check`` in a child process) and falls
back to the portable build if it dies.

``python -m harness.backends.llama_build cmake-args`` prints the flags (``./dev`` runs it with
the system Python before anything is installed: stdlib only, no llama_cpp at import).
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.untrusted.terminal import stderr, write

PORTABLE_X86 = "-DGGML_NATIVE=OFF"  # ggml's default x86 set: SSE4.2, AVX, AVX2, FMA, F16C, BMI2

# XCR0 state components (Intel SDM vol. 1, 13.1)
XCR0_SSE, XCR0_YMM = 1 << 1, 1 << 2
XCR0_OPMASK, XCR0_ZMM_HI256, XCR0_HI16_ZMM = 1 << 5, 1 << 6, 1 << 7
XCR0_TILECFG, XCR0_TILEDATA = 1 << 17, 1 << 18
YMM = XCR0_SSE | XCR0_YMM
ZMM = YMM | XCR0_OPMASK | XCR0_ZMM_HI256 | XCR0_HI16_ZMM
TILE = XCR0_TILECFG | XCR0_TILEDATA

SYS_ARCH_PRCTL = 158  # x86-64
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18


@dataclass(frozen=True)
class Extension:
    """One instruction set ggml can be built for."""

    name: str  # as llama.cpp's system info prints it ("" when it prints none)
    options: tuple[str, ...]  # the ggml CMake options that turn it on
    cpuinfo: tuple[str, ...]  # /proc/cpuinfo flags that must all be advertised
    xcr0: int  # state the OS must enable in XCR0
    needs: tuple[str, ...] = ()  # other extensions ggml builds it only with
    tile_permission: bool = False  # AMX: the kernel must also grant the tile state


# In the order ggml's CMake lists them (ggml/src/ggml-cpu/CMakeLists.txt, non-native x86).
EXTENSIONS: tuple[Extension, ...] = (
    Extension("", ("GGML_SSE42",), ("sse4_2",), XCR0_SSE),
    Extension("F16C", ("GGML_F16C",), ("f16c",), YMM),
    Extension("FMA", ("GGML_FMA",), ("fma",), YMM),
    Extension("BMI2", ("GGML_BMI2",), ("bmi2",), 0),
    Extension("AVX", ("GGML_AVX",), ("avx",), YMM),
    Extension("AVX2", ("GGML_AVX2",), ("avx2",), YMM, ("AVX",)),
    Extension("AVX_VNNI", ("GGML_AVX_VNNI",), ("avx_vnni",), YMM, ("AVX2",)),
    Extension("AVX512", ("GGML_AVX512",), ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"), ZMM,
              ("AVX2",)),
    Extension("AVX512_VBMI", ("GGML_AVX512_VBMI",), ("avx512vbmi",), ZMM, ("AVX512",)),
    Extension("AVX512_VNNI", ("GGML_AVX512_VNNI",), ("avx512_vnni",), ZMM, ("AVX512",)),
    Extension("AVX512_BF16", ("GGML_AVX512_BF16",), ("avx512_bf16",), ZMM, ("AVX512",)),
    # ggml's AMX kernels are compiled only with AVX512-VNNI beside them
    Extension("AMX_INT8", ("GGML_AMX_TILE", "GGML_AMX_INT8"), ("amx_tile", "amx_int8"), ZMM | TILE,
              ("AVX512_VNNI",), tile_permission=True),
    Extension("", ("GGML_AMX_BF16",), ("amx_bf16",), ZMM | TILE, ("AMX_INT8",), tile_permission=True),
)


@dataclass(frozen=True)
class CpuGrants:
    """What this CPU advertises and what the OS lets a process use."""

    advertised: frozenset[str]  # /proc/cpuinfo flags
    xcr0: int | None  # None: not read (no XSAVE, not Linux x86-64)
    tile_permission: bool

    def granted(self, ext: Extension) -> bool:
        if not set(ext.cpuinfo) <= self.advertised or self.xcr0 is None:
            return False
        if self.xcr0 & ext.xcr0 != ext.xcr0:
            return False
        return self.tile_permission or not ext.tile_permission

    def usable(self) -> list[Extension]:
        """The extensions granted, each with what ggml builds it only with."""
        out: list[Extension] = []
        names: set[str] = set()
        for ext in EXTENSIONS:
            if self.granted(ext) and all(n in names for n in ext.needs):
                out.append(ext)
                names.add(ext.name)
        return out

    def refused(self) -> list[Extension]:
        """Extensions the CPU advertises that the OS does not grant (the SIGILL trap)."""
        return [e for e in EXTENSIONS if set(e.cpuinfo) <= self.advertised and not self.granted(e)]


def _cpuinfo_flags(text: str) -> frozenset[str]:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


# xor ecx, ecx / xgetbv / shl rdx, 32 / or rax, rdx / ret: XCR0 as one 64-bit value
_XGETBV = bytes((0x31, 0xC9, 0x0F, 0x01, 0xD0, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0, 0xC3))


def read_xcr0() -> int | None:
    """XCR0 through XGETBV run from an executable page; None where that is refused. Only call
    it when the CPU lists ``xsave`` (Linux then has CR4.OSXSAVE set; otherwise XGETBV faults)."""
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError, AttributeError):
        return None  # W+X pages forbidden (SELinux execmem): fall back to the portable build
    page.write(_XGETBV)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    value = int(ctypes.CFUNCTYPE(ctypes.c_uint64)(address)())
    return value


def request_tile_permission() -> bool:
    """Whether the kernel grants this process AMX tile data (what ggml asks before AMX)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False


def probe(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuGrants:
    """This machine's grants (x86-64 Linux; elsewhere nothing is granted)."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return CpuGrants(frozenset(), None, False)
    try:
        flags = _cpuinfo_flags(cpuinfo.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return CpuGrants(frozenset(), None, False)
    xcr0 = read_xcr0() if "xsave" in flags else None
    amx = bool(xcr0 is not None and xcr0 & TILE == TILE and "amx_tile" in flags and request_tile_permission())
    return CpuGrants(flags, xcr0, amx)


# Scheduling for this CPU, never an instruction it lacks. Without it, on an Ice Lake Xeon the
# build ran prompts at 0.92 of -march=native's speed (SmolLM2 Q4_1) — slower even than the AVX2
# build; with it, 1.00 (bench/llama_build.py, bench/README.md).
TUNE_X86 = "-DCMAKE_C_FLAGS=-mtune=native -DCMAKE_CXX_FLAGS=-mtune=native"


def cmake_args(grants: CpuGrants) -> str:
    """Every ggml x86 extension option, ON exactly when granted, tuned for this CPU (no
    -march=native: that would also take instructions the OS does not grant)."""
    if grants.xcr0 is None:
        return PORTABLE_X86
    on = {o for e in grants.usable() for o in e.options}
    return " ".join(["-DGGML_NATIVE=OFF"] + [f"-D{o}={'ON' if o in on else 'OFF'}"
                                             for e in EXTENSIONS for o in e.options] + [TUNE_X86])


def expected_features(grants: CpuGrants) -> list[str]:
    """The system-info names a build for these grants must report."""
    return [e.name for e in grants.usable() if e.name]


def parse_system_info(text: str) -> dict[str, str]:
    """llama.cpp's ``CPU : SSE3 = 1 | AVX = 1 | ...`` as {feature: value} (the CPU backend's)."""
    out: dict[str, str] = {}
    for part in text.replace("\n", "|").split("|"):
        if ":" in part:
            part = part.rsplit(":", 1)[1]
        key, eq, value = part.partition("=")
        if eq and key.strip():
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class BuildReport:
    """The installed build against this machine: what `harness doctor` prints."""

    system_info: str  # llama.cpp's own line
    reported: tuple[str, ...]  # the CPU features it says it was built with
    granted: tuple[str, ...]  # the ggml extensions this CPU and OS grant
    refused: tuple[str, ...]  # advertised by CPUID, not granted by the OS
    cmake_args: str | None  # what ./dev installed it with (None: not installed by ./dev)

    @property
    def unused(self) -> tuple[str, ...]:
        """Granted extensions the build does not use."""
        return tuple(n for n in self.granted if n not in self.reported)

    def brief(self) -> str:
        """One line: what the build uses and what it leaves out."""
        simd = [n for n in self.reported if n in {e.name for e in EXTENSIONS}]
        line = " ".join(simd) or "no SIMD extension"
        if self.unused:
            line += f" (portable: leaves out {' '.join(self.unused)}, which this CPU grants)"
        elif self.granted:
            line += " (every extension this CPU grants)"
        if self.refused:
            line += f"; advertised but not granted by the OS: {' '.join(self.refused)}"
        return line

    def to_dict(self) -> dict[str, object]:
        return {"system_info": self.system_info, "reported": list(self.reported), "granted": list(self.granted),
                "refused": list(self.refused), "unused": list(self.unused), "cmake_args": self.cmake_args}


def build_report(info: str, args_file: Path | None = None) -> BuildReport:
    """The installed llama.cpp's report (`info`: its ``llama_print_system_info`` line) against
    this machine's grants."""
    args_file = args_file or Path(sys.prefix) / ".harness-llama-args"
    try:
        args: str | None = args_file.read_text(encoding="utf-8").strip()
    except OSError:
        args = None
    reported = tuple(k for k, v in parse_system_info(info).items() if v == "1")
    grants = probe()
    return BuildReport(info, reported, tuple(expected_features(grants)),
                       tuple(e.name or e.options[0] for e in grants.refused()), args)


def main(argv: list[str]) -> int:
    if argv[:1] == ["cmake-args"]:
        write(cmake_args(probe()), exact=True)
        return 0
    write("usage: python -m harness.backends.llama_build cmake-args", stream=stderr())
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
