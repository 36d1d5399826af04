# Paths, grid helpers and the other functions the rules use (the grid itself is qac/workflow.py).
# Every function of the workflow lives here, so the rule files hold rules only.

import json
import shlex

from snakemake.settings.types import DeploymentMethod

from qac.experiments import FIGURE_FILES, MAIN_ACT  # MAIN_ACT: the calibrated models (qac-c4)
from qac.workflow import (
    Model,
    all_models,
    calibration_arguments,
    checkpoint_dir,
    checkpoint_file,
    eval_arguments,
    models_for,
    needs_calibration,
    pretrain_model,
    skipped_items,
    train_options,
    write_skipped,
)

WORKDIR = Path.cwd()  # captions of generated files are read from the working directory
CKPT = checkpoint_dir(SCALE)  # the same place as checkpoint_file (init_from inputs)
RES = f"results/{SCALE}"
FIG = f"figures/{SCALE}"
RUNS = f"{RES}/runs"
# The same directories as output patterns of the internal rules (skipped, captions, tidy_all,
# <artifact>_files). The {scale} wildcard only ever matches the configured scale (the Snakefile's
# wildcard_constraints), and it keeps those rules out of `--list-target-rules`, which offers the
# rules without wildcards: the Snakefile's documented targets.
RES_PATTERN = "results/{scale}"
FIG_PATTERN = "figures/{scale}"
RUNS_PATTERN = f"{RES_PATTERN}/runs"
# The software of every shell rule (relative to the rule files), used under `--sdm conda`.
ENV = "../envs/qac.yaml"


def python():
    """The jobs' interpreter: the conda environment's `python` under `--sdm conda`, else the one
    running Snakemake (this checkout's .venv)."""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"
    return sys.executable


def output_dir(wildcards, output):
    """The directory of a job's first output (a params function)."""
    return str(Path(output[0]).parent)


def output_stem(wildcards, output):
    """A job's first output without its suffix (a params function)."""
    return str(Path(output[0]).with_suffix(""))


def model_of(w):
    return Model(w.dataset, w.arch, w.act)


def calibration_input(w):
    """The calibration a model's evaluation reads: only the main models are calibrated."""
    m = model_of(w)
    if not needs_calibration(CFG, m):
        return []
    return [f"{CKPT}/{m.dataset}/{m.arch}/{MAIN_ACT}/calibration.pt"]


def pretrain_input(w):
    """The float (ReLU) checkpoint a model is fine-tuned from: none unless `pretrain` is set
    (train_options then passes the same path as init_from), and none for the relu model."""
    source = pretrain_model(CFG, model_of(w))
    return [] if source is None else [checkpoint_path(source)]


def calibration_option(wildcards, input):
    return f"--calibration {input.calibration}" if input.calibration else ""


def checkpoint_path(m):
    """Where model m is trained to (the same path as init_from, from one definition)."""
    return checkpoint_file(CFG, m)


def eval_path(m):
    return f"{RUNS}/eval/{m.path}.json"


def artifact_evals(name):
    return [eval_path(m) for m in models_for(CFG, name)]


def table_files(name):
    return [f"{RES}/tables/{name}.{ext}" for ext in ("csv", "md", "tex")]


def figure_files(name):
    stems = FIGURE_FILES[name]
    return [f"{FIG}/{s}.{ext}" for s in stems for ext in ("png", "pdf")]


def artifact_files(names):
    files = []
    for name in names:
        files += table_files(name) if name in TABLES else figure_files(name)
    return files


def summary_files():
    return [
        f"{RES}/comparison.csv",
        f"{RES}/comparison.md",
        f"{RES}/claims.md",
        f"{RES}/audit.md",
    ]


def caption_files():
    return [f"{RES}/captions/{name}.rst" for name in ARTIFACTS]


def artifact_target(name):
    """What the target of one table or figure asks for: its files and its caption."""
    return artifact_files([name]) + [f"{RES}/captions/{name}.rst"]


def artifact_label(stem):
    """How the report names an artifact file: table4 -> Table 4, fig5 -> Fig. 5."""
    if stem.startswith("table"):
        return f"Table {stem[len('table'):]}"
    if stem.startswith("fig_table"):
        return f"Table {stem[len('fig_table'):]} (figure)"
    return f"Fig. {stem[len('fig'):]}"


def write_skipped_list(output, log):
    """The `skipped` job: the models left out for lack of data, as CSV (and a line in its log)."""
    write_skipped(CFG, output[0])
    Path(log[0]).write_text(f"{len(skipped_items(CFG))} skipped models: {output[0]}\n")


def gpus():
    """GPUs a train/calibrate/evaluate job asks for: none when the device is pinned to the CPU."""
    return 0 if CFG["device"] == "cpu" else CFG["resources"]["gpus"]


def train_command(threads):
    """`qac train` with its thread budget; with gpus() > 1, one torchrun process per GPU (each
    gets an equal share of the job's threads)."""
    n = int(gpus())
    if n <= 1:
        return f"QAC_THREADS={threads} {python()} -m qac.cli train"
    per_process = max(1, int(threads) // n)
    return (
        f"QAC_THREADS={per_process} OMP_NUM_THREADS={per_process} "
        f"{python()} -m torch.distributed.run --standalone --nproc-per-node {n} -m qac.cli train"
    )


def quoted(args):
    return " ".join(shlex.quote(str(a)) for a in args)


def check_datasets():
    """Fail before any job runs (one clear message each) when the jobs' device is missing, a
    configured dataset is missing, or a dataset is given options its source does not take."""
    import qac.data
    from qac.runtime import DeviceError, resolve_device

    if workflow.local_exec:  # cluster jobs find their GPU on the compute nodes
        try:
            resolve_device(CFG["device"])
        except DeviceError as exc:
            raise WorkflowError(str(exc)) from None
    for dataset in sorted({m.dataset for m in all_models(CFG)}):
        source = CFG["datasets"][dataset]
        options = CFG.get("data_options", {}).get(dataset, {})
        try:
            download = isinstance(options, dict) and options.get("download") is True
            qac.data.check_source(source, root=CFG["data_root"], download=download)
            qac.data.check_options(source, options, where=f"data_options.{dataset}")
        except qac.data.DatasetNotFoundError as exc:
            raise WorkflowError(
                f"dataset {dataset} ({source}) is missing: {exc} -- or set "
                f"datasets.{dataset}: null to skip the experiments that need it"
            ) from None
        except (ValueError, TypeError) as exc:  # qac.data.DatasetError, DatasetOptionError
            clear = f" (--config 'data_options={{{dataset}: null}}' clears the preset's options)"
            raise WorkflowError(
                f"dataset {dataset} ({source}): {exc}{clear if isinstance(exc, TypeError) else ''}"
            ) from None
