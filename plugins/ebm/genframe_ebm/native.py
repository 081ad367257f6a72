"""Native CPU kernels for the Swish CNN's first layer in SGLD (and the second's input gradient): a small
C file compiled on first use.

Why: the first conv has one input channel, so oneDNN runs it (and above all its input gradient,
a 16-to-1-channel transposed conv) far below the machine's FMA rate: at batch 128 the two took more
time than the other three convs' forward and backward together. Written out directly, with the
16 output channels in one SIMD vector, they run near the FMA rate, and the kernels fuse what sits
around them: the noise add and clamp before the conv, SiLU and its derivative after it, and the
SGLD update (clip, step, clamp) after the input gradient. The second conv's input gradient (oneDNN's
slowest remaining op, a strided transposed conv) is done here too, image by image, so its 16-channel
result goes straight on in cache instead of through a 1 MB tensor per 64 images.

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
enum { H = %(H)d, K = %(K)d, P = %(P)d, CO = %(CO)d, HO = %(HO)d, K2 = %(K2)d, C2 = %(C2)d };
enum { HP = H + 2 * P, CB = CO / 16, MB = HO / 16, JB = 8, GW = HO + 2 * P };
enum { P2 = K2 / 2, H2 = HO / 2, PJ = P2 > 0 ? P2 : 1, GP = H2 + 2 * PJ, JB2 = 8, KB = C2 / 16 };
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

/* x = clamp(x + noise) (noise may be NULL); z1 = conv1(x) + b1, a1 = SiLU(z1), d1 = SiLU'(z1);
   z2 = conv2(a1) + b2, a2 = SiLU(z2), d2 = SiLU'(z2). Image by image, so a1 never leaves the cache.
   x: [n][H][H]; wt: [K][K][CO]; w2f: [K2][K2][CO][C2]; d1: [n][HO][HO][CO], a2, d2: [n][H2][H2][C2]
   (channels last). SiLU' is written as ATen's silu_backward computes it. */
void first_forward(float *restrict x, const float *restrict noise, const float *restrict wt,
                   const float *restrict bias, const float *restrict w2f, const float *restrict bias2,
                   float *restrict a2, float *restrict d1, float *restrict d2, int n) {
    float xp[HP][HP], ap[HO + 2 * P2][HO + 2 * P2][CO];   /* zero-padded input and first activation */
    memset(xp, 0, sizeof xp);
    memset(ap, 0, sizeof ap);
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
        float *db = d1 + (size_t)b * HO * HO * CO;
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
                        st(&ap[i + P2][j0 + jj + P2][16 * cb], z * s);
                        st(db + (size_t)(i * HO + j0 + jj) * CO + 16 * cb, s * (1.0f + z * (1.0f - s)));
                    }
                }
        float *a2b = a2 + (size_t)b * H2 * H2 * C2, *d2b = d2 + (size_t)b * H2 * H2 * C2;
        for (int i = 0; i < H2; i++)
            for (int j0 = 0; j0 < H2; j0 += JB2) {
                v16 acc[JB2][KB];
                for (int jj = 0; jj < JB2; jj++)
                    for (int kb = 0; kb < KB; kb++) acc[jj][kb] = ld(bias2 + 16 * kb);
                for (int u = 0; u < K2; u++)
                    for (int v = 0; v < K2; v++)
                        for (int c = 0; c < CO; c++) {
                            const float *w = w2f + ((size_t)(u * K2 + v) * CO + c) * C2;
                            v16 wk[KB];
                            for (int kb = 0; kb < KB; kb++) wk[kb] = ld(w + 16 * kb);
                            for (int jj = 0; jj < JB2; jj++) {
                                const float av = ap[2 * i + u][2 * (j0 + jj) + v][c];
                                for (int kb = 0; kb < KB; kb++) acc[jj][kb] += av * wk[kb];
                            }
                        }
                for (int jj = 0; jj < JB2; jj++)
                    for (int kb = 0; kb < KB; kb++) {
                        const v16 z = acc[jj][kb], s = 1.0f / (1.0f + vexp(-z));
                        const size_t o = (size_t)(i * H2 + j0 + jj) * C2 + 16 * kb;
                        st(a2b + o, z * s);
                        st(d2b + o, s * (1.0f + z * (1.0f - s)));
                    }
            }
    }
}

/* Second conv (stride 2, 'same' padding) backward: d score / d a1 = its transposed conv of
   gz2 = d score / d z2 = ga2 * d2 (channels last [H2][H2][C2]); times d = SiLU'(z1) that is d score / d z1, stored transposed as
   gt[row][channel][column + P] for the first layer's backward. w2t: [K2][K2][C2][CO].
   Vectorised over 16 channels; JB2 output columns of one parity at a time share each weight load. */
static void second_backward(const float *restrict ga2, const float *restrict d2, const float *restrict w2t,
                            const float *restrict d, float gp[GP][GP][C2], float gt[HO][CO][GW]) {
    for (int i = 0; i < H2; i++)   /* gz2 = ga2 * SiLU'(z2), zero-padded */
        for (int j = 0; j < H2; j++)
            for (int kb = 0; kb < KB; kb++) {
                const size_t o = (size_t)(i * H2 + j) * C2 + 16 * kb;
                st(&gp[i + PJ][j + PJ][16 * kb], ld(ga2 + o) * ld(d2 + o));
            }
    for (int p = 0; p < HO; p++) {
        const int pp = p & 1, r = p >> 1;
        for (int pq = 0; pq < 2; pq++)
            for (int m0 = 0; m0 < H2; m0 += JB2)
                for (int cb = 0; cb < CB; cb++) {
                    v16 acc[JB2];
                    for (int jj = 0; jj < JB2; jj++) acc[jj] = splat(0.0f);
                    for (int u = 0; u < K2; u++) {
                        if ((pp + P2 - u) & 1) continue;   /* row p = 2i + u - P2 for an integer i */
                        const int i = r + (pp + P2 - u) / 2;
                        for (int v = 0; v < K2; v++) {
                            if ((pq + P2 - v) & 1) continue;
                            const float *g = gp[i + PJ][m0 + (pq + P2 - v) / 2 + PJ];
                            const float *w = w2t + (size_t)(u * K2 + v) * C2 * CO + 16 * cb;
                            for (int k = 0; k < C2; k++) {
                                const v16 wk = ld(w + k * CO);
                                for (int jj = 0; jj < JB2; jj++) acc[jj] += g[jj * C2 + k] * wk;
                            }
                        }
                    }
                    for (int jj = 0; jj < JB2; jj++) {
                        const int q = 2 * (m0 + jj) + pq;
                        const v16 gz = acc[jj] * ld(d + (size_t)(p * HO + q) * CO + 16 * cb);
                        for (int c = 0; c < 16; c++) gt[p][16 * cb + c][q + P] = gz[c];
                    }
                }
    }
}

/* From ga2 = d score / d a2 (the second conv's activation, channels last): back through SiLU', the second
   conv (second_backward), SiLU' and the first conv to g = d score / dx, then the SGLD update x = clamp(x + step * clamp(g, +-clip), -1, 1).
   wt2: [CO][K][K]. Output rows are produced as the input rows stream past: row 2i-P+u takes input row
   i with tap u, so after input row i the rows 2i-P and 2i-P+1 are complete and are written out. */
void first_backward_update(const float *restrict ga2, const float *restrict d2, const float *restrict w2t,
                           const float *restrict d, const float *restrict wt2, float *restrict x, int n,
                           float step, float clip) {
    float gt[HO][CO][GW], gp[GP][GP][C2];
    memset(gt, 0, sizeof gt);
    memset(gp, 0, sizeof gp);
    for (int b = 0; b < n; b++) {
        const size_t o2 = (size_t)b * H2 * H2 * C2;
        second_backward(ga2 + o2, d2 + o2, w2t, d + (size_t)b * HO * HO * CO, gp, gt);
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
class NativeSpec:
    """Shapes the kernels are built for: the first conv (1 input channel) and the second, both stride 2
    with 'same' padding (kernel // 2)."""

    size: int  # input height = width
    kernel: int
    channels: int  # first conv's output channels
    kernel2: int
    channels2: int  # second conv's output channels

    @property
    def out_size(self) -> int:
        return self.size // 2

    @staticmethod
    def supported(size: int, first: tuple[int, int, int, int, int], second: tuple[int, int, int, int, int]) -> bool:
        """``first``/``second``: (in_channels, out_channels, kernel, stride, padding) of square convs."""
        c_in, c_out, k, s, p = first
        c_in2, _, k2, s2, p2 = second
        return (c_in == 1 and s == 2 and k % 2 == 1 and p == k // 2 and size % 2 == 0 and c_out % 16 == 0
                and (size // 2) % 16 == 0 and c_in2 == c_out and s2 == 2 and k2 % 2 == 1 and p2 == k2 // 2
                and second[1] % 16 == 0)


class NativeKernels:
    """ctypes bindings of one compiled kernel library; every pointer is a contiguous float32 CPU tensor."""

    def __init__(self, library: ctypes.CDLL, spec: NativeSpec) -> None:
        self.spec = spec
        ptr, i32, f32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        self._forward = library.first_forward
        self._forward.argtypes, self._forward.restype = [ptr] * 9 + [i32], None
        self._backward = library.first_backward_update
        self._backward.argtypes, self._backward.restype = [ptr] * 6 + [i32, f32, f32], None

    def forward(self, x, noise, wt, bias, w2f, bias2, a2, d1, d2) -> None:
        """x = clamp(x + noise) in place; the first two convs with SiLU: a2, and SiLU' of both (channels last)."""
        self._forward(x.data_ptr(), None if noise is None else noise.data_ptr(), wt.data_ptr(), bias.data_ptr(),
                      w2f.data_ptr(), bias2.data_ptr(), a2.data_ptr(), d1.data_ptr(), d2.data_ptr(), x.shape[0])

    def backward_update(self, ga2, d2, w2t, d1, wt2, x, step: float, clip: float) -> None:
        """From d score / d a2 (channels last) to the SGLD update of x, in place."""
        self._backward(ga2.data_ptr(), d2.data_ptr(), w2t.data_ptr(), d1.data_ptr(), wt2.data_ptr(), x.data_ptr(),
                       x.shape[0], step, clip)


_lock = threading.Lock()
_loaded: dict[NativeSpec, NativeKernels | None] = {}
_loaded_errors: dict[NativeSpec, str] = {}


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


def _build(spec: NativeSpec) -> Path:
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise RuntimeError(f"no C compiler found (looked for {os.environ.get('CC', 'cc')!r}; set $CC)")
    source = _SOURCE % {"H": spec.size, "K": spec.kernel, "P": spec.kernel // 2, "CO": spec.channels,
                        "HO": spec.out_size, "K2": spec.kernel2, "C2": spec.channels2}
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


def load(spec: NativeSpec, required: bool = False) -> NativeKernels | None:
    """The kernels for ``spec``, built on first use; None (with one warning) if they cannot be built."""
    with _lock:
        if spec not in _loaded:
            try:
                _loaded[spec] = NativeKernels(ctypes.CDLL(str(_build(spec))), spec)
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
