"""Native CPU kernels for the first layer of the Swish CNN in SGLD: a small C file compiled on first use.

Why: the first conv has one input channel, so oneDNN runs it (and above all its input gradient,
a 16-to-1-channel transposed conv) far below the machine's FMA rate: at batch 128 the two took more
time than the other three convs' forward and backward together. Written out directly, with the
16 output channels in one SIMD vector, they run near the FMA rate, and the kernels fuse what sits
around them: the noise add and clamp before the conv, SiLU and its derivative after it, and the
SGLD update (clip, step, clamp) after the input gradient.

The C source is specialised to one layer shape, compiled with the system C compiler (``$CC`` or
``cc``) into a per-user cache keyed by the source, flags and CPU, and loaded with ctypes (which
releases the GIL, so sampler threads run the kernels in parallel). Without a compiler, or if the
build fails, ``load`` warns once and returns None and the sampler uses ATen ops instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

# GCC/Clang vector extensions: 16 floats per vector, lowered to AVX-512, AVX2, NEON... as the CPU allows.
_SOURCE = r"""
#include <stdint.h>
#include <string.h>
enum { H = %(H)d, K = %(K)d, P = %(P)d, CO = %(CO)d, HO = %(HO)d };
enum { HP = H + 2 * P, CB = CO / 16, MB = HO / 16, JB = 8, GW = HO + 2 * P };
typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
static inline v16 ld(const float *p) { return *(const v16u *)p; }
static inline void st(float *p, v16 v) { *(v16u *)p = v; }
static inline v16 splat(float c) { return (v16){0} + c; }
static inline v16 vsel(v16i m, v16 a, v16 b) { return (v16)((m & (v16i)a) | (~m & (v16i)b)); }

/* exp for SiLU: Cephes-style range reduction and polynomial, ~1 ulp, branch-free so it vectorises. */
static inline v16 vexp(v16 x) {
    x = vsel(x < splat(-87.0f), splat(-87.0f), x);
    x = vsel(x > splat(88.0f), splat(88.0f), x);
    v16 n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    v16 r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    v16 p = r * 1.9875691500E-4f + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    v16i e = (__builtin_convertvector(n, v16i) + 127) << 23;
    return p * (v16)e;
}

/* x = clamp(x + noise) (noise may be NULL); z = conv(x) + bias; a = SiLU(z), d = SiLU'(z).
   x: [n][H][H]; wt: [K][K][CO]; a, d: [n][HO][HO][CO] (channels last). */
void first_forward(float *restrict x, const float *restrict noise, const float *restrict wt,
                   const float *restrict bias, float *restrict a, float *restrict d, int n) {
    float xp[HP][HP];
    memset(xp, 0, sizeof xp);
    for (int b = 0; b < n; b++) {
        float *xi = x + (size_t)b * H * H;
        if (noise) {
            const float *ni = noise + (size_t)b * H * H;
            for (int q = 0; q < H * H; q++) {
                float v = xi[q] + ni[q];
                xi[q] = v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
            }
        }
        for (int r = 0; r < H; r++) memcpy(&xp[r + P][P], xi + r * H, H * sizeof(float));
        float *ab = a + (size_t)b * HO * HO * CO, *db = d + (size_t)b * HO * HO * CO;
        for (int i = 0; i < HO; i++)
            for (int j0 = 0; j0 < HO; j0 += JB)
                for (int cb = 0; cb < CB; cb++) {
                    v16 acc[JB];   /* JB positions at once: independent FMA chains hide latency */
                    for (int jj = 0; jj < JB; jj++) acc[jj] = ld(bias + 16 * cb);
                    for (int u = 0; u < K; u++)
                        for (int v = 0; v < K; v++) {
                            const v16 w = ld(wt + (u * K + v) * CO + 16 * cb);
                            const float *xr = &xp[2 * i + u][2 * j0 + v];
                            for (int jj = 0; jj < JB; jj++) acc[jj] += xr[2 * jj] * w;
                        }
                    for (int jj = 0; jj < JB; jj++) {
                        const v16 z = acc[jj], s = 1.0f / (1.0f + vexp(-z));
                        const size_t o = (size_t)(i * HO + j0 + jj) * CO + 16 * cb;
                        st(ab + o, z * s);
                        st(db + o, s * (1.0f + z * (1.0f - s)));   /* as ATen's silu_backward */
                    }
                }
    }
}

/* g = d score / dx from ga = d score / da (channels last) through SiLU' (d) and the conv; then the
   SGLD update x = clamp(x + step * clamp(g, +-clip), -1, 1). wt2: [CO][K][K].
   Output rows are produced as the input rows stream past: row 2i-P+u takes input row i with tap u,
   so after input row i the rows 2i-P and 2i-P+1 are complete and are written out. */
void first_backward_update(const float *restrict ga, const float *restrict d, const float *restrict wt2,
                           float *restrict x, int n, float step, float clip) {
    float gt[HO][CO][GW];   /* ga * d transposed to [row][channel][column], zero-padded columns */
    memset(gt, 0, sizeof gt);
    for (int b = 0; b < n; b++) {
        const float *gab = ga + (size_t)b * HO * HO * CO, *db = d + (size_t)b * HO * HO * CO;
        for (int i = 0; i < HO; i++)
            for (int j = 0; j < HO; j++) {
                const float *gp = gab + (size_t)(i * HO + j) * CO, *dp = db + (size_t)(i * HO + j) * CO;
                for (int c = 0; c < CO; c++) gt[i][c][j + P] = gp[c] * dp[c];
            }
        float *xb = x + (size_t)b * H * H;
        v16 acc[K][2][MB];   /* [row offset u][column parity][16-column block] */
        memset(acc, 0, sizeof acc);
        for (int i = 0; i <= HO + (K - 1) / 2; i++) {
            if (i < HO)
                for (int c = 0; c < CO; c++) {
                    const float *src = &gt[i][c][P], *w = wt2 + c * K * K;
                    for (int u = 0; u < K; u++)
                        for (int v = 0; v < K; v++) {
                            const int px = (v - P) & 1, sh = (v - P - px) / 2;   /* column 2j+v-P = 2(j+sh)+px */
                            for (int mb = 0; mb < MB; mb++) acc[u][px][mb] += w[u * K + v] * ld(src - sh + 16 * mb);
                        }
                }
            for (int r = 0; r < 2; r++) {
                const int y = 2 * i - P + r;
                if (y < 0 || y >= H) continue;
                float *xr = xb + y * H;
                for (int mb = 0; mb < MB; mb++)
                    for (int m = 0; m < 16; m++)
                        for (int px = 0; px < 2; px++) {
                            float g = acc[r][px][mb][m];
                            g = g < -clip ? -clip : (g > clip ? clip : g);
                            const int q = 32 * mb + 2 * m + px;
                            const float v = xr[q] + step * g;
                            xr[q] = v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
                        }
            }
            for (int u = 0; u + 2 < K; u++) memcpy(acc[u], acc[u + 2], sizeof acc[u]);
            for (int u = K - 2 < 0 ? 0 : K - 2; u < K; u++) memset(acc[u], 0, sizeof acc[u]);
        }
    }
}
"""
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC", "-std=gnu11"]


@dataclass(frozen=True)
class FirstLayerSpec:
    """Shape of the first conv the kernels are built for: 1 input channel, stride 2, 'same' padding."""

    size: int  # input height = width
    kernel: int
    channels: int  # output channels

    @property
    def out_size(self) -> int:
        return self.size // 2

    @staticmethod
    def supported(size: int, kernel: int, channels: int, padding: int, stride: int, in_channels: int) -> bool:
        return (in_channels == 1 and stride == 2 and kernel % 2 == 1 and padding == kernel // 2 and size % 2 == 0
                and channels % 16 == 0 and (size // 2) % 16 == 0)


class FirstLayerKernels:
    """ctypes bindings of one compiled kernel library; every pointer is a contiguous float32 CPU tensor."""

    def __init__(self, library: ctypes.CDLL, spec: FirstLayerSpec) -> None:
        self.spec = spec
        ptr, i32, f32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        self._forward = library.first_forward
        self._forward.argtypes, self._forward.restype = [ptr, ptr, ptr, ptr, ptr, ptr, i32], None
        self._backward = library.first_backward_update
        self._backward.argtypes, self._backward.restype = [ptr, ptr, ptr, ptr, i32, f32, f32], None

    def forward(self, x, noise, wt, bias, a, d) -> None:
        self._forward(x.data_ptr(), None if noise is None else noise.data_ptr(), wt.data_ptr(), bias.data_ptr(),
                      a.data_ptr(), d.data_ptr(), x.shape[0])

    def backward_update(self, ga, d, wt2, x, step: float, clip: float) -> None:
        self._backward(ga.data_ptr(), d.data_ptr(), wt2.data_ptr(), x.data_ptr(), x.shape[0], step, clip)


_lock = threading.Lock()
_loaded: dict[FirstLayerSpec, FirstLayerKernels | None] = {}
_loaded_errors: dict[FirstLayerSpec, str] = {}


def cache_dir() -> Path:
    root = os.environ.get("GENFRAME_KERNEL_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "genframe" / "kernels"


def _cpu_signature() -> str:
    """-march=native output depends on the CPU: a cache shared between machines must not mix them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() + platform.machine()


def _build(spec: FirstLayerSpec) -> Path:
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise RuntimeError(f"no C compiler found (looked for {os.environ.get('CC', 'cc')!r}; set $CC)")
    source = _SOURCE % {"H": spec.size, "K": spec.kernel, "P": spec.kernel // 2, "CO": spec.channels,
                        "HO": spec.out_size}
    key = hashlib.sha256("\n".join([source, " ".join(_FLAGS), compiler, _cpu_signature()]).encode()).hexdigest()[:20]
    directory = cache_dir()
    target = directory / f"sgld_first_{key}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:  # build aside, then rename: readers never see half a file
        src, out = Path(tmp) / "kernels.c", Path(tmp) / "kernels.so"
        src.write_text(source)
        result = subprocess.run([compiler, *_FLAGS, str(src), "-o", str(out)], capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[-500:]}")
        os.replace(out, target)
    return target


def load(spec: FirstLayerSpec, required: bool = False) -> FirstLayerKernels | None:
    """The kernels for ``spec``, built on first use; None (with one warning) if they cannot be built."""
    with _lock:
        if spec not in _loaded:
            try:
                _loaded[spec] = FirstLayerKernels(ctypes.CDLL(str(_build(spec))), spec)
            except Exception as exc:  # no compiler, read-only cache, odd platform: the ATen path still works
                _loaded[spec] = None
                _loaded_errors[spec] = str(exc)
                if not required:
                    warnings.warn(f"genframe-ebm: native SGLD kernels unavailable ({exc}); sampling uses "
                                  "ATen ops instead (slower first layer). sampler.impl='fused' silences this.",
                                  RuntimeWarning, stacklevel=3)
        kernels = _loaded[spec]
    if kernels is None and required:
        raise RuntimeError(f"sampler.impl='native' but the native kernels cannot be built: {_loaded_errors[spec]}")
    return kernels
