# Tables, figures, the comparison with the paper and the claims (`qac report ...`, `qac paper
# summary`). Each artifact reads only the evaluations of the models it needs, so a single
# table or figure can be rebuilt by name.


rule skipped:
    output:
        f"{RES}/skipped.csv",
    run:
        from qac.workflow import write_skipped

        write_skipped(CFG, output[0])


rule tidy:
    input:
        lambda w: artifact_evals(w.name),
    output:
        f"{RUNS}/tidy/{{name}}.csv",
    log:
        f"{RUNS}/logs/tidy/{{name}}.log",
    shell:
        "{PY} -m qac.cli report collect --scale {SCALE} --main-policy {CFG[main_policy]} "
        "--out {output} {input} > {log} 2>&1"


rule layers:
    input:
        lambda w: artifact_evals(w.name),
    output:
        f"{RUNS}/layers/{{name}}.csv",
    log:
        f"{RUNS}/logs/layers/{{name}}.log",
    shell:
        "{PY} -m qac.cli report layers --out {output} {input} > {log} 2>&1"


for _table in TABLES:

    rule:
        name:
            f"{_table}_files"
        input:
            tidy=f"{RUNS}/tidy/{_table}.csv",
            skipped=f"{RES}/skipped.csv",
        output:
            csv=report(
                f"{RES}/tables/{_table}.csv",
                caption=f"{WORKDIR}/{RES}/captions/{_table}.rst",
                category="Tables",
            ),
            md=f"{RES}/tables/{_table}.md",
            tex=f"{RES}/tables/{_table}.tex",
        params:
            name=_table,
            note=shlex.quote(CFG.get("data_note", "")),
        log:
            f"{RUNS}/logs/tables/{_table}.log",
        shell:
            "{PY} -m qac.cli report table --name {params.name} --tidy {input.tidy} "
            "--skipped {input.skipped} --note {params.note} "
            "--out-prefix {RES}/tables/{params.name} > {log} 2>&1"


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
                report(f, caption=f"{WORKDIR}/{RES}/captions/{_figure}.rst", category="Figures")
                if f.endswith(".png")
                else f
                for f in figure_files(_figure)
            ],
        params:
            name=_figure,
        log:
            f"{RUNS}/logs/figures/{_figure}.log",
        shell:
            "{PY} -m qac.cli report figure --name {params.name} --tidy {input.tidy} "
            "--layers {input.layers} --skipped {input.skipped} --out-dir {FIG} > {log} 2>&1"


rule captions:
    output:
        [f"{RES}/captions/{name}.rst" for name in ARTIFACTS],
    params:
        out=f"{RES}/captions",
    shell:
        "{PY} -m qac.cli report captions --out-dir {params.out} --scale {SCALE}"


rule tidy_all:
    input:
        [eval_path(m) for m in all_models(CFG)],
    output:
        f"{RES}/tidy.csv",
    log:
        f"{RUNS}/logs/tidy_all.log",
    shell:
        "{PY} -m qac.cli report collect --scale {SCALE} --main-policy {CFG[main_policy]} "
        "--out {output} {input} > {log} 2>&1"


rule summary:
    input:
        tidy=f"{RES}/tidy.csv",
        captions=rules.captions.output,
    output:
        csv=f"{RES}/comparison.csv",
        md=report(
            f"{RES}/comparison.md", caption="../report/comparison.rst", category="Paper"
        ),
        claims=report(
            f"{RES}/claims.md", caption="../report/claims.rst", category="Paper"
        ),
        audit=report(f"{RES}/audit.md", caption="../report/audit.rst", category="Paper"),
    params:
        note=shlex.quote(CFG.get("data_note", "")),
    log:
        f"{RUNS}/logs/summary.log",
    shell:
        "{PY} -m qac.cli paper summary --scale {SCALE} --tidy {input.tidy} --out-dir {RES} "
        "--note {params.note} > {log} 2>&1"


# One target per artifact: `snakemake --cores 4 table4` or `snakemake fig2`.
for _name in ARTIFACTS:

    rule:
        name:
            _name
        input:
            artifact_files([_name]),
            f"{RES}/captions/{_name}.rst",
