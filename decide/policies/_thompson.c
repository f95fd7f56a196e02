/* Thompson sampling's per-decision arithmetic, compiled.
 *
 * The Python and numpy code defines it. win_counts is the Monte Carlo tail
 * (antithetic_win_frequencies in decide/policies/distributions.py): noise = normals @
 * factor.T, draws = [means + noise; means - noise][:samples], then each draw's
 * first best eligible action. shared_probabilities is the whole of
 * LinearThompson.probabilities in shared mode after the normals are drawn
 * (decide/policies/linear.py, called through compiled_shared_thompson): the
 * projection of the candidates with the posterior, the k x k covariance and its
 * Cholesky factor, the win counts and the exploration floor.
 *
 * On ten actions each numpy call costs more than its arithmetic, and most
 * release the GIL, which under load hands it to another request thread every
 * time; between requests the rest of the server evicts numpy's code from the
 * caches, so each call costs several times its hot-loop figure. One call that
 * keeps the GIL does the same arithmetic. Sums run in a fixed order; BLAS and
 * LAPACK may round a term differently in its last bits, which could change a
 * count only where two sampled scores tie to within that rounding.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

static int view(PyObject *array, Py_buffer *buffer, const char *format, Py_ssize_t size, const char *what)
{
    if (PyObject_GetBuffer(array, buffer, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (strcmp(buffer->format, format) != 0 || buffer->len != size * buffer->itemsize) {
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous array of %zd values of format '%s'", what, size, format);
        PyBuffer_Release(buffer);
        return -1;
    }
    return 0;
}

/* Add to count how often each eligible action has the best of the samples antithetic draws; a lower
 * triangular factor skips the zeros above its diagonal (they would add nothing to the noise). */
static int count_wins(const double *mean, const double *c, int lower, const double *z, const char *ok, Py_ssize_t k,
                      Py_ssize_t samples, int64_t *count)
{
    Py_ssize_t pairs = (samples + 1) / 2;
    double *noise = PyMem_Malloc(k * sizeof(double));
    if (!noise) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < pairs; i++) {
        const double *row = z + i * k;
        for (Py_ssize_t j = 0; j < k; j++) {
            double sum = 0.0;
            for (Py_ssize_t l = 0, end = lower ? j + 1 : k; l < end; l++)
                sum += row[l] * c[j * k + l];
            noise[j] = sum;
        }
        for (int sign = 1; sign >= -1; sign -= 2) {
            if (sign < 0 && pairs + i >= samples)
                break; /* an odd sample count drops the last antithetic draw */
            Py_ssize_t best = -1;
            double top = 0.0;
            for (Py_ssize_t j = 0; j < k; j++) { /* selects, not branches: which draw is best is random */
                double draw = sign > 0 ? mean[j] + noise[j] : mean[j] - noise[j];
                int better = ok[j] && (best < 0 || draw > top);
                best = better ? j : best;
                top = better ? draw : top;
            }
            if (best >= 0)
                count[best]++;
        }
    }
    PyMem_Free(noise);
    return 0;
}

PyDoc_STRVAR(win_counts_doc,
"win_counts(means, factor, normals, eligible, samples, counts)\n--\n\n"
"Add to ``counts`` (int64, k) how often each eligible action has the best of the ``samples`` antithetic draws\n"
"means + normals[i] @ factor.T and means - normals[i] @ factor.T (float64 means (k), factor (k, k),\n"
"normals (m, k) with 2m >= samples; eligible: bool (k), at least one true).");

static PyObject *win_counts(PyObject *module, PyObject *args)
{
    PyObject *means_array, *factor_array, *normals_array, *eligible_array, *counts_array;
    Py_ssize_t samples;
    Py_buffer means = {0}, factor = {0}, normals = {0}, eligible = {0}, counts = {0};
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "OOOOnO:win_counts", &means_array, &factor_array, &normals_array, &eligible_array,
                          &samples, &counts_array))
        return NULL;
    if (PyObject_GetBuffer(means_array, &means, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    Py_ssize_t k = means.len / (Py_ssize_t)sizeof(double);
    if (strcmp(means.format, "d") != 0 || k < 1) {
        PyErr_SetString(PyExc_ValueError, "means must be a non-empty C-contiguous float64 array");
        goto done;
    }
    if (view(factor_array, &factor, "d", k * k, "factor") < 0
        || view(normals_array, &normals, "d", (samples + 1) / 2 * k, "normals") < 0
        || view(eligible_array, &eligible, "?", k, "eligible") < 0)
        goto done;
    if (PyObject_GetBuffer(counts_array, &counts, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    if (counts.len != k * (Py_ssize_t)sizeof(int64_t) || counts.itemsize != sizeof(int64_t)
        || (strcmp(counts.format, "l") != 0 && strcmp(counts.format, "q") != 0)) {
        PyErr_Format(PyExc_ValueError, "counts must be a writable C-contiguous int64 array of %zd values", k);
        goto done;
    }
    if (count_wins(means.buf, factor.buf, 0, normals.buf, eligible.buf, k, samples, counts.buf) == 0)
        result = Py_NewRef(Py_None);

done:
    PyBuffer_Release(&means);
    if (factor.obj) PyBuffer_Release(&factor);
    if (normals.obj) PyBuffer_Release(&normals);
    if (eligible.obj) PyBuffer_Release(&eligible);
    if (counts.obj) PyBuffer_Release(&counts);
    return result;
}

typedef float lanes __attribute__((vector_size(32))); /* 8 floats: one AVX2 register, two SSE ones */
#define BLOCK 8                                        /* lanes vectors summed in registers at once */

/* rows[i] = x[i] @ factor over the non-zero x[i][j] (listed in nonzero, ascending), in single precision
 * as the numpy definition's float32 product. The factor is lower triangular (ridge_posterior's), so a
 * term j adds nothing to columns beyond j: a block of columns starts at the first term that reaches
 * it, which halves the work and the factor read. Each element sums its terms in index order whatever
 * the vector width, so every instruction set below gives the same numbers; a block of 64 columns is
 * summed in registers, so each term costs a load, a multiply and an add. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static void project(const float *weights, const Py_ssize_t *nonzero, Py_ssize_t terms, const float *factor,
                    Py_ssize_t d, float *row)
{
    const Py_ssize_t width = BLOCK * (Py_ssize_t)(sizeof(lanes) / sizeof(float));
    Py_ssize_t start = 0, first = 0;
    for (; start + width <= d; start += width) {
        while (first < terms && nonzero[first] < start)
            first++;
        lanes sum[BLOCK] = {{0}};
        for (Py_ssize_t t = first; t < terms; t++) {
            const float *line = factor + nonzero[t] * d + start;
            for (int v = 0; v < BLOCK; v++) {
                lanes values;
                memcpy(&values, line + v * (Py_ssize_t)(sizeof(lanes) / sizeof(float)), sizeof(lanes));
                sum[v] += weights[t] * values;
            }
        }
        memcpy(row + start, sum, sizeof(sum));
    }
    for (Py_ssize_t c = start; c < d; c++) {
        while (first < terms && nonzero[first] < c)
            first++;
        float sum = 0.0f;
        for (Py_ssize_t t = first; t < terms; t++)
            sum += weights[t] * factor[nonzero[t] * d + c];
        row[c] = sum;
    }
}

typedef double pairs_of_lanes __attribute__((vector_size(32))); /* 4 doubles */

/* Σ a[c] b[c] as eight interleaved partial sums added up in a fixed order: the same number on every
 * instruction set, without a sequential sum's wait for each addition. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static double dot(const double *a, const double *b, Py_ssize_t n)
{
    pairs_of_lanes low = {0}, high = {0};
    Py_ssize_t c = 0;
    for (; c + 8 <= n; c += 8) {
        pairs_of_lanes a_low, a_high, b_low, b_high;
        memcpy(&a_low, a + c, sizeof(a_low));
        memcpy(&a_high, a + c + 4, sizeof(a_high));
        memcpy(&b_low, b + c, sizeof(b_low));
        memcpy(&b_high, b + c + 4, sizeof(b_high));
        low += a_low * b_low;
        high += a_high * b_high;
    }
    double sum = ((low[0] + low[1]) + (low[2] + low[3])) + ((high[0] + high[1]) + (high[2] + high[3]));
    for (; c < n; c++)
        sum += a[c] * b[c];
    return sum;
}

/* The lower Cholesky factor of the k x k matrix in place (the upper triangle set to zero);
 * -1 where a pivot is at most singular_pivot of its diagonal entry (covariance_factor's test). */
static int cholesky(double *a, Py_ssize_t k, double singular_pivot)
{
    for (Py_ssize_t j = 0; j < k; j++) {
        double pivot = a[j * k + j];
        for (Py_ssize_t l = 0; l < j; l++)
            pivot -= a[j * k + l] * a[j * k + l];
        if (!(pivot > singular_pivot * a[j * k + j]) || !(pivot > 0.0))
            return -1;
        double root = sqrt(pivot);
        a[j * k + j] = root;
        for (Py_ssize_t i = j + 1; i < k; i++) {
            double sum = a[i * k + j];
            for (Py_ssize_t l = 0; l < j; l++)
                sum -= a[i * k + l] * a[j * k + l];
            a[i * k + j] = sum / root;
        }
        for (Py_ssize_t i = 0; i < j; i++)
            a[i * k + j] = 0.0;
    }
    return 0;
}

PyDoc_STRVAR(shared_probabilities_doc,
"shared_probabilities(features, theta, chol, normals, eligible, samples, scale, floor, singular_pivot, out) -> bool\n--\n\n"
"LinearThompson's shared-mode probabilities into ``out`` (float64, k): features float64 (k, d), theta float64 (d),\n"
"chol float32 (d, d), normals float64 (m, k) with 2m >= samples, eligible bool (k) with at least one true.\n"
"False, with ``out`` unspecified, where the numpy definition must decide: non-finite scores, or a covariance\n"
"with a Cholesky pivot at most ``singular_pivot`` of its diagonal entry.");

static PyObject *shared_probabilities(PyObject *module, PyObject *args)
{
    PyObject *features_array, *theta_array, *chol_array, *normals_array, *eligible_array, *out_array;
    Py_ssize_t samples;
    double scale, floor_share, singular_pivot;
    Py_buffer features = {0}, theta = {0}, chol = {0}, normals = {0}, eligible = {0}, out = {0};
    PyObject *result = NULL;
    float *rows = NULL;
    double *workspace = NULL;

    if (!PyArg_ParseTuple(args, "OOOOOndddO:shared_probabilities", &features_array, &theta_array, &chol_array,
                          &normals_array, &eligible_array, &samples, &scale, &floor_share, &singular_pivot, &out_array))
        return NULL;
    if (PyObject_GetBuffer(theta_array, &theta, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(eligible_array, &eligible, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    Py_ssize_t d = theta.len / (Py_ssize_t)sizeof(double), k = eligible.len;
    if (strcmp(theta.format, "d") != 0 || d < 1 || strcmp(eligible.format, "?") != 0 || k < 1 || samples < 1) {
        PyErr_SetString(PyExc_ValueError, "theta must be non-empty float64, eligible non-empty bool, samples positive");
        goto done;
    }
    if (view(features_array, &features, "d", k * d, "features") < 0 || view(chol_array, &chol, "f", d * d, "chol") < 0
        || view(normals_array, &normals, "d", (samples + 1) / 2 * k, "normals") < 0)
        goto done;
    if (PyObject_GetBuffer(out_array, &out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    if (strcmp(out.format, "d") != 0 || out.len != k * (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_ValueError, "out must be a writable C-contiguous float64 array of %zd values", k);
        goto done;
    }

    const double *x = features.buf, *mean_weights = theta.buf;
    const char *ok = eligible.buf;
    double *probability = out.buf;
    rows = PyMem_Malloc((k + 1) * d * sizeof(float));
    workspace = PyMem_Malloc((k + k * k + k * d) * sizeof(double) + k * sizeof(int64_t) + d * sizeof(Py_ssize_t));
    if (!rows || !workspace) {
        PyErr_NoMemory();
        goto done;
    }
    double *means = workspace, *factor = workspace + k, *wide_rows = factor + k * k;
    int64_t *count = (int64_t *)(wide_rows + k * d);
    float *term_weights = rows + k * d;
    Py_ssize_t *term_columns = (Py_ssize_t *)(count + k);

    Py_ssize_t eligible_count = 0;
    for (Py_ssize_t i = 0; i < k; i++)
        eligible_count += ok[i] != 0;
    if (eligible_count == 0) {
        PyErr_SetString(PyExc_ValueError, "no eligible action");
        goto done;
    }
    int finite = 1;
    for (Py_ssize_t i = 0; i < k; i++) {
        means[i] = dot(x + i * d, mean_weights, d);
        finite &= isfinite(means[i]) != 0;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_ssize_t terms = 0;
        /* A zero adds exactly nothing to a finite factor's products, so only non-zero terms are listed. Each
         * column is written and kept only if non-zero: a branch on it would be mispredicted about half the
         * time (a hashed vector is half zeros, scattered), which cost a quarter of this kernel's time. */
        for (Py_ssize_t j = 0; j < d; j++) {
            float weight = (float)x[i * d + j];
            term_weights[terms] = weight;
            term_columns[terms] = j;
            terms += weight != 0.0f;
        }
        project(term_weights, term_columns, terms, chol.buf, d, rows + i * d);
    }
    for (Py_ssize_t c = 0; c < k * d; c++) {
        finite &= isfinite(rows[c]) != 0;
        wide_rows[c] = rows[c];
    }
    if (!finite) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    double variance = scale * scale;
    for (Py_ssize_t a = 0; a < k; a++)
        for (Py_ssize_t b = 0; b <= a; b++)
            factor[a * k + b] = factor[b * k + a] = variance * dot(wide_rows + a * d, wide_rows + b * d, d);
    if (cholesky(factor, k, singular_pivot) < 0) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    memset(count, 0, k * sizeof(int64_t));
    if (count_wins(means, factor, 1, normals.buf, ok, k, samples, count) < 0)
        goto done;
    double total = 0.0, share = floor_share * (1.0 / (double)eligible_count);
    for (Py_ssize_t i = 0; i < k; i++) {
        probability[i] = ok[i] ? (1.0 - floor_share) * ((double)count[i] / (double)samples) + share : 0.0;
        total += probability[i];
    }
    for (Py_ssize_t i = 0; i < k; i++)
        probability[i] /= total;
    result = Py_NewRef(Py_True);

done:
    PyMem_Free(rows);
    PyMem_Free(workspace);
    PyBuffer_Release(&theta);
    if (eligible.obj) PyBuffer_Release(&eligible);
    if (features.obj) PyBuffer_Release(&features);
    if (chol.obj) PyBuffer_Release(&chol);
    if (normals.obj) PyBuffer_Release(&normals);
    if (out.obj) PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"win_counts", win_counts, METH_VARARGS, win_counts_doc},
    {"shared_probabilities", shared_probabilities, METH_VARARGS, shared_probabilities_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "decide.policies._thompson",
    .m_doc = "Thompson sampling's per-decision arithmetic, compiled (see the C source's header).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__thompson(void)
{
    return PyModule_Create(&module);
}
