# Quantization-aware training (Algorithm 1, lines 1-21): one checkpoint per model id, trained
# once and reused by every experiment; evaluation-only options never retrain. A changed training
# option reruns the job: Snakemake deletes model.pt, and `qac train` trains the new configuration
# in <model dir>/runs/<fingerprint>/ beside the old run (kept, and copied back without retraining
# if the option is changed back); model.pt, metrics.json and log.jsonl appear when it completes.
# resources.gpus > 1 trains with one process per GPU on one node (torchrun, DDP): the same global
# batch_size and the same result as one process (qac/distributed.py).
# The job's log grows by one line per epoch while it runs (loss, accuracies, lr, mean T, seconds;
# --no-progress hides only the progress bars); log.csv beside model.pt holds the same per epoch.
# With `pretrain` set (a mapping of TrainConfig overrides; null = the paper's training from
# scratch), each (dataset, arch) first trains its float model <dataset>/<arch>/relu with train +
# train_overrides + pretrain, and every quantized model of the pair is fine-tuned from it with
# train + train_overrides (init_from: its model.pt, an input here, so a new one retrains them).


rule train:
    input:
        init=pretrain_input,
    output:
        model=f"{CKPT}/{{dataset}}/{{arch}}/{{act}}/model.pt",
    params:
        cfg=lambda w: shlex.quote(json.dumps(train_options(CFG, model_of(w)), sort_keys=True)),
        out=lambda w, output: str(Path(output.model).parent),
        command=lambda w, threads: train_command(threads),
    log:
        f"{RUNS}/logs/train/{{dataset}}/{{arch}}/{{act}}.log",
    benchmark:
        f"{RUNS}/benchmarks/train/{{dataset}}/{{arch}}/{{act}}.tsv"
    threads: CFG["resources"]["threads"]
    resources:
        mem_mb=CFG["resources"]["mem_mb"],
        runtime=CFG["resources"]["train_runtime"],
        gpu=gpus(),
    conda:
        ENV
    shell:
        "{params.command} --config-json {params.cfg} "
        "--out {params.out} --no-progress > {log} 2>&1"
