# Quantization-aware training (Algorithm 1, lines 1-21): one checkpoint per model id, trained
# once and reused by every experiment; evaluation-only options never retrain.


rule train:
    output:
        model=f"{CKPT}/{{dataset}}/{{arch}}/{{act}}/model.pt",
    params:
        cfg=lambda w: shlex.quote(json.dumps(train_options(CFG, model_of(w)), sort_keys=True)),
        out=lambda w, output: str(Path(output.model).parent),
    log:
        f"{RUNS}/logs/train/{{dataset}}/{{arch}}/{{act}}.log",
    benchmark:
        f"{RUNS}/benchmarks/train/{{dataset}}/{{arch}}/{{act}}.tsv"
    threads: CFG["resources"]["threads"]
    resources:
        mem_mb=CFG["resources"]["mem_mb"],
        runtime=CFG["resources"]["train_runtime"],
        gpu=gpus(),
    shell:
        "QAC_THREADS={threads} {PY} -m qac.cli train --config-json {params.cfg} "
        "--out {params.out} --no-progress > {log} 2>&1"
