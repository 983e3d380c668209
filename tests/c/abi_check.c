/*
 * Deliberate misuse of the C API (tests/c_abi.rs runs this, plain and under AddressSanitizer):
 * every bad call must return its status code, set a message and leave the learner usable. Also
 * prints the struct layouts for the test to compare with the Rust side.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "edge_ssl.h"

static int failures = 0;

/* Expects `status == want`, prints the status and the last error message. */
static void expect(const char *what, int status, int want) {
    char msg[256];
    size_t n = edge_ssl_last_error(msg, sizeof msg);
    int ok = status == want && (want == EDGE_SSL_OK ? n == 0 : n > 0);
    printf("%s %s -> %s: %s\n", ok ? "ok" : "FAIL", what, edge_ssl_status_name(status), msg);
    failures += !ok;
}

#define LAYOUT(T, f) printf("layout %s.%s %zu %zu\n", #T, #f, offsetof(T, f), sizeof(T))

int main(void) {
    LAYOUT(EdgeSslConfig, abi_version); LAYOUT(EdgeSslConfig, input);
    LAYOUT(EdgeSslConfig, model_path); LAYOUT(EdgeSslConfig, image_size);
    LAYOUT(EdgeSslConfig, sensor_steps); LAYOUT(EdgeSslConfig, sensor_channels);
    LAYOUT(EdgeSslConfig, dim); LAYOUT(EdgeSslConfig, n_classes);
    LAYOUT(EdgeSslConfig, algorithm); LAYOUT(EdgeSslConfig, hidden);
    LAYOUT(EdgeSslConfig, bank_capacity); LAYOUT(EdgeSslConfig, gate);
    LAYOUT(EdgeSslConfig, gate_warmup); LAYOUT(EdgeSslConfig, steps_per_sample);
    LAYOUT(EdgeSslConfig, seed); LAYOUT(EdgeSslConfig, checkpoint_path);
    LAYOUT(EdgeSslConfig, checkpoint_every); LAYOUT(EdgeSslConfig, engine);
    LAYOUT(EdgeSslConfig, threads); LAYOUT(EdgeSslConfig, engine_library);
    LAYOUT(EdgeSslConfig, rows); LAYOUT(EdgeSslConfig, graph_vote);
    LAYOUT(EdgeSslPrediction, label); LAYOUT(EdgeSslPrediction, confidence);
    LAYOUT(EdgeSslPrediction, ood_score); LAYOUT(EdgeSslPrediction, has_ood_score);
    LAYOUT(EdgeSslPrediction, gated);
    LAYOUT(EdgeSslOutcome, kind); LAYOUT(EdgeSslOutcome, label);
    LAYOUT(EdgeSslInfo, input); LAYOUT(EdgeSslInfo, gate_fitted); LAYOUT(EdgeSslInfo, dim);
    LAYOUT(EdgeSslInfo, n_classes); LAYOUT(EdgeSslInfo, sample_len);
    LAYOUT(EdgeSslInfo, labeled); LAYOUT(EdgeSslInfo, unlabeled); LAYOUT(EdgeSslInfo, admitted);
    LAYOUT(EdgeSslInfo, gated); LAYOUT(EdgeSslInfo, deferred); LAYOUT(EdgeSslInfo, steps);

    EdgeSslConfig c;
    EdgeSslLearner *h = NULL;
    expect("config_default(out = NULL)", edge_ssl_config_default(4, 3, NULL), EDGE_SSL_ERR_NULL);
    expect("config_default", edge_ssl_config_default(4, 3, &c), EDGE_SSL_OK);
    c.gate = 0;
    c.bank_capacity = 64;
    expect("learner_new(config = NULL)", edge_ssl_learner_new(NULL, &h), EDGE_SSL_ERR_NULL);
    c.n_classes = 1;
    expect("learner_new(n_classes = 1)", edge_ssl_learner_new(&c, &h), EDGE_SSL_ERR_INVALID_ARG);
    c.n_classes = 3;
    c.algorithm = "no-such-algorithm";
    expect("learner_new(bad algorithm)", edge_ssl_learner_new(&c, &h), EDGE_SSL_ERR_INVALID_ARG);
    c.algorithm = "fixmatch";
    c.abi_version = 999;
    expect("learner_new(abi_version 999)", edge_ssl_learner_new(&c, &h), EDGE_SSL_ERR_INVALID_ARG);
    c.abi_version = EDGE_SSL_ABI_VERSION;
    expect("learner_from_file(missing)", edge_ssl_learner_from_file("/nonexistent.toml", &h),
           EDGE_SSL_ERR_IO);
    if (h != NULL) failures++, puts("FAIL handle written on failure");
    expect("learner_new", edge_ssl_learner_new(&c, &h), EDGE_SSL_OK);

    float x[4] = {1, 0, 0, 0.1f};
    size_t shape[1] = {4}, shape2[2] = {2, 2}, batch1[2] = {1, 4};
    EdgeSslPrediction p;
    EdgeSslOutcome o;
    expect("observe_labeled(learner = NULL)",
           edge_ssl_observe_labeled(NULL, x, 4, shape, 1, 0), EDGE_SSL_ERR_NULL);
    expect("observe_labeled(x = NULL)",
           edge_ssl_observe_labeled(h, NULL, 4, shape, 1, 0), EDGE_SSL_ERR_NULL);
    expect("observe_labeled(shape = NULL)",
           edge_ssl_observe_labeled(h, x, 4, NULL, 1, 0), EDGE_SSL_ERR_NULL);
    expect("observe_labeled(short buffer)",
           edge_ssl_observe_labeled(h, x, 3, shape, 1, 0), EDGE_SSL_ERR_SHAPE);
    expect("observe_labeled(shape [2, 2])",
           edge_ssl_observe_labeled(h, x, 4, shape2, 2, 0), EDGE_SSL_ERR_SHAPE);
    expect("observe_labeled(ndim 0)",
           edge_ssl_observe_labeled(h, x, 4, shape, 0, 0), EDGE_SSL_ERR_SHAPE);
    expect("observe_labeled(label 3 of 3)",
           edge_ssl_observe_labeled(h, x, 4, shape, 1, 3), EDGE_SSL_ERR_INVALID_ARG);
    x[2] = NAN;
    expect("observe_labeled(NaN)", edge_ssl_observe_labeled(h, x, 4, shape, 1, 0),
           EDGE_SSL_ERR_NON_FINITE);
    expect("observe(NaN)", edge_ssl_observe(h, x, 4, shape, 1, &o), EDGE_SSL_ERR_NON_FINITE);
    expect("predict(NaN)", edge_ssl_predict(h, x, 4, shape, 1, &p), EDGE_SSL_ERR_NON_FINITE);
    x[2] = 0;
    expect("predict(out = NULL)", edge_ssl_predict(h, x, 4, shape, 1, NULL), EDGE_SSL_ERR_NULL);
    unsigned char img[12] = {0};
    size_t ishape[3] = {2, 2, 3};
    expect("observe_image(on an embedding learner)",
           edge_ssl_observe_image(h, img, 12, ishape, 3, &o), EDGE_SSL_ERR_SHAPE);
    expect("checkpoint(path = NULL)", edge_ssl_checkpoint(h, NULL), EDGE_SSL_ERR_NULL);
    expect("checkpoint(unwritable)", edge_ssl_checkpoint(h, "/nonexistent/dir/s.state"),
           EDGE_SSL_ERR_IO);
    expect("resume(not a state file)", edge_ssl_learner_resume(&c, "/etc/hostname", &h),
           EDGE_SSL_ERR_STATE);

    /* Still usable after all that. */
    float a[4] = {1, 0, 0, 0.1f}, b[4] = {0, 1, 0, 0.1f}, d[4] = {0, 0, 1, 0.1f};
    expect("observe_labeled(class 0)", edge_ssl_observe_labeled(h, a, 4, shape, 1, 0), EDGE_SSL_OK);
    expect("observe_labeled(class 1)", edge_ssl_observe_labeled(h, b, 4, batch1, 2, 1), EDGE_SSL_OK);
    expect("observe_labeled(class 2)", edge_ssl_observe_labeled(h, d, 4, shape, 1, 2), EDGE_SSL_OK);
    for (int i = 0; i < 100; i++) edge_ssl_observe(h, a, 4, shape, 1, NULL);
    expect("predict", edge_ssl_predict(h, a, 4, shape, 1, &p), EDGE_SSL_OK);
    if (p.label != 0) failures++, printf("FAIL predicted %u, want 0\n", p.label);
    EdgeSslInfo info;
    expect("info", edge_ssl_info(h, &info), EDGE_SSL_OK);
    if (info.labeled != 3 || info.unlabeled != 100) failures++, puts("FAIL counts");

    char tiny[6];
    edge_ssl_observe_labeled(h, NULL, 4, shape, 1, 0);
    size_t n = edge_ssl_last_error(tiny, sizeof tiny);
    printf("%s truncated message: \"%s\" of %zu bytes\n",
           strlen(tiny) == 5 && n > 5 ? "ok" : "FAIL", tiny, n);
    failures += !(strlen(tiny) == 5 && n > 5);

    edge_ssl_learner_free(h);
    edge_ssl_learner_free(NULL);
    printf("abi_check: %d failure(s)\n", failures);
    return failures != 0;
}
