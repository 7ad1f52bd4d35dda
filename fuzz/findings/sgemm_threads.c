/* Finding (tests/test_determinism.c): OpenBLAS 0.3.21 (Debian 12,
 * DYNAMIC_ARCH, Haswell kernels) gives bitwise-identical results for a
 * given thread count, but its float32 sgemm gives DIFFERENT results on 1
 * and on 2 threads (10–25 % of the output elements differ in the last bits)
 * for the shapes of an MLP layer; dgemm agrees across thread counts. So
 * float32 training is reproducible for a fixed --threads, not across
 * thread counts; float64 is reproducible across both.
 *
 * Build: cc sgemm_threads.c -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas
 * Output here:
 *   256x64 . 64x128: sgemm 1 vs 2 threads: 3781 of 32768 differ; dgemm: 0
 *   256x128 . 128x64: sgemm 1 vs 2 threads: 3385 of 16384 differ; dgemm: 0
 *   256x64 . 64x10: sgemm 1 vs 2 threads: 0 of 2560 differ; dgemm: 0   (one thread used)
 *   64x256 . 256x128: sgemm 1 vs 2 threads: 1876 of 8192 differ; dgemm: 0
 *   128x256 . 256x64: sgemm 1 vs 2 threads: 2094 of 8192 differ; dgemm: 0 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void run(int th, int m, int n, int k, float *a, float *b, float *c, double *ad, double *bd, double *cd) {
    openblas_set_num_threads(th);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, ad, k, bd, n, 0, cd, n);
}
int main(void) {
    int shapes[][3] = {{256,128,64},{256,64,128},{256,10,64},{64,128,256},{128,64,256}};
    printf("%s\n", openblas_get_config());
    for (int s = 0; s < 5; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = malloc(4*m*k), *b = malloc(4*k*n), *c1 = malloc(4*m*n), *c2 = malloc(4*m*n);
        double *ad = malloc(8*m*k), *bd = malloc(8*k*n), *d1 = malloc(8*m*n), *d2 = malloc(8*m*n);
        srand(1);
        for (int i = 0; i < m*k; i++) ad[i] = a[i] = rand() / (float)RAND_MAX - 0.5f;
        for (int i = 0; i < k*n; i++) bd[i] = b[i] = rand() / (float)RAND_MAX - 0.5f;
        run(1, m, n, k, a, b, c1, ad, bd, d1);
        run(2, m, n, k, a, b, c2, ad, bd, d2);
        int df = 0, dd = 0;
        for (int i = 0; i < m*n; i++) { df += memcmp(&c1[i], &c2[i], 4) != 0; dd += memcmp(&d1[i], &d2[i], 8) != 0; }
        printf("%dx%d . %dx%d: sgemm 1 vs 2 threads: %d of %d differ; dgemm: %d\n", m, k, k, n, df, m*n, dd);
    }
    return 0;
}
