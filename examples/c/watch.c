/*
 * A smartwatch learns shoulder exercises through the edge-ssl C API: 5 labelled windows per
 * exercise (one from each of 5 users), then the unlabeled stream of those users' other windows,
 * then predictions on 5 other users. Shipped model and data (data/watch, see data/README.md).
 *
 *   cc -O2 -Iinclude examples/c/watch.c target/release/libedge_ssl.a \
 *      -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -Wl,-z,noexecstack -o watch
 *   ./watch examples/c/watch.toml data/watch /tmp/watch.state
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_ssl.h"

#define CHECK(call)                                                                     \
    do {                                                                                \
        int s_ = (call);                                                                \
        if (s_ != EDGE_SSL_OK) {                                                        \
            char m_[512];                                                               \
            edge_ssl_last_error(m_, sizeof m_);                                         \
            fprintf(stderr, "%s failed: %s: %s\n", #call, edge_ssl_status_name(s_), m_); \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

static void die(const char *path, const char *what) {
    fprintf(stderr, "%s: %s\n", path, what);
    exit(1);
}

/* Reads a little-endian, C-order .npy array of `descr` ("<f4", "<i8") into malloc'd memory;
 * shape[0..3] gets its dims (missing ones are 1). */
static void *read_npy(const char *dir, const char *name, const char *descr, size_t shape[3]) {
    char path[1024], header[512], want[32];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    unsigned char pre[10];
    if (!f || fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY\x01", 7) != 0)
        die(path, "not an .npy version 1 file");
    size_t hlen = pre[8] | (size_t)pre[9] << 8;
    if (hlen >= sizeof header || fread(header, 1, hlen, f) != hlen) die(path, "bad header");
    header[hlen] = 0;
    snprintf(want, sizeof want, "'descr': '%s'", descr);
    const char *s = strstr(header, "'shape': (");
    if (!strstr(header, want) || !strstr(header, "'fortran_order': False") || !s)
        die(path, "unexpected dtype or order");
    s += strlen("'shape': (");
    size_t n = 1;
    for (int i = 0; i < 3; i++) {
        char *end = (char *)s;
        shape[i] = *s == ')' ? 1 : strtoul(s, &end, 10);
        s = end + strspn(end, ", ");
        n *= shape[i];
    }
    size_t size = descr[2] - '0'; /* "<f4" -> 4, "<i8" -> 8 */
    void *data = malloc(n * size);
    if (!data || fread(data, size, n, f) != n) die(path, "truncated data");
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CONFIG.toml DATA_DIR STATE_FILE\n", argv[0]);
        return 2;
    }
    size_t xs[3], ys[3], gs[3];
    float *x = read_npy(argv[2], "windows_x.npy", "<f4", xs);
    int64_t *y = read_npy(argv[2], "windows_y.npy", "<i8", ys);
    int64_t *group = read_npy(argv[2], "windows_groups.npy", "<i8", gs);
    size_t n = xs[0], shape[2] = {xs[1], xs[2]}, len = xs[1] * xs[2];
    printf("edge-ssl %s, %zu windows of [%zu, %zu]\n", edge_ssl_version(), n, shape[0], shape[1]);

    EdgeSslLearner *learner;
    CHECK(edge_ssl_learner_from_file(argv[1], &learner));
    EdgeSslInfo info;
    CHECK(edge_ssl_info(learner, &info));
    if (info.sample_len != len) die(argv[1], "the model does not take these windows");

    /* Labels: the first window of each exercise of users 1-5. */
    char *used = calloc(n, 1);
    for (int64_t user = 1; user <= 5; user++)
        for (uint32_t c = 0; c < info.n_classes; c++)
            for (size_t i = 0; i < n; i++)
                if (group[i] == user && y[i] == (int64_t)c) {
                    CHECK(edge_ssl_observe_labeled(learner, x + i * len, len, shape, 2, c));
                    used[i] = 1;
                    break;
                }

    /* The unlabeled stream: users 1-5's other windows, shuffled (xorshift, fixed seed). */
    size_t *order = malloc(n * sizeof *order), m = 0;
    for (size_t i = 0; i < n; i++)
        if (group[i] <= 5 && !used[i]) order[m++] = i;
    uint64_t r = 88172645463325252ull;
    for (size_t i = m; i > 1; i--) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        size_t j = r % i, t = order[i - 1];
        order[i - 1] = order[j], order[j] = t;
    }
    size_t admitted = 0;
    for (size_t k = 0; k < m; k++) {
        EdgeSslOutcome o;
        CHECK(edge_ssl_observe(learner, x + order[k] * len, len, shape, 2, &o));
        admitted += o.kind == EDGE_SSL_OUTCOME_ADMITTED;
    }

    /* Test on users 6-10. */
    size_t right = 0, total = 0, strange = 0;
    EdgeSslPrediction p, first = {0};
    for (size_t i = 0; i < n; i++) {
        if (group[i] <= 5) continue;
        CHECK(edge_ssl_predict(learner, x + i * len, len, shape, 2, &p));
        if (total == 0) first = p;
        right += p.label == (uint32_t)y[i];
        strange += p.gated;
        total++;
    }
    CHECK(edge_ssl_info(learner, &info));
    printf("stream: %zu windows, %zu admitted, %llu gated; gate fitted: %d\n", m, admitted,
           (unsigned long long)info.gated, info.gate_fitted);
    printf("accuracy on users 6-10: %.3f (%zu/%zu; chance %.3f), %zu flagged strange\n",
           (double)right / total, right, total, 1.0 / info.n_classes, strange);

    /* Survive a reboot: checkpoint, free, resume, same prediction. */
    CHECK(edge_ssl_checkpoint(learner, argv[3]));
    edge_ssl_learner_free(learner);
    CHECK(edge_ssl_learner_resume_from_file(argv[1], argv[3], &learner));
    for (size_t i = 0; i < n; i++)
        if (group[i] > 5) {
            CHECK(edge_ssl_predict(learner, x + i * len, len, shape, 2, &p));
            break;
        }
    int same = p.label == first.label && p.confidence == first.confidence;
    printf("resumed from %s: %s prediction\n", argv[3], same ? "same" : "DIFFERENT");

    edge_ssl_learner_free(learner);
    free(order), free(used), free(group), free(y), free(x);
    return same ? 0 : 1;
}
