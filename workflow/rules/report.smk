# Tables, figures, the comparison with the paper and the claims (`qac report ...`, `qac paper
# summary`). Each artifact reads only the evaluations of the models it needs, so a single
# table or figure can be rebuilt by name (its target in the Snakefile). Every rule here writes a
# benchmark file under runs/benchmarks/report/: the "report" stage of results/<scale>/README.md.


rule skipped:
    output:
        f"{RES_PATTERN}/skipped.csv",
    log:
        f"{RUNS_PATTERN}/logs/skipped.log",
    benchmark:
        f"{RUNS_PATTERN}/benchmarks/report/skipped.tsv"
    run:
        write_skipped_list(output, log)


rule tidy:
    input:
        lambda w: artifact_evals(w.name),
    output:
        f"{RUNS}/tidy/{{name}}.csv",
    params:
        python=python(),
        scale=SCALE,
        policy=CFG["main_policy"],
    log:
        f"{RUNS}/logs/tidy/{{name}}.log",
    benchmark:
        f"{RUNS}/benchmarks/report/tidy/{{name}}.tsv"
    conda:
        ENV
    shell:
        "{params.python} -m qac.cli report collect --scale {params.scale} "
        "--main-policy {params.policy} --out {output} {input} > {log} 2>&1"


rule layers:
    input:
        lambda w: artifact_evals(w.name),
    output:
        f"{RUNS}/layers/{{name}}.csv",
    params:
        python=python(),
    log:
        f"{RUNS}/logs/layers/{{name}}.log",
    benchmark:
        f"{RUNS}/benchmarks/report/layers/{{name}}.tsv"
    conda:
        ENV
    shell:
        "{params.python} -m qac.cli report layers --out {output} {input} > {log} 2>&1"


for _table in TABLES:

    rule:
        name:
            f"{_table}_files"
        input:
            tidy=f"{RUNS}/tidy/{_table}.csv",
            skipped=f"{RES}/skipped.csv",
        output:
            csv=report(
                f"{RES_PATTERN}/tables/{_table}.csv",
                caption=f"{WORKDIR}/{RES}/captions/{_table}.rst",
                category="Tables",
                labels={"table": artifact_label(_table), "file": f"{_table}.csv"},
            ),
            md=f"{RES_PATTERN}/tables/{_table}.md",
            tex=f"{RES_PATTERN}/tables/{_table}.tex",
        params:
            python=python(),
            name=_table,
            note=shlex.quote(CFG.get("data_note", "")),
            prefix=output_stem,
        log:
            f"{RUNS_PATTERN}/logs/tables/{_table}.log",
        benchmark:
            f"{RUNS_PATTERN}/benchmarks/report/tables/{_table}.tsv"
        conda:
            ENV
        shell:
            "{params.python} -m qac.cli report table --name {params.name} --tidy {input.tidy} "
            "--skipped {input.skipped} --note {params.note} "
            "--out-prefix {params.prefix} > {log} 2>&1"


for _figure in FIGURES:

    rule:
        name:
            f"{_figure}_files"
        input:
            tidy=f"{RUNS}/tidy/{_figure}.csv",
            layers=f"{RUNS}/layers/{_figure}.csv",
            skipped=f"{RES}/skipped.csv",
        output:
            [
                report(
                    f"{FIG_PATTERN}/{stem}.png",
                    caption=f"{WORKDIR}/{RES}/captions/{_figure}.rst",
                    category="Figures",
                    labels={"figure": artifact_label(stem), "file": f"{stem}.png"},
                )
                if ext == "png"
                else f"{FIG_PATTERN}/{stem}.{ext}"
                for stem in FIGURE_FILES[_figure]
                for ext in ("png", "pdf")
            ],
        params:
            python=python(),
            name=_figure,
            out=output_dir,
        log:
            f"{RUNS_PATTERN}/logs/figures/{_figure}.log",
        benchmark:
            f"{RUNS_PATTERN}/benchmarks/report/figures/{_figure}.tsv"
        conda:
            ENV
        shell:
            "{params.python} -m qac.cli report figure --name {params.name} --tidy {input.tidy} "
            "--layers {input.layers} --skipped {input.skipped} --out-dir {params.out} > {log} 2>&1"


rule captions:
    output:
        [f"{RES_PATTERN}/captions/{name}.rst" for name in ARTIFACTS],
    params:
        python=python(),
        out=output_dir,
        # the test-set sizes: Table 8's captions say when its T sweeps ran on a subset
        # (evaluation.sweep_limit below evaluation.limit), as tables/table8.* do
        sizes=" ".join(
            f"--{key.replace('_', '-')} {int(CFG['evaluation'][key])}"
            for key in ("limit", "sweep_limit")
            if CFG["evaluation"].get(key)
        ),
    log:
        f"{RUNS_PATTERN}/logs/captions.log",
    benchmark:
        f"{RUNS_PATTERN}/benchmarks/report/captions.tsv"
    conda:
        ENV
    shell:
        "{params.python} -m qac.cli report captions --out-dir {params.out} "
        "--scale {wildcards.scale} {params.sizes} > {log} 2>&1"


rule tidy_all:
    input:
        [eval_path(m) for m in all_models(CFG)],
    output:
        f"{RES_PATTERN}/tidy.csv",
    params:
        python=python(),
        policy=CFG["main_policy"],
    log:
        f"{RUNS_PATTERN}/logs/tidy_all.log",
    benchmark:
        f"{RUNS_PATTERN}/benchmarks/report/tidy_all.tsv"
    conda:
        ENV
    shell:
        "{params.python} -m qac.cli report collect --scale {wildcards.scale} "
        "--main-policy {params.policy} --out {output} {input} > {log} 2>&1"


# results/<scale>/layers.csv: the per-layer T, bits and alpha of every quantized model of the scale
# (one row per layer: dataset, architecture, act, method, case, L, layer_index, layer, T, bits,
# alpha, scale, source), read from the evaluations like the per-figure tables of rule `layers`.
rule layers_all:
    input:
        [eval_path(m) for m in all_models(CFG)],
    output:
        f"{RES_PATTERN}/layers.csv",
    params:
        python=python(),
    log:
        f"{RUNS_PATTERN}/logs/layers_all.log",
    benchmark:
        f"{RUNS_PATTERN}/benchmarks/report/layers_all.tsv"
    conda:
        ENV
    shell:
        "{params.python} -m qac.cli report layers --scale {wildcards.scale} --out {output} "
        "{input} > {log} 2>&1"


rule summary:
    """Comparison with the paper, claims C1-C7, audit, layers.csv (per-layer T, bits, alpha)."""
    input:
        tidy=f"{RES}/tidy.csv",
        captions=caption_files(),
        layers=f"{RES}/layers.csv",  # not read by the command: built with the summary
    output:
        csv=f"{RES}/comparison.csv",
        md=report(
            f"{RES}/comparison.md",
            caption="../report/comparison.rst",
            category="Paper",
            labels={"file": "comparison.md", "what": "our numbers beside the paper's"},
        ),
        claims=report(
            f"{RES}/claims.md",
            caption="../report/claims.rst",
            category="Paper",
            labels={"file": "claims.md", "what": "claims C1-C7: holds / fails / not run"},
        ),
        audit=report(
            f"{RES}/audit.md",
            caption="../report/audit.rst",
            category="Paper",
            labels={"file": "audit.md", "what": "the paper's internal consistency"},
        ),
    params:
        python=python(),
        scale=SCALE,
        note=shlex.quote(CFG.get("data_note", "")),
        out=output_dir,
    log:
        f"{RUNS}/logs/summary.log",
    benchmark:
        f"{RUNS}/benchmarks/report/summary.tsv"
    conda:
        ENV
    shell:
        "{params.python} -m qac.cli paper summary --scale {params.scale} --tidy {input.tidy} "
        "--out-dir {params.out} --note {params.note} > {log} 2>&1"


rule training_curves:
    input:
        [checkpoint_path(m) for m in all_models(CFG)],
    output:
        report(
            f"{FIG_PATTERN}/training.png",
            caption="../report/training.rst",
            category="Figures",
            labels={"figure": "Training curves", "file": "training.png"},
        ),
        f"{FIG_PATTERN}/training.pdf",
    params:
        python=python(),
        out=output_dir,
        logs=lambda w, input: " ".join(str(Path(m).with_name("log.jsonl")) for m in input),
    log:
        f"{RUNS_PATTERN}/logs/figures/training.log",
    benchmark:
        f"{RUNS_PATTERN}/benchmarks/report/training_curves.tsv"
    conda:
        ENV
    shell:
        "{params.python} -m qac.cli report training --out-dir {params.out} {params.logs} "
        "> {log} 2>&1"
