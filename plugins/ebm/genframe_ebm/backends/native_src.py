"""C source of the native SGLD step for one Swish CNN shape (see native.py for why and how it is built).

One call runs one SGLD step on a chunk of chains, image by image: every activation, SiLU' and
gradient of one image (~120 KB) stays in the core's L1/L2 cache, and nothing goes back to Python
between layers. Per image: noise add and clamp; each stride-2 conv with bias and SiLU (keeping SiLU'
for the backward); the dense head; back through the head, each conv's transposed conv (its input
gradient) times the SiLU' below; the first conv's input gradient; the update (clip, step, clamp).

Layouts are channels-last with zero borders, so the inner loops have no bounds checks. Convs are
vectorised over output (forward) or input (backward) channels with GCC/Clang vector extensions, in
vectors of 16 floats where the CPU has AVX-512 and 8 elsewhere (AVX2: half the register width and half
the registers); several output positions share each weight load. The shapes are baked in as literals,
so the compiler unrolls and keeps accumulators in registers, as many as ``blocking`` lets fit.
"""

from __future__ import annotations

from genframe_ebm.backends import native_bf16_src

PRELUDE = r"""static inline vf ld(const float *p) { return *(const vfu *)p; }
static inline void st(float *p, vf v) { *(vfu *)p = v; }
static inline vf splat(float c) { return (vf){0} + c; }
static inline vf vsel(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
/* exp for SiLU: Cephes-style range reduction and polynomial, ~1 ulp, branch-free so it vectorises. */
static inline vf vexp(vf x) {
    x = vsel(x < splat(-87.0f), splat(-87.0f), x);
    x = vsel(x > splat(88.0f), splat(88.0f), x);
    vf n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    vf r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    vf p = r * 1.9875691500E-4f + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)e;
}
/* a = SiLU(z); d = SiLU'(z), written as ATen's silu_backward computes it */
static inline void silu2(vf z, float *a, float *d) {
    const vf s = 1.0f / (1.0f + vexp(-z));
    st(a, z * s);
    st(d, s * (1.0f + z * (1.0f - s)));
}
"""

# Conv l forward: input [HI+2P][HI+2P][CI] (zero border), output a [HO+2Q][HO+2Q][CO] at border Q (the
# next conv's padding), d [HO][HO][CO]. Accumulators: JB positions x CBS of the CB channel vectors of V
# floats, from vector cb0 (``blocking`` below); TAPS adds every tap's products to them (FWD_TAPS here: fp32 weights wf [K][K][CI][CO]); T is the type of what the conv reads,
# ATYPE of its output a, SILU the function storing a and d.
CONV_FWD = r"""
static void conv{l}_fwd(const {T} *restrict in, const {T} *restrict wf, const float *restrict bias,
                       {ATYPE} *restrict a, float *restrict d) {{
    for (int i = 0; i < {HO}; i++)
        for (int j0 = 0; j0 < {HO}; j0 += {JB})
            for (int cb0 = 0; cb0 < {CB}; cb0 += {CBS}) {{
            vf acc[{JB}][{CBS}];
            for (int jj = 0; jj < {JB}; jj++)
                for (int cb = 0; cb < {CBS}; cb++) acc[jj][cb] = ld(bias + {V} * (cb0 + cb));
{TAPS}
            for (int jj = 0; jj < {JB}; jj++)
                for (int cb = 0; cb < {CBS}; cb++)
                    {SILU}(acc[jj][cb], a + ((i + {Q}) * {WO} + j0 + jj + {Q}) * {CO} + {V} * (cb0 + cb),
                           d + (i * {HO} + j0 + jj) * {CO} + {V} * (cb0 + cb));
            }}
}}
"""
FWD_TAPS = r"""            for (int u = 0; u < {K}; u++)
                for (int v = 0; v < {K}; v++)
                    for (int c = 0; c < {CI}; c++) {{
                        const float *w = wf + ((u * {K} + v) * {CI} + c) * {CO};
                        const float *x = in + ((2 * i + u) * {WI} + 2 * j0 + v) * {CI} + c;
                        vf wk[{CBS}];
                        for (int cb = 0; cb < {CBS}; cb++) wk[cb] = ld(w + {V} * (cb0 + cb));
                        for (int jj = 0; jj < {JB}; jj++) {{
                            const float xv = x[2 * jj * {CI}];
                            for (int cb = 0; cb < {CBS}; cb++) acc[jj][cb] += xv * wk[cb];
                        }}
                    }}"""

# Conv l input gradient: g [HO+2R][HO+2R][CO] (d score / dz_l, zero border R); out[p][q] = (sum over taps) *
# dprev[p][q] = d score / dz_(l-1), written by STORE. Output rows and columns of one parity use the same taps;
# JB columns of one parity share each weight load, for CBS of the CB input-channel vectors at a time. TAPS
# sums one tap over the output channels (BWD_TAPS here: fp32 weights wt [K][K][CO][CI]).
CONV_BWD = r"""
static void conv{l}_bwd(const {T} *restrict g, const {T} *restrict wt, const float *restrict dprev,
                       {T} *restrict out) {{
    for (int p = 0; p < {HI}; p++) {{
        const int pp = p & 1, r = p >> 1;
        for (int pq = 0; pq < 2; pq++)
            for (int m0 = 0; m0 < {HO}; m0 += {JB})
                for (int cb0 = 0; cb0 < {CB}; cb0 += {CBS}) {{
                vf acc[{JB}][{CBS}];
                for (int jj = 0; jj < {JB}; jj++)
                    for (int cb = 0; cb < {CBS}; cb++) acc[jj][cb] = splat(0.0f);
                for (int u = 0; u < {K}; u++) {{
                    if ((pp + {P} - u) & 1) continue;   /* row p = 2i + u - P for an integer i */
                    const int i = r + (pp + {P} - u) / 2;
                    for (int v = 0; v < {K}; v++) {{
                        if ((pq + {P} - v) & 1) continue;
                        const {T} *gr = g + ((i + {R}) * {WG} + m0 + (pq + {P} - v) / 2 + {R}) * {CO};
                        const {T} *w = wt + (u * {K} + v) * {CO} * {CI};
{TAPS}
                    }}
                }}
                for (int jj = 0; jj < {JB}; jj++) {{
                    const int q = 2 * (m0 + jj) + pq;
                    for (int cb = 0; cb < {CBS}; cb++) {{
                        const vf val = acc[jj][cb] * ld(dprev + (p * {HI} + q) * {CI} + {V} * (cb0 + cb));
                        {STORE}
                    }}
                }}
            }}
    }}
}}
"""
BWD_TAPS = r"""                        for (int k = 0; k < {CO}; k++) {{
                            vf wk[{CBS}];
                            for (int cb = 0; cb < {CBS}; cb++) wk[cb] = ld(w + k * {CI} + {V} * (cb0 + cb));
                            for (int jj = 0; jj < {JB}; jj++) {{
                                const float gv = gr[jj * {CO} + k];
                                for (int cb = 0; cb < {CBS}; cb++) acc[jj][cb] += gv * wk[cb];
                            }}
                        }}"""
STORE_PADDED = "st(out + ((p + {R2}) * {WG2} + q + {R2}) * {CI} + {V} * (cb0 + cb), val);"
STORE_TRANSPOSED = ("for (int c = 0; c < {V}; c++) out[((p * {CI}) + {V} * (cb0 + cb) + c) * {WT} + q + {P1}] = "
                    "val[c];")

# The first conv's input gradient (1 channel out) from gt = d score / dz_1 (here [row][channel][column + P1]),
# one block of V output-column pairs at a time, streamed row by row: output row 2i-P1+u takes input row i
# with tap u, so after row i the rows 2i-P1 and 2i-P1+1 are complete; then the SGLD update of those rows of
# x. TAPS adds row i's products (FIRST_TAPS here: fp32 weights w1b [CO][K][K]).
FIRST_BWD_UPDATE = r"""
static void first_bwd_update(const {T} *restrict gt, const {T} *restrict w1b, float *restrict x,
                             float step, float clip) {{
    for (int mb = 0; mb < {MB}; mb++) {{
        vf acc[{K}][2];   /* [row offset u][column parity] of this block */
        memset(acc, 0, sizeof acc);
        for (int i = 0; i <= {HO} + ({K} - 1) / 2; i++) {{
            if (i < {HO})
{TAPS}
            for (int r = 0; r < 2; r++) {{
                const int y = 2 * i - {P} + r;
                if (y < 0 || y >= {H}) continue;
                float *xr = x + y * {H};
                for (int m = 0; m < {V}; m++)
                    for (int px = 0; px < 2; px++) {{
                        float gv = acc[r][px][m];
                        gv = gv < -clip ? -clip : (gv > clip ? clip : gv);
                        const int q = 2 * {V} * mb + 2 * m + px;
                        const float val = xr[q] + step * gv;
                        xr[q] = val < -1.0f ? -1.0f : (val > 1.0f ? 1.0f : val);
                    }}
            }}
            for (int u = 0; u + 2 < {K}; u++) memcpy(acc[u], acc[u + 2], sizeof acc[u]);
            for (int u = {K} - 2 < 0 ? 0 : {K} - 2; u < {K}; u++) memset(acc[u], 0, sizeof acc[u]);
        }}
    }}
}}
"""
FIRST_TAPS = r"""            for (int c = 0; c < {CO}; c++) {{
                const float *src = gt + (i * {CO} + c) * {WT} + {P}, *w = w1b + c * {K} * {K};
                for (int u = 0; u < {K}; u++)
                    for (int v = 0; v < {K}; v++) {{
                        const int px = (v - {P}) & 1, sh = (v - {P} - px) / 2;   /* column 2j+v-P = 2(j+sh)+px */
                        acc[u][px] += w[u * {K} + v] * ld(src - sh + {V} * mb);
                    }}
            }}"""

# Head: z = fc(h) + b, hidden SiLU, score = out . SiLU(z); gradient back to the last conv's activation,
# times its SiLU' (d score / dz_L), into g [HL+2R][HL+2R][CL] at border R (GTYPE: fp32, or bf16 for the bf16
# kernels' transposed convs). fct: [NIN][NH], fc: [NH][NIN]. E accumulator sets for z (two halve its
# dependency chains where it has few vectors); the gradient in blocks of QB vectors, to stay in registers.
HEAD = r"""
static void head(const float *restrict h, const float *restrict fct, const float *restrict fc,
                 const float *restrict b, const float *restrict wout, const float *restrict dl, {GTYPE} *restrict g) {{
    vf z[{E}][{NHB}];
    for (int o = 0; o < {NHB}; o++) {{
        z[0][o] = ld(b + {V} * o);
        for (int e = 1; e < {E}; e++) z[e][o] = splat(0.0f);
    }}
    for (int i = 0; i < {NIN}; i += {E})
        for (int e = 0; e < {E}; e++)
            for (int o = 0; o < {NHB}; o++) z[e][o] += h[i + e] * ld(fct + (i + e) * {NH} + {V} * o);
    float gz[{NH}], tmp[{V}];
    for (int o = 0; o < {NHB}; o++) {{
        vf zo = z[0][o];
        for (int e = 1; e < {E}; e++) zo += z[e][o];
        silu2(zo, tmp, gz + {V} * o);
        st(gz + {V} * o, ld(gz + {V} * o) * ld(wout + {V} * o));
    }}
    for (int q0 = 0; q0 < {NINB}; q0 += {QB}) {{
        vf acc[{QB}];
        for (int q = 0; q < {QB}; q++) acc[q] = splat(0.0f);
        for (int o = 0; o < {NH}; o++)
            for (int q = 0; q < {QB}; q++) acc[q] += gz[o] * ld(fc + o * {NIN} + {V} * (q0 + q));
        for (int q = 0; q < {QB}; q++) {{
            const int pos = {V} * (q0 + q) / {CL}, c = {V} * (q0 + q) % {CL};   /* h is [HL][HL][CL] */
            {GSTORE}(g + (((pos / {HL}) + {R}) * {WG} + pos % {HL} + {R}) * {CL} + c,
                     acc[q] * ld(dl + {V} * (q0 + q)));
        }}
    }}
}}
"""


def vector_types(lanes: int) -> str:
    """The headers and C vector types of ``lanes`` floats that PRELUDE builds on: vf (values), vi (int32
    lanes, for masks), vfu (unaligned)."""
    size = 4 * lanes
    return ("\n#include <stdint.h>\n#include <string.h>\n"
            f"\ntypedef float vf __attribute__((vector_size({size})));\n"
            f"typedef int32_t vi __attribute__((vector_size({size})));\n"
            f"typedef float vfu __attribute__((vector_size({size}), aligned(4)));\n")


def registers(lanes: int) -> int:
    """Vector registers of the instruction set ``lanes`` float lanes stand for: AVX-512 32, AVX2 16."""
    return 32 if lanes >= 16 else 16


def blocking(lanes: int, positions: int, vectors: int) -> tuple[int, int]:
    """(output positions, channel vectors) per block of a conv's accumulators, for ``positions`` outputs in a
    row and ``vectors`` channel vectors. With 16 lanes (AVX-512) a block is up to 8 positions by all vectors;
    with fewer registers (AVX2) a block must leave room for its weight vectors and a broadcast, or the
    accumulators spill to the stack every tap: then the most accumulators that fit, fewer weight loads (more
    positions) breaking ties."""
    if lanes >= 16:
        return min(8, positions), vectors
    fits = [(jb, cbs) for jb in (1, 2, 4, 8) if positions % jb == 0 for cbs in range(1, vectors + 1)
            if vectors % cbs == 0 and jb * cbs + cbs + 2 <= registers(lanes)]
    return max(fits, key=lambda block: (block[0] * block[1], block[0]))


def head_blocking(lanes: int, hidden_vectors: int, input_vectors: int) -> tuple[int, int]:
    """(accumulator sets for z, gradient vectors per block) of the head: with 16 lanes two sets and one block
    (AVX-512's kernel as measured), else within the registers."""
    if lanes >= 16:
        return 2, input_vectors
    sets = 2 if 2 * hidden_vectors + 2 <= registers(lanes) else 1
    block = max(q for q in range(1, input_vectors + 1) if input_vectors % q == 0 and q + 2 <= registers(lanes))
    return sets, block


def source(size: int, convs: list[tuple[int, int, int]], hidden: int, precision: str = "fp32", lanes: int = 16) -> str:
    """C for a net whose convs are (in_channels, out_channels, kernel), all stride 2 with padding k // 2,
    on size x size one-channel images, followed by Dense(hidden), SiLU, Dense(1); the convs' products in
    ``precision``, "fp32" or "bf16" (native_bf16_src.py); vectors of ``lanes`` floats, 16 (AVX-512, and
    what other CPUs' compilers split up) or 8 (AVX2). bf16 products are AVX-512 instructions: 16 lanes."""
    bf = precision == "bf16"
    if lanes not in (8, 16) or (bf and lanes != 16):
        raise ValueError(f"native kernels take 8 or 16 lanes (bf16 products: 16), not {lanes}")
    kind = native_bf16_src if bf else None
    t = "bf16" if bf else "float"  # what a conv reads
    prelude = [vector_types(lanes), PRELUDE]
    parts, sizes = [*prelude, native_bf16_src.PRELUDE] if bf else prelude, [size]
    for _ in convs:
        sizes.append(sizes[-1] // 2)
    pads = [k // 2 for _, _, k in convs]
    n = len(convs)
    for l, ((ci, co, k), hi) in enumerate(zip(convs, sizes), start=1):
        ho, q = hi // 2, (pads[l] if l < n else 0)  # output border: the next conv's padding
        jb, cbs = blocking(lanes, ho, co // lanes)
        shape = dict(l=l, HO=ho, JB=jb, CB=co // lanes, CBS=cbs, V=lanes, K=k, CI=ci, CO=co, WI=hi + 2 * pads[l - 1],
                     Q=q, WO=ho + 2 * q, KP=k + 1)
        taps = FWD_TAPS if not bf else (kind.CONV1_FWD_TAPS if l == 1 else kind.FWD_TAPS)
        last = l == n  # the last conv feeds the fp32 head
        parts.append(CONV_FWD.format(**shape, T=t, ATYPE="float" if last else t, TAPS=taps.format(**shape),
                                     SILU="silu2bf" if bf and not last else "silu2"))
    r = [max(1, k // 2) for _, _, k in convs]  # zero border of each conv's output gradient
    for l in range(n, 1, -1):
        (ci, co, k), hi, ho = convs[l - 1], sizes[l - 1], sizes[l]
        if l > 2:
            store = (kind.STORE_PADDED if bf else STORE_PADDED).format(R2=r[l - 2], WG2=hi + 2 * r[l - 2], CI=ci,
                                                                      V=lanes)
        else:
            store = (kind.STORE_TRANSPOSED if bf else STORE_TRANSPOSED).format(CI=ci, WT=hi + 2 * pads[0], P1=pads[0],
                                                                              V=lanes)
        jb, cbs = blocking(lanes, ho, ci // lanes)
        shape = dict(l=l, HI=hi, HO=ho, JB=jb, CB=ci // lanes, CBS=cbs, V=lanes, K=k, P=k // 2, R=r[l - 1],
                     WG=ho + 2 * r[l - 1], CO=co, CI=ci)
        parts.append(CONV_BWD.format(**shape, T=t, STORE=store, TAPS=(kind.BWD_TAPS if bf else BWD_TAPS).format(**shape)))
    _, co1, k1 = convs[0]
    shape = dict(K=k1, P=k1 // 2, MB=sizes[1] // lanes, V=lanes, HO=sizes[1], CO=co1, WT=sizes[1] + 2 * pads[0], H=size)
    parts.append(FIRST_BWD_UPDATE.format(**shape, T=t, TAPS=(kind.FIRST_TAPS if bf else FIRST_TAPS).format(**shape)))
    cl, hl = convs[-1][1], sizes[-1]
    sets, block = head_blocking(lanes, hidden // lanes, hl * hl * cl // lanes)
    parts.append(HEAD.format(NH=hidden, NHB=hidden // lanes, NIN=hl * hl * cl, NINB=hl * hl * cl // lanes, CL=cl, HL=hl,
                             R=r[-1], WG=hl + 2 * r[-1], V=lanes, E=sets, QB=block, GTYPE="bf16" if bf else "float",
                             GSTORE="stbh" if bf else "st"))
    parts.append(_step(size, convs, sizes, pads, r, bf))
    return "".join(parts)


def _step(size, convs, sizes, pads, r, bf: bool) -> str:
    """The entry point: buffers carved from a zeroed workspace (borders stay zero: only interiors are
    ever written), then per image the layers in order. With bf16 products what a conv reads is bf16."""
    n = len(convs)
    half = "bf16" if bf else "float"  # the type of every buffer a conv reads
    bufs = [("xin", (size + 2 * pads[0]) ** 2, half)]
    for l in range(1, n + 1):
        border, co = (pads[l] if l < n else 0), convs[l - 1][1]
        bufs += [(f"a{l}", (sizes[l] + 2 * border) ** 2 * co, half if l < n else "float"),
                 (f"d{l}", sizes[l] ** 2 * co, "float")]
        if l > 1:
            bufs.append((f"g{l}", (sizes[l] + 2 * r[l - 1]) ** 2 * co, half))
    bufs.append(("gt", sizes[1] * convs[0][1] * (sizes[1] + 2 * pads[0]), half))
    carve, offset = [], 0
    for name, count, kind in bufs:
        carve.append(f"{kind} *{name} = ({kind} *)(ws + {offset});")
        floats = (count + 1) // 2 if kind == "bf16" else count
        offset += (floats + 15) // 16 * 16
    body = ["conv1_fwd(xin, w[0], w[1], a1, d1);"]
    for l in range(2, n + 1):
        body.append(f"conv{l}_fwd(a{l - 1}, w[{2 * l - 2}], w[{2 * l - 1}], a{l}, d{l});")
    k = 2 * n  # after the conv weights: fc^T, fc, bias, out weights, the transposed-conv weights, w1b
    body.append(f"head(a{n}, w[{k}], w[{k + 1}], w[{k + 2}], w[{k + 3}], d{n}, g{n});")
    for l in range(n, 1, -1):
        body.append(f"conv{l}_bwd(g{l}, w[{k + 4 + n - l}], d{l - 1}, {f'g{l - 1}' if l > 2 else 'gt'});")
    body.append(f"first_bwd_update(gt, w[{k + 4 + n - 1}], xb, step, clip);")
    hp, nl, pixels = size + 2 * pads[0], "\n    ", size * size
    seeded = "" if not bf else f"""
/* The same step with the noise drawn here: image b's noise at step t comes from (seed, t, image0 + b) alone. */
void sgld_step_seeded(float *restrict x, const void *const *w, float *restrict ws, int n, float step, float clip,
                      float std, uint32_t seed, uint32_t t, uint32_t image0) {{
    float *nz = ws + {offset};
    const uint32_t step_key = mix1(mix1(seed) + t);
    for (int b = 0; b < n; b++) {{
        gauss_fill(nz, {pixels}, std, mix1(step_key + image0 + (uint32_t)b));
        image_step(x + (size_t)b * {pixels}, nz, w, ws, step, clip);
    }}
}}
"""
    return f"""
size_t sgld_workspace_floats(void) {{ return {offset + (pixels if bf else 0)}; }}

/* One SGLD step for one image xb [{size}][{size}], in place; noise alike (pre-scaled) or NULL.
   w: per conv its weights [K][K][CI][CO] and bias; fc^T, fc, fc bias, out weights; the transposed-conv
   weights [K][K][CO][CI] of convs n..2; the first conv's weights [CO][K][K] (with bf16 products the conv
   weights are bf16 in native_bf16_src's layouts). ws: zeroed workspace. */
static inline void image_step(float *restrict xb, const float *restrict noise, const void *const *w,
                              float *restrict ws, float step, float clip) {{
    {" ".join(carve)}
    for (int y = 0; y < {size}; y++)
        for (int c = 0; c < {size}; c++) {{
            float val = xb[y * {size} + c];
            if (noise) {{
                val += noise[y * {size} + c];
                val = val < -1.0f ? -1.0f : (val > 1.0f ? 1.0f : val);
                xb[y * {size} + c] = val;
            }}
            xin[(y + {pads[0]}) * {hp} + c + {pads[0]}] = {'tobf(val)' if bf else 'val'};
        }}
    {nl.join(body)}
}}

/* One SGLD step for n images: x [n][{size}][{size}] updated in place; noise alike (pre-scaled) or NULL. */
void sgld_step(float *restrict x, const float *restrict noise, const void *const *w, float *restrict ws,
               int n, float step, float clip) {{
    for (int b = 0; b < n; b++)
        image_step(x + (size_t)b * {pixels}, noise ? noise + (size_t)b * {pixels} : NULL, w, ws, step, clip);
}}
{seeded}"""
