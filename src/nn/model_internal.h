/* Between the layer API (src/nn/layers.c) and the model files (src/io/). */
#ifndef TG_NN_MODEL_INTERNAL_H
#define TG_NN_MODEL_INTERNAL_H

#include "tapegrad_nn.h"

/* tg_model_new, with every layer's tensors together holding at most
 * max_elem elements (TG_ERR_SHAPE beyond): a file's loader passes what the
 * file's size can hold, so that no spec in it makes us allocate more. */
tg_status tg_model_build(tg_model **out, tg_dtype dtype, int in_rank, const size_t *in_shape, int n,
                         const tg_layer_spec *specs, size_t max_elem);

/* Largest extent of any axis, and of any option that sizes one (1e8, as the
 * version-1 format's widths). */
#define TG_LAYER_MAX_DIM 100000000L

/* A metadata key or value: 1..63 characters of 0x21..0x7e, the model
 * file's `str` rule (src/nn/meta.c). */
int tg_meta_str_ok(const char *s);
/* Built-in layer kinds defined outside layers.c (issue 17: attention.c). */
extern const tg_layer_kind tg_kind_multihead_attention;
extern const tg_layer_kind tg_kind_transformer_block;
extern const tg_layer_kind tg_kind_pos_embedding;

/* The sequence kinds (issue 17, src/nn/recurrent.c), listed in layers.c's
 * table of built-in kinds. */
tg_status tg_embedding_layer_create(tg_layer *l);
tg_status tg_embedding_layer_init(tg_layer *l, tg_rng *rng);
tg_status tg_embedding_layer_forward(tg_layer *l, tg_tape *t, const tg_tensor *x,
                                     const tg_layer_ctx *c, tg_tensor **out);
tg_status tg_rnn_layer_create(tg_layer *l);
tg_status tg_rnn_layer_init(tg_layer *l, tg_rng *rng);
tg_status tg_rnn_layer_forward(tg_layer *l, tg_tape *t, const tg_tensor *x, const tg_layer_ctx *c,
                               tg_tensor **out);

#endif
