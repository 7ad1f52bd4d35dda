/* lstm_seq's second-order map, once per dtype: included twice by rnn.c
 * with LD_REAL (float, double) and LD_SFX (f32, f64) defined. The
 * derivation is beside lstm_seq_vjp_dot in rnn.c; the names here follow it.
 *
 * Scratch (lstm_dot_elems, at the END of c->saved, after the first-order
 * maps' buffers so that it does not depend on their layout): A, Ad (N·T·4H
 * each: the activations and their tangents, replaced position by position
 * by the gate adjoints D and their tangents Ḋ in the backward loop, as a
 * position's activations are not needed after its step), Hp, Hpd (N·T·H:
 * h_{t−1}, ḣ_{t−1} per position), then dh, dc, dhd, dcd (N·H: the carries
 * and their tangents) and a zero row (H). As much as the first-order maps'. */
#define LD_CAT_(a, b) a##_##b
#define LD_CAT(a, b)  LD_CAT_(a, b)
#define LD(name)      LD_CAT(name, LD_SFX)

/* Step t's dual backward, one row of H: the activations a and their
 * tangents ad replaced by D and Ḋ from ζ (zh, zc) and the carries (dh, dhd
 * read; dc, dcd replaced by those reaching c_{t−1}). */
TG_SIMD_CLONES static void LD(dot_row)(LD_REAL *restrict a, LD_REAL *restrict ad,
                                       const LD_REAL *restrict yc, const LD_REAL *restrict ycd,
                                       const LD_REAL *restrict cp, const LD_REAL *restrict cpd,
                                       const LD_REAL *restrict zh, const LD_REAL *restrict zc,
                                       const LD_REAL *restrict dh, const LD_REAL *restrict dhd,
                                       LD_REAL *restrict dc, LD_REAL *restrict dcd, size_t H) {
    for (size_t j = 0; j < H; j++) {
        const LD_REAL i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        const LD_REAL id = ad[j], fd = ad[H + j], gd = ad[2 * H + j], od = ad[3 * H + j];
        const LD_REAL si = i * (1 - i), sf = f * (1 - f), so = o * (1 - o), tg = 1 - g * g;
        const LD_REAL tc = TG_TANH(yc[j]), k = 1 - tc * tc, tcd = k * ycd[j];
        const LD_REAL dhv = dh[j] + zh[j], dhvd = dhd[j];
        const LD_REAL dcv = dc[j] + zc[j] + dhv * o * k;
        const LD_REAL dcvd = dcd[j] + (dhvd * o + dhv * od) * k - 2 * dhv * o * tc * tcd;
        a[j] = dcv * g * si;
        ad[j] = dcvd * g * si + dcv * gd * si + dcv * g * (1 - 2 * i) * id;
        a[H + j] = dcv * cp[j] * sf;
        ad[H + j] = dcvd * cp[j] * sf + dcv * cpd[j] * sf + dcv * cp[j] * (1 - 2 * f) * fd;
        a[2 * H + j] = dcv * i * tg;
        ad[2 * H + j] = dcvd * i * tg + dcv * id * tg - 2 * dcv * i * g * gd;
        a[3 * H + j] = dhv * tc * so;
        ad[3 * H + j] = dhvd * tc * so + dhv * tcd * so + dhv * tc * (1 - 2 * o) * od;
        dcd[j] = dcvd * f + dcv * fd;
        dc[j] = dcv * f;
    }
}

static void LD(lstm_dot)(const tg_call *c, const void *const *tin, const void *tout,
                         const void *gout, void *const *gin) {
    typedef LD_REAL real;
    const lstm_geom g = geom_of(c);
    const size_t N = g.n, T = g.T, H = g.H, G = g.G, NT = N * T;
    const tg_dtype dt = c->out->dtype;
    const real *P = c->in[0]->data, *W = c->in[1]->data, *Y = c->out->data;
    const real *h0 = g.state ? c->in[2]->data : NULL, *c0 = g.state ? c->in[3]->data : NULL;
    const real *Pd = tin[0], *Wd = tin[1], *h0d = g.state ? tin[2] : NULL;
    const real *c0d = g.state ? tin[3] : NULL, *Yd = tout, *Z = gout;
    real *A = (real *)((char *)c->saved + c->saved_bytes) - lstm_dot_elems(g);
    real *Ad = A + NT * G, *Hp = Ad + NT * G, *D = A, *Dd = Ad;
    real *Hpd = Hp + NT * H, *dh = Hpd + NT * H, *dc = dh + N * H, *dhd = dc + N * H;
    real *dcd = dhd + N * H, *zero = dcd + N * H;
    memset(zero, 0, H * sizeof(real));
    /* Hp, Hpd: h_{t−1} and ḣ_{t−1} of every position (h0, ḣ0 or zeros at t = 0) */
    for (size_t n = 0; n < N; n++)
        for (size_t t = 0; t < T; t++) {
            size_t r = n * T + t;
            const real *hp = t ? Y + (r - 1) * 2 * H : h0 ? h0 + n * H : zero;
            const real *hpd = t ? Yd + (r - 1) * 2 * H : h0d ? h0d + n * H : zero;
            memcpy(Hp + r * H, hp, H * sizeof(real));
            memcpy(Hpd + r * H, hpd, H * sizeof(real));
        }
    /* The gates again (A = P + Hp·Wᵀ, activated) and their tangents
     * Ġ = Ṗ + Hpd·Wᵀ + Hp·Ẇᵀ, then ȧ = act'(G)·Ġ: one product each over
     * all N·T positions, as the states are known. */
    memcpy(A, P, NT * G * sizeof(real));
    tg_gemm(dt, 0, 1, NT, G, H, Hp, H, W, H, 1.0, A, G);
    if (Pd)
        memcpy(Ad, Pd, NT * G * sizeof(real));
    else
        memset(Ad, 0, NT * G * sizeof(real));
    tg_gemm(dt, 0, 1, NT, G, H, Hpd, H, W, H, 1.0, Ad, G);
    if (Wd) tg_gemm(dt, 0, 1, NT, G, H, Hp, H, Wd, H, 1.0, Ad, G);
    for (size_t r = 0; r < NT; r++) { /* σ on i, f and o, tanh on g: branch-free loops */
        real *restrict x = A + r * G, *restrict xd = Ad + r * G;
        for (size_t e = 0; e < 2 * H; e++)
            x[e] = TG_SIGMOID(x[e]), xd[e] *= x[e] * (1 - x[e]);
        for (size_t e = 2 * H; e < 3 * H; e++)
            x[e] = TG_TANH(x[e]), xd[e] *= 1 - x[e] * x[e];
        for (size_t e = 3 * H; e < G; e++)
            x[e] = TG_SIGMOID(x[e]), xd[e] *= x[e] * (1 - x[e]);
    }
    /* back through time in dual numbers */
    memset(dh, 0, 4 * N * H * sizeof(real)); /* dh, dc, dhd, dcd */
    for (size_t t = T; t-- > 0;) {
        for (size_t n = 0; n < N; n++) {
            size_t r = n * T + t;
            const real *cp = t ? Y + (r - 1) * 2 * H + H : c0 ? c0 + n * H : zero;
            const real *cpd = t ? Yd + (r - 1) * 2 * H + H : c0d ? c0d + n * H : zero;
            LD(dot_row)
            (A + r * G, Ad + r * G, Y + r * 2 * H + H, Yd + r * 2 * H + H, cp, cpd, Z + r * 2 * H,
             Z + r * 2 * H + H, dh + n * H, dhd + n * H, dc + n * H, dcd + n * H, H);
        }
        /* dh = D_t·W and dhd = Ḋ_t·W + D_t·Ẇ reach h_{t−1} */
        if (t || (g.state && gin[2])) {
            tg_gemm(dt, 0, 0, N, H, G, D + t * G, T * G, W, H, 0.0, dh, H);
            tg_gemm(dt, 0, 0, N, H, G, Dd + t * G, T * G, W, H, 0.0, dhd, H);
            if (Wd) tg_gemm(dt, 0, 0, N, H, G, D + t * G, T * G, Wd, H, 1.0, dhd, H);
        }
    }
    real *gp = gin[0];
    for (size_t e = 0; gp && e < NT * G; e++)
        gp[e] += Dd[e];
    if (gin[1]) { /* W̄̇ += Ḋᵀ·Hp + Dᵀ·Hpd over all N·T positions */
        tg_gemm(dt, 1, 0, G, H, NT, Dd, G, Hp, H, 1.0, gin[1], H);
        tg_gemm(dt, 1, 0, G, H, NT, D, G, Hpd, H, 1.0, gin[1], H);
    }
    for (size_t e = 0; g.state && e < N * H; e++) {
        if (gin[2]) ((real *)gin[2])[e] += dhd[e];
        if (gin[3]) ((real *)gin[3])[e] += dcd[e];
    }
}

#undef LD
#undef LD_CAT
#undef LD_CAT_
