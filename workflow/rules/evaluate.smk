# Conversion, calibration (Alg. 1 lines 22-32) and evaluation: one JSON per model holding the
# ANN result and every SNN setting the experiments using that model need.


rule calibrate:
    input:
        model=f"{CKPT}/{{dataset}}/{{arch}}/{MAIN_ACT}/model.pt",
    output:
        state=f"{CKPT}/{{dataset}}/{{arch}}/{MAIN_ACT}/calibration.pt",
        metrics=f"{RUNS}/calibration/{{dataset}}/{{arch}}.json",
    params:
        python=python(),
        args=quoted(calibration_arguments(CFG)),
    log:
        f"{RUNS}/logs/calibrate/{{dataset}}/{{arch}}.log",
    benchmark:
        f"{RUNS}/benchmarks/calibrate/{{dataset}}/{{arch}}.tsv"
    threads: CFG["resources"]["threads"]
    resources:
        mem_mb=CFG["resources"]["mem_mb"],
        runtime=CFG["resources"]["eval_runtime"],
        gpu=gpus(),
    conda:
        ENV
    shell:
        "QAC_THREADS={threads} {params.python} -m qac.cli calibrate --checkpoint {input.model} "
        "--out {output.state} --metrics {output.metrics} {params.args} --no-progress "
        "> {log} 2>&1"


rule evaluate:
    input:
        model=f"{CKPT}/{{dataset}}/{{arch}}/{{act}}/model.pt",
        calibration=calibration_input,
    output:
        f"{RUNS}/eval/{{dataset}}/{{arch}}/{{act}}.json",
    params:
        python=python(),
        args=lambda w: quoted(eval_arguments(CFG, model_of(w))),
        calibration=calibration_option,
    log:
        f"{RUNS}/logs/evaluate/{{dataset}}/{{arch}}/{{act}}.log",
    benchmark:
        f"{RUNS}/benchmarks/evaluate/{{dataset}}/{{arch}}/{{act}}.tsv"
    threads: CFG["resources"]["threads"]
    resources:
        mem_mb=CFG["resources"]["mem_mb"],
        runtime=CFG["resources"]["eval_runtime"],
        gpu=gpus(),
    conda:
        ENV
    shell:
        "QAC_THREADS={threads} {params.python} -m qac.cli evaluate --checkpoint {input.model} "
        "{params.calibration} --out {output} {params.args} --no-progress > {log} 2>&1"
