/* tapegrad: the command-line tool. Dispatches to the commands; `ops` and
 * `gradcheck` live here since they only read the op table. */
#include "cli.h"

#include <string.h>

int cmd_ops(void) {
    int n;
    const tg_op *const *ops = tg_op_table(&n);
    printf("%-18s %5s  %s\n", "op", "arity", "inputs without derivative");
    for (int i = 0; i < n; i++) {
        printf("%-18s %5d  ", ops[i]->name, ops[i]->arity);
        int any = 0;
        for (int k = 0; k < ops[i]->arity; k++)
            if (ops[i]->nondiff >> k & 1u) printf("%s%d", any++ ? "," : "", k);
        printf("%s\n", any ? "" : "-");
    }
    return 0;
}

/* gradcheck and the adjoint check of one op on random float64 inputs. */
static int check_one(const tg_op *op, tg_rng *rng) {
    size_t m = 1 + tg_rng_next(rng) % 5, k = 1 + tg_rng_next(rng) % 5, n = 1 + tg_rng_next(rng) % 5;
    tg_tensor *in[TG_MAX_ARITY], *params[TG_MAX_ARITY], *out;
    tg_attr attr;
    tg_tape *t = NULL;
    tg_check_report g = {0}, a = {0};
    int np = 0, ok = 0;
    tg_status s = tg_tape_new(&t);
    if (!s) s = tg_sample_inputs(op, m, k, n, TG_F64, rng, in, &attr);
    if (!s) {
        for (int i = 0; i < op->arity; i++)
            if (!(op->nondiff >> i & 1u)) params[np++] = in[i];
        s = tg_apply(t, op, op->arity, (const tg_tensor *const *)in, &attr, &out);
        tg_status sg = s ? s : tg_gradcheck(t, out, np, params, NULL, &g);
        tg_status sa = s ? s : tg_adjoint_check(t, out, np, params, NULL, &a);
        ok = !sg && !sa;
        for (int i = 0; i < op->arity; i++)
            tg_tensor_free(in[i]);
    }
    printf("%-18s %zux%zux%zu %12.3e %12.3e %12.3e  %s\n", op->name, m, k, n, g.abs_err, g.rel_err,
           a.adjoint_err, ok ? "PASS" : "FAIL");
    if (!ok) fprintf(stderr, "tapegrad gradcheck: %s\n", tg_last_error());
    tg_tape_free(t);
    return ok;
}

int cmd_gradcheck(const cli_opts *o) {
    int n, failed = 0;
    const tg_op *const *ops = tg_op_table(&n);
    tg_rng rng;
    tg_rng_seed(&rng, o->seed);
    printf("%-18s %-7s %12s %12s %12s  %s\n", "op", "sizes", "max abs err", "max rel err",
           "adjoint err", "result");
    for (int i = 0; i < n; i++)
        failed += !check_one(ops[i], &rng);
    printf("gradcheck: %d passed, %d failed\n", n - failed, failed);
    return failed ? EXIT_DATA : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "tapegrad: missing command\n");
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        cli_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tapegrad %s\n", TG_VERSION);
        return 0;
    }
    const char *cmd = argv[1];
    static const char *const known[] = {"fit", "eval",    "predict", "graph", "gradcheck",
                                        "ops", "summary", "export",  "import"};
    int found = 0;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        found |= !strcmp(cmd, known[i]);
    if (!found) {
        fprintf(stderr, "tapegrad: unknown command '%s'\n", cmd);
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    cli_opts o;
    if (!strcmp(cmd, "ops"))
        o.help = argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"));
    else if (!cli_parse(argc, argv, 2, cmd, &o))
        return EXIT_USAGE;
    if (o.help) {
        cli_command_usage(stdout, cmd);
        return 0;
    }
    if (!strcmp(cmd, "ops")) return cmd_ops();
    if (!strcmp(cmd, "fit")) return cmd_fit(&o);
    if (!strcmp(cmd, "eval")) return cmd_eval(&o);
    if (!strcmp(cmd, "predict")) return cmd_predict(&o);
    if (!strcmp(cmd, "graph")) return cmd_graph(&o);
    if (!strcmp(cmd, "summary")) return cmd_summary(&o);
    if (!strcmp(cmd, "export")) return cmd_export(&o);
    if (!strcmp(cmd, "import")) return cmd_import(&o);
    return cmd_gradcheck(&o);
}
