/* The Monte Carlo tail of Thompson sampling, compiled: antithetic draws to win counts.
 *
 * decide/policies/state.py (antithetic_win_frequencies) defines it with numpy:
 * noise = normals @ factor.T, draws = [means + noise; means - noise][:samples],
 * then each draw's first best eligible action. On ten actions each of those numpy
 * calls costs more than its arithmetic, and most release the GIL, which under
 * load hands it to another request thread every time. This does the same
 * arithmetic in one call that keeps the GIL. The sums run in index order; BLAS
 * may round a noise term differently in its last bit, which could change a
 * count only where two sampled scores tie to the last bit.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
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
    Py_ssize_t pairs = (samples + 1) / 2;
    if (strcmp(means.format, "d") != 0 || k < 1) {
        PyErr_SetString(PyExc_ValueError, "means must be a non-empty C-contiguous float64 array");
        goto done;
    }
    if (view(factor_array, &factor, "d", k * k, "factor") < 0 || view(normals_array, &normals, "d", pairs * k, "normals") < 0
        || view(eligible_array, &eligible, "?", k, "eligible") < 0)
        goto done;
    if (PyObject_GetBuffer(counts_array, &counts, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    if (counts.len != k * (Py_ssize_t)sizeof(int64_t) || counts.itemsize != sizeof(int64_t)
        || (strcmp(counts.format, "l") != 0 && strcmp(counts.format, "q") != 0)) {
        PyErr_Format(PyExc_ValueError, "counts must be a writable C-contiguous int64 array of %zd values", k);
        goto done;
    }

    const double *mean = means.buf, *c = factor.buf, *z = normals.buf;
    const char *ok = eligible.buf;
    int64_t *count = counts.buf;
    double *noise = PyMem_Malloc(k * sizeof(double));
    if (!noise) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < pairs; i++) {
        const double *row = z + i * k;
        for (Py_ssize_t j = 0; j < k; j++) {
            double sum = 0.0;
            for (Py_ssize_t l = 0; l < k; l++)
                sum += row[l] * c[j * k + l];
            noise[j] = sum;
        }
        for (int sign = 1; sign >= -1; sign -= 2) {
            if (sign < 0 && pairs + i >= samples)
                break; /* an odd sample count drops the last antithetic draw */
            Py_ssize_t best = -1;
            double top = 0.0;
            for (Py_ssize_t j = 0; j < k; j++) {
                double draw = sign > 0 ? mean[j] + noise[j] : mean[j] - noise[j];
                if (ok[j] && (best < 0 || draw > top)) {
                    best = j;
                    top = draw;
                }
            }
            if (best >= 0)
                count[best]++;
        }
    }
    PyMem_Free(noise);
    result = Py_NewRef(Py_None);

done:
    PyBuffer_Release(&means);
    if (factor.obj) PyBuffer_Release(&factor);
    if (normals.obj) PyBuffer_Release(&normals);
    if (eligible.obj) PyBuffer_Release(&eligible);
    if (counts.obj) PyBuffer_Release(&counts);
    return result;
}

static PyMethodDef methods[] = {
    {"win_counts", win_counts, METH_VARARGS, win_counts_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "decide.policies._thompson",
    .m_doc = "Compiled Monte Carlo tail of Thompson sampling (see the C source's header).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__thompson(void)
{
    return PyModule_Create(&module);
}
