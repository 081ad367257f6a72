"""C templates of the native SGLD step with bf16 convolution products (``sampler.precision = "bf16"``).

The same step as native_src.py, image by image in cache, but every conv's multiply-adds run as
AVX-512 BF16 dot products (``vdpbf16ps``): each instruction multiplies 16 pairs of bf16 numbers and adds
both products of a pair to one fp32 accumulator, twice the work of an fp32 FMA. What is rounded to bf16
is what a conv reads: the image fed to the first conv, the activations between convs, the gradients
fed back through them, and the conv weights. Accumulators, biases, SiLU and SiLU', the dense head, the
clipping and the chains themselves stay fp32.

A dot product works on pairs, so the layouts change: a conv's pairs are two neighbouring input
channels (adjacent in channels-last memory, so one 32-bit broadcast loads both), the weights are stored
[..][channel pair][out channel][2]; the first conv (one input channel) pairs two horizontal taps, its
kernel padded by one zero column; the transposed convs pair output channels; the first conv's input
gradient, vectorised over 16 image columns, pairs channels, so the gradient it reads is stored
[row][channel pair][column][2].

The bf16 step also draws its own Langevin noise (``sgld_step_seeded``, gauss_fill below): torch's
``randn``, drawn in the main thread, took a core for ~0.5 ms of each 128-chain step, as much as the
whole step's rounding saved.
"""

from __future__ import annotations

PRELUDE = r"""
#include <immintrin.h>
#ifndef __AVX512BF16__
#error "this CPU has no AVX-512 BF16 dot products"
#endif
typedef uint16_t bf16;
static inline __m512bh ldbh(const bf16 *p) { return (__m512bh)_mm512_loadu_si512((const void *)p); }
/* one pair of bf16 values broadcast to all 16 lanes */
static inline __m512bh pair(const bf16 *p) { uint32_t v; memcpy(&v, p, 4); return (__m512bh)_mm512_set1_epi32((int)v); }
static inline vf dp(vf acc, __m512bh a, __m512bh b) { return (vf)_mm512_dpbf16_ps((__m512)acc, a, b); }
/* 16 floats to bf16, rounded to nearest even */
static inline void stbh(bf16 *p, vf v) { _mm256_storeu_si256((__m256i *)p, (__m256i)_mm512_cvtneps_pbh((__m512)v)); }
static inline bf16 tobf(float f) { uint32_t u; memcpy(&u, &f, 4); u += 0x7fffu + ((u >> 16) & 1u); return (bf16)(u >> 16); }
/* The Langevin noise, drawn here rather than by torch (whose draw cost a fifth of a step): counter-based, so an
   image's noise depends only on (seed, step, image index), never on how the chains are split across threads.
   Bits: Wellons' lowbias32 mix applied twice to the counter; normals: Box-Muller, two per pair of uniforms. */
typedef uint32_t v16w __attribute__((vector_size(64)));
static inline uint32_t mix1(uint32_t x) { x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; return x ^ (x >> 16); }
static inline v16w mix16(v16w x) { x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; return x ^ (x >> 16); }
/* natural log for x in (0, 1] (Cephes logf: mantissa in [sqrt(1/2), sqrt(2)) and a polynomial) */
static inline vf vlog(vf x) {
    vi bits = (vi)x;
    vf e = __builtin_convertvector(((bits >> 23) & 0xff) - 126, vf);
    vf m = (vf)((bits & 0x007fffff) | 0x3f000000);   /* [0.5, 1) */
    const vi low = m < splat(0.707106781186547524f);
    e = vsel(low, e - 1.0f, e);
    m = vsel(low, m + m - 1.0f, m - 1.0f);
    const vf z = m * m;
    vf y = m * 7.0376836292E-2f - 1.1514610310E-1f;
    y = y * m + 1.1676998740E-1f; y = y * m - 1.2420140846E-1f; y = y * m + 1.4249322787E-1f;
    y = y * m - 1.6668057665E-1f; y = y * m + 2.0000714765E-1f; y = y * m - 2.4999993993E-1f;
    y = y * m + 3.3333331174E-1f;
    y = y * m * z + e * -2.12194440e-4f - 0.5f * z;
    return m + y + e * 0.693359375f;
}
/* sin and cos of t in [-pi, pi]: reduced to [0, pi/2], then Taylor series (error < 1e-7 there) */
static inline void vsincos(vf t, vf *s, vf *c) {
    const vf a0 = (vf)((vi)t & 0x7fffffff);
    const vi far = a0 > splat(1.57079632679f);
    const vf a = vsel(far, 3.14159265359f - a0, a0), a2 = a * a;
    vf cs = a2 * (1.0f / 479001600) - 1.0f / 3628800;
    cs = cs * a2 + 1.0f / 40320; cs = cs * a2 - 1.0f / 720; cs = cs * a2 + 1.0f / 24; cs = cs * a2 - 0.5f;
    cs = cs * a2 + 1.0f;
    vf sn = a2 * (-1.0f / 39916800) + 1.0f / 362880;
    sn = sn * a2 - 1.0f / 5040; sn = sn * a2 + 1.0f / 120; sn = sn * a2 - 1.0f / 6; sn = sn * a2 + 1.0f;
    sn = sn * a;
    *c = vsel(far, -cs, cs);
    *s = vsel(t < splat(0.0f), -sn, sn);
}
/* count (a multiple of 32) normals with standard deviation std from key */
static void gauss_fill(float *restrict out, int count, float std, uint32_t key) {
    const v16w lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int i = 0; i < count; i += 32) {
        const v16w c = lane + (uint32_t)i;
        const v16w h1 = mix16(mix16(c) ^ key), h2 = mix16(mix16(c + 16u) ^ key);
        const vf u1 = (__builtin_convertvector(h1 >> 8, vf) + 0.5f) * (1.0f / 16777216);   /* (0, 1) */
        const vf u2 = __builtin_convertvector(h2 >> 8, vf) * (1.0f / 16777216) - 0.5f;     /* [-1/2, 1/2) */
        const vf r = (vf)_mm512_sqrt_ps((__m512)(vlog(u1) * -2.0f)) * std;
        vf s, co;
        vsincos(u2 * 6.28318530718f, &s, &co);
        st(out + i, r * co);
        st(out + i + 16, r * s);
    }
}
/* a = SiLU(z) stored as bf16 (the next conv's input); d = SiLU'(z) in fp32 */
static inline void silu2bf(vf z, bf16 *a, float *d) {
    const vf s = 1.0f / (1.0f + vexp(-z));
    stbh(a, z * s);
    st(d, s * (1.0f + z * (1.0f - s)));
}
"""

# The skeletons are native_src's (CONV_FWD, CONV_BWD, FIRST_BWD_UPDATE, with T = bf16); these are their taps.
# Conv l >= 2 forward: input bf16 [HI+2P][HI+2P][CI]; wf: bf16 [K][K][CI/2][CO][2].
FWD_TAPS = r"""            for (int u = 0; u < {K}; u++)
                for (int v = 0; v < {K}; v++)
                    for (int c = 0; c < {CI} / 2; c++) {{
                        const bf16 *w = wf + ((u * {K} + v) * ({CI} / 2) + c) * {CO} * 2;
                        const bf16 *x = in + ((2 * i + u) * {WI} + 2 * j0 + v) * {CI} + 2 * c;
                        __m512bh wk[{CBS}];
                        for (int cb = 0; cb < {CBS}; cb++) wk[cb] = ldbh(w + 32 * (cb0 + cb));
                        for (int jj = 0; jj < {JB}; jj++) {{
                            const __m512bh xv = pair(x + 2 * jj * {CI});
                            for (int cb = 0; cb < {CBS}; cb++) acc[jj][cb] = dp(acc[jj][cb], wk[cb], xv);
                        }}
                    }}"""

# The first conv (one input channel): taps v and v+1 of a row are a pair (adjacent pixels); wf: bf16
# [K][KP/2][CO][2], KP = K + 1 with a zero last tap. The input row is read one pixel past the kernel's
# last tap, still inside the zero border.
CONV1_FWD_TAPS = r"""            for (int u = 0; u < {K}; u++)
                for (int vp = 0; vp < {KP} / 2; vp++) {{
                    const bf16 *w = wf + (u * ({KP} / 2) + vp) * {CO} * 2;
                    const bf16 *x = in + (2 * i + u) * {WI} + 2 * j0 + 2 * vp;
                    __m512bh wk[{CBS}];
                    for (int cb = 0; cb < {CBS}; cb++) wk[cb] = ldbh(w + 32 * (cb0 + cb));
                    for (int jj = 0; jj < {JB}; jj++) {{
                        const __m512bh xv = pair(x + 2 * jj);
                        for (int cb = 0; cb < {CBS}; cb++) acc[jj][cb] = dp(acc[jj][cb], wk[cb], xv);
                    }}
                }}"""

# Conv l input gradient: g bf16 [HO+2R][HO+2R][CO]; wt: bf16 [K][K][CO/2][CI][2] (output channels paired).
BWD_TAPS = r"""                        for (int k = 0; k < {CO} / 2; k++) {{
                            __m512bh wk[{CBS}];
                            for (int cb = 0; cb < {CBS}; cb++) wk[cb] = ldbh(w + k * {CI} * 2 + 32 * (cb0 + cb));
                            for (int jj = 0; jj < {JB}; jj++) {{
                                const __m512bh gv = pair(gr + jj * {CO} + 2 * k);
                                for (int cb = 0; cb < {CBS}; cb++) acc[jj][cb] = dp(acc[jj][cb], wk[cb], gv);
                            }}
                        }}"""
STORE_PADDED = "stbh(out + ((p + {R2}) * {WG2} + q + {R2}) * {CI} + 16 * (cb0 + cb), val);"
STORE_TRANSPOSED = ("{{ bf16 tmp[16]; stbh(tmp, val); for (int c = 0; c < 16; c++) {{ const int ch = 16 * (cb0 + cb) + c; "
                    "out[((p * ({CI} / 2) + ch / 2) * {WT} + q + {P1}) * 2 + (ch & 1)] = tmp[c]; }} }}")

# The first conv's input gradient with gt bf16 [row][CO/2][WT][2] and w1b bf16 [CO/2][K][K][2]: one dot product
# takes two channels for 16 columns.
FIRST_TAPS = r"""            for (int c = 0; c < {CO} / 2; c++) {{
                const bf16 *src = gt + ((i * ({CO} / 2) + c) * {WT} + {P}) * 2, *w = w1b + c * {K} * {K} * 2;
                for (int u = 0; u < {K}; u++)
                    for (int v = 0; v < {K}; v++) {{
                        const int px = (v - {P}) & 1, sh = (v - {P} - px) / 2;   /* column 2j+v-P = 2(j+sh)+px */
                        const __m512bh wv = pair(w + (u * {K} + v) * 2);
                        acc[u][px] = dp(acc[u][px], ldbh(src + (16 * mb - sh) * 2), wv);
                    }}
            }}"""
