# Paths and grid helpers shared by the rules (the grid itself is qac/workflow.py).

import json
import shlex

from qac.experiments import FIGURE_FILES, MAIN_ACT  # MAIN_ACT: the calibrated models (qac-c4)
from qac.workflow import (
    Model,
    all_models,
    calibration_arguments,
    eval_arguments,
    models_for,
    needs_calibration,
    skipped_items,
    train_options,
)

WORKDIR = Path.cwd()  # captions of generated files are read from the working directory
CKPT = f"checkpoints/{SCALE}"
RES = f"results/{SCALE}"
FIG = f"figures/{SCALE}"
RUNS = f"{RES}/runs"


def model_of(w):
    return Model(w.dataset, w.arch, w.act)


def checkpoint_path(m):
    return f"{CKPT}/{m.path}/model.pt"


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


def gpus():
    """GPUs a train/calibrate/evaluate job asks for: none when the device is pinned to the CPU."""
    return 0 if CFG["device"] == "cpu" else CFG["resources"]["gpus"]


def train_command(threads):
    """`qac train` with its thread budget; with gpus() > 1, one torchrun process per GPU (each
    gets an equal share of the job's threads)."""
    n = int(gpus())
    if n <= 1:
        return f"QAC_THREADS={threads} {PY} -m qac.cli train"
    per_process = max(1, int(threads) // n)
    return (
        f"QAC_THREADS={per_process} OMP_NUM_THREADS={per_process} {PY} -m torch.distributed.run "
        f"--standalone --nproc-per-node {n} -m qac.cli train"
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
            qac.data.check_source(source, root=CFG["data_root"])
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
