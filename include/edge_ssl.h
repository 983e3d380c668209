/*
 * edge_ssl.h: the C API of edge-ssl, on-device semi-supervised learning on frozen ONNX
 * backbones. Hand-kept; tests/c_abi.rs checks it against src/ffi.rs (every function, constant
 * and struct layout) and compiles the C example against it.
 *
 * Link with libedge_ssl.a (plus -lpthread -ldl -lm -lgcc_s -lc) or libedge_ssl.so, both built by
 * `cargo build --release` into target/release/.
 *
 * Conventions
 * - Every function that can fail returns an int status: EDGE_SSL_OK (0) or a negative
 *   EDGE_SSL_ERR_* code. edge_ssl_last_error() gives the message of the last failed call on the
 *   calling thread; every other function clears it on entry.
 * - Output structs and handles are written only on success.
 * - A sample is pointer + length + shape: `len` values at `x`, with `shape[0..ndim]` whose product
 *   is `len`; a leading batch dimension of 1 is accepted. Embeddings are [dim], sensor windows
 *   [T, C] f32 time-major, images [H, W, C] u8 (C = 1, 3 or 4, any size: resized to the model's
 *   input). A short buffer, another shape, a misaligned float pointer or a NaN is an error and
 *   leaves the learner unchanged.
 * - No panic crosses the boundary. An internal panic (a bug) returns EDGE_SSL_ERR_PANIC and
 *   poisons its handle (EDGE_SSL_ERR_POISONED afterwards): free it and resume from a checkpoint.
 *
 * Thread safety
 * A handle may be created on one thread and used on another, but never by two threads at the
 * same time: guard a shared handle with a mutex. Different handles are independent and may run
 * in parallel. The last-error message is per thread.
 */
#ifndef EDGE_SSL_H
#define EDGE_SSL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the structs and functions below; EdgeSslConfig.abi_version must hold it. */
#define EDGE_SSL_ABI_VERSION 3

/* Status codes. */
#define EDGE_SSL_OK 0
#define EDGE_SSL_ERR_NULL (-1)        /* a required pointer argument is NULL */
#define EDGE_SSL_ERR_SHAPE (-2)       /* short buffer, other shape, misaligned, wrong sample kind */
#define EDGE_SSL_ERR_NON_FINITE (-3)  /* NaN or infinity in the input */
#define EDGE_SSL_ERR_INVALID_ARG (-4) /* config field, label >= n_classes, bad name, not UTF-8,
                                         engine not built in */
#define EDGE_SSL_ERR_IO (-5)          /* a file cannot be read or written; onnxruntime library
                                         missing or too old */
#define EDGE_SSL_ERR_STATE (-6)       /* state file damaged, other dims or format version */
#define EDGE_SSL_ERR_MODEL (-7)       /* ONNX model rejected, does not fit, or failed to run */
#define EDGE_SSL_ERR_DATA (-8)        /* malformed config file or data; numeric failure */
#define EDGE_SSL_ERR_POISONED (-9)    /* an earlier call on this handle panicked */
#define EDGE_SSL_ERR_PANIC (-10)      /* internal error (a bug, please report) */

/* EdgeSslConfig.input */
#define EDGE_SSL_INPUT_EMBEDDING 0u /* embeddings of `dim` floats computed by the caller */
#define EDGE_SSL_INPUT_SENSOR 1u    /* f32 windows [T, C] run through the model */
#define EDGE_SSL_INPUT_IMAGE 2u     /* u8 images [H, W, C] resized and run through the model */

/* EdgeSslConfig.engine */
#define EDGE_SSL_ENGINE_TRACT 0u       /* tract, pure Rust, always compiled in (default) */
#define EDGE_SSL_ENGINE_ONNXRUNTIME 1u /* onnxruntime from libonnxruntime.so (feature onnxruntime) */

/* EdgeSslConfig.rows: what an image model hands the learner */
#define EDGE_SSL_ROWS_AUTO 0u      /* MAP for a model with the shipped camera model's layout on
                                      tract, else EMBEDDING (default) */
#define EDGE_SSL_ROWS_MAP 1u       /* the last feature map (320 x 4 x 4 at 112: dim 5120), pooled
                                      by the model's frozen head convolution, the bank's graph on
                                      the maps: the best camera configuration measured */
#define EDGE_SSL_ROWS_EMBEDDING 2u /* the model's "embedding" output; always for sensor input */

/* EdgeSslOutcome.kind */
#define EDGE_SSL_OUTCOME_WARMING_UP 0 /* held in the gate's warm-up buffer */
#define EDGE_SSL_OUTCOME_DEFERRED 1   /* gate not fitted yet, warm-up buffer full */
#define EDGE_SSL_OUTCOME_GATED 2      /* rejected by the out-of-distribution gate */
#define EDGE_SSL_OUTCOME_ADMITTED 3   /* admitted, pseudo-labelled with .label */

/* An opaque learner: a learner on embeddings, or backbone + learner on raw samples. */
typedef struct EdgeSslLearner EdgeSslLearner;

/* Learner configuration; fill it with edge_ssl_config_default, then change fields. Strings are
 * NUL-terminated UTF-8, read only during the call that takes the config. */
typedef struct EdgeSslConfig {
    uint32_t abi_version;        /* EDGE_SSL_ABI_VERSION */
    uint32_t input;              /* EDGE_SSL_INPUT_*; default EMBEDDING */
    const char *model_path;      /* ONNX backbone for sensor/image input (output "embedding",
                                    input u8 [1,S,S,3] or f32 [1,T,C]); NULL for embeddings */
    size_t image_size;           /* S, image input; default 112 */
    size_t sensor_steps;         /* T, sensor input; default 128 */
    size_t sensor_channels;      /* C, sensor input; default 6 */
    size_t dim;                  /* embedding dimension; 0: the model's */
    size_t n_classes;            /* 2..=64 */
    const char *algorithm;       /* NULL: the default "labelprop"; "flexmatch", "fixmatch", "uda",
                                    "meanteacher", "mixmatch", "comatch", "supervised", or "a+b" */
    size_t hidden;               /* MLP hidden width; 0 (default): linear head */
    size_t bank_capacity;        /* memory bank entries; default 4096 */
    int32_t gate;                /* non-zero (default): out-of-distribution gate on */
    size_t gate_warmup;          /* unlabeled samples before the gate is fitted; default 512 */
    size_t steps_per_sample;     /* learning steps per observed sample; default 1 */
    uint64_t seed;               /* seed of every random choice; default 0 */
    const char *checkpoint_path; /* automatic checkpoints here; NULL (default): none */
    uint64_t checkpoint_every;   /* ... every this many observed samples */
    uint32_t engine;             /* EDGE_SSL_ENGINE_*; default TRACT */
    size_t threads;              /* engine threads; default 1 */
    const char *engine_library;  /* libonnxruntime.so; NULL (default): ORT_DYLIB_PATH, then
                                    next to the executable */
    uint32_t rows;               /* EDGE_SSL_ROWS_*; default AUTO; dim is the rows' size */
    float graph_vote;            /* weight in [0, 1] of the bank graph's vote in predictions;
                                    negative (default): 0.5, 0.7 on maps */
} EdgeSslConfig;

/* What edge_ssl_predict says about one sample. */
typedef struct EdgeSslPrediction {
    uint32_t label;        /* predicted class */
    float confidence;      /* its probability */
    float ood_score;       /* out-of-distribution score, higher is stranger; NaN if none */
    int32_t has_ood_score; /* 1 once the gate is fitted */
    int32_t gated;         /* 1 if the gate rejects the sample (strange input) */
} EdgeSslPrediction;

/* What edge_ssl_observe did with one unlabeled sample. */
typedef struct EdgeSslOutcome {
    int32_t kind;   /* EDGE_SSL_OUTCOME_* */
    uint32_t label; /* the pseudo-label if ADMITTED, else 0 */
} EdgeSslOutcome;

/* Dimensions and running counts of a learner. */
typedef struct EdgeSslInfo {
    uint32_t input;      /* EDGE_SSL_INPUT_* */
    int32_t gate_fitted; /* 1 once the gate is fitted */
    size_t dim;          /* embedding dimension */
    size_t n_classes;
    size_t sample_len;   /* values of one sample */
    uint64_t labeled;
    uint64_t unlabeled;
    uint64_t admitted;
    uint64_t gated;
    uint64_t deferred;
    uint64_t steps;
} EdgeSslInfo;

/* The library version, e.g. "0.1.0" (static; never free it). */
const char *edge_ssl_version(void);

/* A static name for a status code ("EDGE_SSL_ERR_NULL", ...), "unknown" for others. */
const char *edge_ssl_status_name(int status);

/* Copies the last failure's message on this thread into buf (NUL-terminated, truncated to
 * len bytes) and returns its full length without the NUL; 0 if the last call succeeded.
 * buf may be NULL with len 0 to ask for the length. */
size_t edge_ssl_last_error(char *buf, size_t len);

/* Fills *out with the defaults for `dim`-d embeddings (0: the model's) and n_classes classes. */
int edge_ssl_config_default(size_t dim, size_t n_classes, EdgeSslConfig *out);

/* Creates a learner from *config into *out; free it with edge_ssl_learner_free. Loads and
 * optimizes the model for sensor or image input. */
int edge_ssl_learner_new(const EdgeSslConfig *config, EdgeSslLearner **out);

/* Like edge_ssl_learner_new, continuing from a state file saved with the same config. */
int edge_ssl_learner_resume(const EdgeSslConfig *config, const char *state_path,
                            EdgeSslLearner **out);

/* Creates a learner from a TOML file: keys as the EdgeSslConfig fields, with
 * input = "embedding" | "sensor" | "image", model = "path", engine = "tract" | "onnxruntime",
 * engine_library = "path", rows = "auto" | "map" | "embedding", graph_vote = 0.7, and an optional
 * [checkpoint] path = "..." every = N; paths are relative to the file's folder. */
int edge_ssl_learner_from_file(const char *config_path, EdgeSslLearner **out);

/* Like edge_ssl_learner_from_file, continuing from a state file. */
int edge_ssl_learner_resume_from_file(const char *config_path, const char *state_path,
                                      EdgeSslLearner **out);

/* Frees a learner; NULL is a no-op. */
void edge_ssl_learner_free(EdgeSslLearner *learner);

/* Learns from one labelled f32 sample (an embedding [dim] or a sensor window [T, C]). */
int edge_ssl_observe_labeled(EdgeSslLearner *learner, const float *x, size_t len,
                             const size_t *shape, size_t ndim, uint32_t label);

/* Learns from one unlabeled f32 sample; *outcome (may be NULL) says what happened to it. */
int edge_ssl_observe(EdgeSslLearner *learner, const float *x, size_t len, const size_t *shape,
                     size_t ndim, EdgeSslOutcome *outcome);

/* Predicts the class of one f32 sample into *out. */
int edge_ssl_predict(EdgeSslLearner *learner, const float *x, size_t len, const size_t *shape,
                     size_t ndim, EdgeSslPrediction *out);

/* The same three for u8 images [H, W, C] on an image learner. */
int edge_ssl_observe_labeled_image(EdgeSslLearner *learner, const uint8_t *pixels, size_t len,
                                   const size_t *shape, size_t ndim, uint32_t label);
int edge_ssl_observe_image(EdgeSslLearner *learner, const uint8_t *pixels, size_t len,
                           const size_t *shape, size_t ndim, EdgeSslOutcome *outcome);
int edge_ssl_predict_image(EdgeSslLearner *learner, const uint8_t *pixels, size_t len,
                           const size_t *shape, size_t ndim, EdgeSslPrediction *out);

/* Saves the whole learner state to path, atomically (a power cut leaves the old or the new
 * state). */
int edge_ssl_checkpoint(EdgeSslLearner *learner, const char *path);

/* Writes the learner's dimensions and counts into *out. */
int edge_ssl_info(EdgeSslLearner *learner, EdgeSslInfo *out);

#ifdef __cplusplus
}
#endif

#endif /* EDGE_SSL_H */
