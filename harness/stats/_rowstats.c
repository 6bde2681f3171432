/* The per-row statistics kernel: one row of logits -> its maximum, its block maxima, logits - max,
 * and the three sums over the vocabulary that entropy and varentropy need (in double).
 *
 *   row(logits, z_out, block_max_out) -> (max, sum e, sum e*z, sum e*z*z),  e = exp(z), z = x - max
 *   top(z, block_max, k) -> the k largest entries' indices, searching only the blocks that can hold them
 *
 * Two passes over the row instead of numpy's nine. Every operation is plain IEEE single or double
 * arithmetic in a fixed order: 16 independent lanes, each summed in sequence, then the lanes in
 * index order. No fast-math and no contraction into fused multiply-adds (setup.py compiles with
 * -ffp-contract=off), so the vector width the compiler picks does not change any result: a row
 * gives the same numbers whatever CPU runs this and whatever rows are computed beside it.
 *
 * exp is the classic single-precision range reduction (z = n ln2 + r, |r| <= ln2/2, ln2 in two
 * parts) with a degree-6 polynomial, about 1 ulp; z below -87.33 (exp under FLT_MIN), -inf
 * included, counts as 0 in every sum. Elements that are NaN give NaN sums; the maximum ignores them.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define LANES 16
#define BLOCK 128 /* elements per block maximum (harness.stats.entropy.BLOCK) */
#define TOP_MAX 64 /* most entries top() returns */

typedef float f16 __attribute__((vector_size(64)));
typedef int i16 __attribute__((vector_size(64)));
typedef float f8 __attribute__((vector_size(32)));
typedef double d8 __attribute__((vector_size(64)));

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(HARNESS_ONE_VARIANT)
/* one copy per vector width, chosen when the module loads; every copy computes the same bits */
#define VARIANTS __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define VARIANTS
#endif

static inline f16 splat(float v) { return (f16){v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v}; }

static inline f16 select16(i16 mask, f16 yes, f16 no)
{
    return (f16)(((i16)yes & mask) | ((i16)no & ~mask));
}

/* exp(z) for z <= 0, 16 at a time; below EXP_LOW the result is 0, NaN stays NaN */
#define EXP_LOW -87.33654f
static inline f16 exp16(f16 z)
{
    i16 keep = z >= splat(EXP_LOW);
    f16 x = select16(keep, z, splat(EXP_LOW));
    f16 n = (x * splat(1.44269504088896341f) + splat(12582912.0f)) - splat(12582912.0f);
    f16 r = x - n * splat(0.693359375f);
    r = r - n * splat(-2.12194440e-4f);
    f16 p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    p = p * (r * r) + r + splat(1.0f);
    i16 bits = (__builtin_convertvector(n, i16) + 127) << 23; /* 2^n, n in [-126, 0] */
    f16 e = p * (f16)bits;
    e = (f16)((i16)e & keep);
    return select16(z != z, z, e);
}

static inline float exp1(float z)
{
    f16 v = splat(z);
    return exp16(v)[0];
}

static inline float max_of(float a, float b) { return a > b ? a : b; }

static inline f16 max16(f16 a, f16 b) { return select16(a > b, a, b); }

static inline f16 load16(const float *p)
{
    f16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

VARIANTS static float block_maxima(const float *restrict x, Py_ssize_t n, float *restrict bmax)
{
    Py_ssize_t full = n / BLOCK;
    float best = -INFINITY;
    for (Py_ssize_t b = 0; b < full; b++) {
        const float *p = x + b * BLOCK;
        f16 l = load16(p);
        for (int i = LANES; i < BLOCK; i += LANES) l = max16(load16(p + i), l);
        float m = l[0];
        for (int j = 1; j < LANES; j++) m = max_of(l[j], m);
        bmax[b] = m;
        best = max_of(m, best);
    }
    if (full * BLOCK < n) {
        float m = -INFINITY;
        for (Py_ssize_t i = full * BLOCK; i < n; i++) m = max_of(x[i], m);
        bmax[full] = m;
        best = max_of(m, best);
    }
    return best;
}

static inline void add_wide(d8 acc[2], f16 v)
{
    f8 lo = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
    f8 hi = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    acc[0] += __builtin_convertvector(lo, d8);
    acc[1] += __builtin_convertvector(hi, d8);
}

/* Sums of e, e*z and e*z*z: each of 16 lanes adds 8 float terms per block of 128 in single
 * precision; the block's 16 partial sums go into 16 double accumulators; the tail after the last
 * full block adds its terms to lane (i mod 16) in double; the lanes are added in order. */
VARIANTS static void moments(const float *restrict x, Py_ssize_t n, float m, float *restrict z,
                             double out[3])
{
    d8 a0[2] = {{0}}, a1[2] = {{0}}, a2[2] = {{0}};
    f16 mv = splat(m);
    Py_ssize_t full = n / BLOCK;
    for (Py_ssize_t b = 0; b < full; b++) {
        const float *p = x + b * BLOCK;
        float *q = z + b * BLOCK;
        f16 s0 = splat(0.0f), s1 = splat(0.0f), s2 = splat(0.0f);
        for (int i = 0; i < BLOCK; i += LANES) {
            f16 zz = load16(p + i) - mv;
            memcpy(q + i, &zz, sizeof zz);
            f16 e = exp16(zz);
            f16 zc = select16(zz >= splat(EXP_LOW), zz, splat(EXP_LOW)); /* -inf: e = 0, e z = 0 */
            f16 ez = e * zc;
            s0 += e;
            s1 += ez;
            s2 += ez * zc;
        }
        add_wide(a0, s0);
        add_wide(a1, s1);
        add_wide(a2, s2);
    }
    double lane0[LANES], lane1[LANES], lane2[LANES];
    memcpy(lane0, a0, sizeof lane0);
    memcpy(lane1, a1, sizeof lane1);
    memcpy(lane2, a2, sizeof lane2);
    for (Py_ssize_t i = full * BLOCK; i < n; i++) {
        int j = (int)(i % LANES);
        float zz = x[i] - m;
        z[i] = zz;
        float e = exp1(zz);
        float zc = zz >= EXP_LOW ? zz : EXP_LOW;
        float ez = e * zc;
        lane0[j] += (double)e;
        lane1[j] += (double)ez;
        lane2[j] += (double)(ez * zc);
    }
    out[0] = out[1] = out[2] = 0.0;
    for (int j = 0; j < LANES; j++) {
        out[0] += lane0[j];
        out[1] += lane1[j];
        out[2] += lane2[j];
    }
}

static int float_buffer(PyObject *obj, Py_buffer *view, int writable, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->itemsize != 4 || view->format == NULL || strcmp(view->format, "f") != 0) {
        PyErr_Format(PyExc_TypeError, "%s: a contiguous float32 buffer is needed", what);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *row(PyObject *self, PyObject *args)
{
    PyObject *xo, *zo, *bo;
    if (!PyArg_ParseTuple(args, "OOO:row", &xo, &zo, &bo)) return NULL;
    Py_buffer x, z, b;
    if (float_buffer(xo, &x, 0, "logits") < 0) return NULL;
    if (float_buffer(zo, &z, 1, "z") < 0) { PyBuffer_Release(&x); return NULL; }
    if (float_buffer(bo, &b, 1, "block_max") < 0) { PyBuffer_Release(&x); PyBuffer_Release(&z); return NULL; }
    Py_ssize_t n = x.len / 4;
    PyObject *result = NULL;
    if (n < 1 || z.len / 4 < n || b.len / 4 < (n + BLOCK - 1) / BLOCK) {
        PyErr_SetString(PyExc_ValueError, "row: z must hold the row and block_max one value per block");
    } else {
        float m;
        double s[3];
        Py_BEGIN_ALLOW_THREADS
        m = block_maxima((const float *)x.buf, n, (float *)b.buf);
        moments((const float *)x.buf, n, m, (float *)z.buf, s);
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("(dddd)", (double)m, s[0], s[1], s[2]);
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&z);
    PyBuffer_Release(&b);
    return result;
}

/* Insert (v, i) into the k-long list (vals, ids) sorted by value, largest first; an entry equal to
 * one already there goes after it (rows are scanned in index order: ties keep the lowest index). */
static int insert_top(float *vals, Py_ssize_t *ids, int count, int k, float v, Py_ssize_t i)
{
    if (count == k && !(v > vals[k - 1])) return count;
    int pos = count < k ? count : k - 1;
    while (pos > 0 && v > vals[pos - 1]) {
        vals[pos] = vals[pos - 1];
        if (ids) ids[pos] = ids[pos - 1];
        pos--;
    }
    vals[pos] = v;
    if (ids) ids[pos] = i;
    return count < k ? count + 1 : count;
}

/* The k largest entries of z, searching only the blocks whose maximum reaches the k-th largest
 * block maximum: an entry elsewhere is below k block maxima, so it is not among the k largest. */
static int top_entries(const float *z, Py_ssize_t n, const float *bmax, int k, Py_ssize_t *out)
{
    Py_ssize_t nb = (n + BLOCK - 1) / BLOCK;
    float kth[TOP_MAX], vals[TOP_MAX];
    int count = 0;
    for (Py_ssize_t b = 0; b < nb; b++) count = insert_top(kth, NULL, count, k, bmax[b], b);
    float threshold = kth[count - 1];
    int found = 0;
    for (Py_ssize_t b = 0; b < nb; b++) {
        if (!(bmax[b] >= threshold)) continue;
        Py_ssize_t stop = (b + 1) * BLOCK < n ? (b + 1) * BLOCK : n;
        for (Py_ssize_t i = b * BLOCK; i < stop; i++) found = insert_top(vals, out, found, k, z[i], i);
    }
    return found;
}

static PyObject *top(PyObject *self, PyObject *args)
{
    PyObject *zo, *bo;
    int k;
    if (!PyArg_ParseTuple(args, "OOi:top", &zo, &bo, &k)) return NULL;
    Py_buffer z, b;
    if (float_buffer(zo, &z, 0, "z") < 0) return NULL;
    if (float_buffer(bo, &b, 0, "block_max") < 0) { PyBuffer_Release(&z); return NULL; }
    Py_ssize_t n = z.len / 4, out[TOP_MAX];
    PyObject *result = NULL;
    if (k < 1 || k > TOP_MAX || k > n || b.len / 4 < (n + BLOCK - 1) / BLOCK) {
        PyErr_Format(PyExc_ValueError, "top: k must be 1..%d and at most the row's length, and "
                     "block_max one value per block", TOP_MAX);
    } else {
        int found;
        Py_BEGIN_ALLOW_THREADS
        found = top_entries((const float *)z.buf, n, (const float *)b.buf, k, out);
        Py_END_ALLOW_THREADS
        result = PyList_New(found);
        for (int i = 0; result != NULL && i < found; i++) {
            PyObject *v = PyLong_FromSsize_t(out[i]);
            if (v == NULL) { Py_CLEAR(result); break; }
            PyList_SET_ITEM(result, i, v);
        }
    }
    PyBuffer_Release(&z);
    PyBuffer_Release(&b);
    return result;
}

static PyMethodDef methods[] = {
    {"row", row, METH_VARARGS,
     "row(logits, z, block_max) -> (max, sum e, sum e*z, sum e*z*z): e = exp(z), z = logits - max "
     "(written to z); block_max[b] = max of logits[128b:128b+128]"},
    {"top", top, METH_VARARGS,
     "top(z, block_max, k) -> the indices of the k largest entries of z, largest first, ties by "
     "lowest index (k <= TOP_MAX; block_max as row() leaves it)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rowstats", NULL, -1, methods};

PyMODINIT_FUNC PyInit__rowstats(void)
{
    PyObject *mod = PyModule_Create(&module);
    if (mod != NULL && (PyModule_AddIntConstant(mod, "BLOCK", BLOCK) < 0
                        || PyModule_AddIntConstant(mod, "TOP_MAX", TOP_MAX) < 0)) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
