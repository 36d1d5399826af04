"""The experiment grid of the paper as data: which models to train, how to evaluate them, and
which of them each table or figure needs. The Snakemake workflow (``workflow/``) is a thin layer
over these functions, so the grid can be imported and tested without Snakemake.

Configuration = ``<preset dir>/defaults.yaml`` <- ``<preset dir>/<scale>.yaml`` <- the user's
``config.yaml`` and ``--config`` values (deep merge; ``scale`` picks the preset). The preset
directory belongs to the workflow, not to this package: :func:`resolve_config` is always told
where it is (the Snakefile passes its own ``workflow/presets``), so an installed ``qac`` never
looks for a checkout.

Model ids: ``<dataset>/<arch>/<act>`` with act ``qac-c<case>`` (QAC, parameterisation 1-4) or
``qcfs-L<levels>`` (QCFS baseline); ``relu`` is the float pretraining model of a (dataset, arch)
when ``pretrain`` is set (trained, never evaluated, in no artifact).
"""

from __future__ import annotations

import argparse
import copy
import csv
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from qac.experiments import (
    ARTIFACT_MODELS,
    ARTIFACTS,
    FIGURES,
    FLOAT_ACT,
    MAIN_ACT,
    TABLES,
    Activation,
    Model,
    grid_settings,
)

__all__ = [
    "ARTIFACTS",
    "TABLES",
    "FIGURES",
    "Model",
    "resolve_config",
    "resolve_sources",
    "deep_merge",
    "models_for",
    "all_models",
    "train_options",
    "pretrain_model",
    "pretrain_models",
    "checkpoint_dir",
    "checkpoint_file",
    "eval_arguments",
    "skipped_items",
    "needs_calibration",
    "calibration_arguments",
    "write_skipped",
    "load_yaml",
    "validate_config",
]

# Where a source checkout keeps the workflow's presets and schema, for callers running from one
# (the tests); nothing in this module reads them unless they are passed in. An installed package
# has no such directory: pass the workflow's own (``<workflow>/presets``) to resolve_config.
ROOT = Path(__file__).resolve().parents[1]
PRESET_DIR = ROOT / "workflow" / "presets"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SCALES = ("smoke", "cpu", "paper")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: ``1e-3``, ``5E-4``, ``.5``, ``1.0e+2``."""


_FLOAT_TAG = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that reads every float notation as a number (YAML 1.1, which PyYAML
    implements, keeps ``1e-3`` and ``5E-4`` as strings); quoted values stay strings."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def deep_merge(base: dict, extra: dict) -> dict:
    """``base`` updated by ``extra``, recursively (JSON Merge Patch, RFC 7386): mappings merge
    key by key, other values replace, and a ``null`` value REMOVES the key, which is how a
    preset's mapping is cleared, e.g. ``--config 'data_options={cifar10: null}'``; give the new
    keys in the same mapping to replace some of them: ``{cifar10: {train_size: null, ...}}``."""
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_config(
    user: dict[str, Any], preset_dir: str | Path, schema: str | Path | None = None
) -> dict[str, Any]:
    """Merge ``preset_dir/defaults.yaml``, the scale's ``preset_dir/<scale>.yaml`` and the
    user's values (``scale`` must be known), and validate the result against ``schema``
    (default: the workflow's ``schemas/config.schema.yaml`` beside ``preset_dir``).

    ``preset_dir`` is required: the presets are the workflow's (``workflow/presets`` of a
    checkout, where users edit them), never looked up from this package's location."""
    preset_dir = Path(preset_dir)
    schema = preset_dir.parent / "schemas" / "config.schema.yaml" if schema is None else schema
    scale = user.get("scale", "smoke")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: expected one of {', '.join(SCALES)}")
    defaults = load_yaml((preset_dir / "defaults.yaml").read_text())
    preset = load_yaml((preset_dir / f"{scale}.yaml").read_text()) or {}
    cfg = deep_merge(deep_merge(defaults, preset), _typed(user))
    cfg["scale"] = scale
    validate_config(cfg, Path(schema))
    return resolve_sources(cfg)


def validate_config(cfg: dict[str, Any], schema: Path = SCHEMA) -> None:
    """Raise ``ValueError`` with ONE line naming the first key of ``cfg`` that breaks the schema
    (``workflow/schemas/config.schema.yaml``); a no-op without ``jsonschema`` (a Snakemake
    dependency: the Snakefile validates again with Snakemake's own ``validate``)."""
    try:
        import jsonschema
    except ImportError:
        return
    validator = jsonschema.Draft202012Validator(load_yaml(schema.read_text()))
    error = jsonschema.exceptions.best_match(validator.iter_errors(cfg))
    while error is not None and error.context:  # anyOf/oneOf: the reason inside
        error = jsonschema.exceptions.best_match(error.context)
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise ValueError(f"bad configuration{' key ' + where if where else ''}: {error.message}")


def _typed(value: Any) -> Any:
    """Snakemake passes values nested in ``--config key={a: 1}`` on as strings ('1'): read
    every string as YAML (:func:`load_yaml`: ``1e-3`` is a number) so that numbers, booleans
    and null get their types back."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = load_yaml(value)
        except yaml.YAMLError:
            return value
        return parsed if isinstance(parsed, int | float | bool) or parsed is None else value
    return value


def available(cfg: dict, dataset: str) -> bool:
    return cfg["datasets"].get(dataset) is not None


# ------------------------------------------------------------------------------------------
# dataset sources: an entry may list several, the first one present is used
# ------------------------------------------------------------------------------------------
def resolve_sources(cfg: dict[str, Any], *, strict: bool = False) -> dict[str, Any]:
    """``cfg`` with every ``datasets`` entry that lists sources replaced by the first of them
    that is present (:func:`qac.data.first_present`: looks only at files; ``cifar10``/
    ``cifar100`` count as present when ``data_options.<dataset>.download`` is true), so that
    every job's options, fingerprint and the report's data note see one source. A plain string
    (or null) is kept as it is: the workflow's pre-run check reports it when it is missing.

    When none of a list is present the list is kept, so that dry runs, ``--lint`` and
    ``--list-target-rules`` work anywhere, and the pre-run check (``qac.data.check_source``,
    which takes the list) stops the run before any job with one line naming every place looked
    and the fix; ``strict=True`` raises that ``ValueError`` here instead (only for a dataset
    that a model of the grid needs).

    ``data_note`` may hold ``{source}`` (the source of every available dataset: the bare
    string for one, ``cifar10 = ..., imagenet = ...`` for several) and ``{<dataset>}`` (that
    dataset's source); a note without them gets ``(data: <source>)`` appended when a list was
    resolved, so that it always says which source was used."""
    from qac.data import DatasetNotFoundError, first_present

    root = Path(cfg.get("data_root", "data")).expanduser()
    datasets = cfg.get("datasets") or {}
    resolved: dict[str, str] = {}
    for dataset, entry in datasets.items():
        if not isinstance(entry, list):
            continue
        options = (cfg.get("data_options") or {}).get(dataset) or {}
        download = isinstance(options, dict) and options.get("download") is True
        try:
            datasets[dataset] = resolved[dataset] = first_present(
                entry, root=root, download=download
            )
        except DatasetNotFoundError as exc:
            if strict and dataset in {m.dataset for m in all_models(cfg)}:
                raise ValueError(
                    f"dataset {dataset}: {exc}; or pass --config datasets='{{{dataset}: "
                    f"SOURCE}}', or datasets='{{{dataset}: null}}' to skip the experiments "
                    "that need it"
                ) from None
        except ValueError as exc:  # a malformed source (DatasetError)
            raise ValueError(f"datasets.{dataset}: {exc}") from None
    if isinstance(cfg.get("data_note"), str):
        cfg["data_note"] = _data_note(cfg["data_note"], datasets, resolved)
    return cfg


def _sources_text(sources: dict[str, str]) -> str:
    """One source as it is; several as ``cifar10 = ..., imagenet = ...``."""
    if len(sources) == 1:
        return next(iter(sources.values()))
    return ", ".join(f"{d} = {s}" for d, s in sources.items())


def _data_note(note: str, datasets: dict, resolved: dict[str, str]) -> str:
    """``note`` with ``{source}`` and ``{<dataset>}`` filled in (:func:`resolve_sources`)."""
    given = {d: s if isinstance(s, str) else " or ".join(s) for d, s in datasets.items() if s}
    keys = {"source": _sources_text(given), **given}
    if any("{" + k + "}" in note for k in keys):
        for key, value in keys.items():
            note = note.replace("{" + key + "}", value)
        return note
    if not resolved:
        return note
    used = _sources_text(resolved)
    return f"{note.rstrip().rstrip('.')} (data: {used})" if note.strip() else f"data: {used}"


# ------------------------------------------------------------------------------------------
# which models each artifact needs
# ------------------------------------------------------------------------------------------
def _grid(exp: dict, entry: str | None = None, exclude: bool = False) -> list[tuple[str, str]]:
    """The (dataset, arch) pairs of one ``experiments`` grid: its ``models`` (a list, or a
    mapping whose entry ``entry`` is taken, or every other entry with ``exclude``), else every
    dataset with every architecture."""
    if "models" in exp:
        models = exp["models"]
        if isinstance(models, dict):
            names = [n for n in models if entry is None or (n == entry) != exclude]
            return [tuple(models[n]) for n in names]
        return [tuple(p) for p in models]
    return [(d, a) for d in exp["datasets"] for a in exp["archs"]]


def _main_pairs(cfg: dict, dataset: str | None = None) -> list[tuple[str, str]]:
    pairs = _grid(cfg["experiments"]["main"])
    return [p for p in pairs if dataset is None or p[0] == dataset]


def models_for(cfg: dict, artifact: str, *, include_unavailable: bool = False) -> list[Model]:
    """The models an artifact is computed from (:data:`qac.experiments.ARTIFACT_MODELS`; only
    available datasets unless asked)."""
    if artifact not in ARTIFACT_MODELS:
        raise ValueError(f"unknown artifact {artifact!r}: expected one of {list(ARTIFACTS)}")
    sel = ARTIFACT_MODELS[artifact]
    grid = cfg["experiments"][sel.grid]
    models = [
        Model(d, a, act)
        for d, a in _grid(grid, sel.entry, sel.exclude_entry)
        if sel.dataset is None or d == sel.dataset
        for act in sel.acts(grid)
    ]
    unique = sorted(set(models))
    return unique if include_unavailable else [m for m in unique if available(cfg, m.dataset)]


def all_models(cfg: dict) -> list[Model]:
    return sorted({m for art in ARTIFACTS for m in models_for(cfg, art)})


def needs_calibration(cfg: dict, model: Model) -> bool:
    return model.act == MAIN_ACT and (model.dataset, model.arch) in _main_pairs(cfg)


def skipped_items(cfg: dict) -> list[dict[str, str]]:
    """(artifact, dataset, arch, act, reason) for every model left out for lack of data."""
    rows = []
    for art in ARTIFACTS:
        for m in models_for(cfg, art, include_unavailable=True):
            if not available(cfg, m.dataset):
                rows.append(
                    {
                        "artifact": art,
                        "dataset": m.dataset,
                        "arch": m.arch,
                        "act": m.act,
                        "reason": f"{m.dataset} is not available at the {cfg['scale']} scale",
                    }
                )
    return rows


# ------------------------------------------------------------------------------------------
# what each job is given
# ------------------------------------------------------------------------------------------
def _activation(cfg: dict, act: str) -> dict[str, Any]:
    activation = Activation.parse(act)
    if not activation.quantized:  # the float ReLU takes no initial values
        return activation.options()
    init = cfg["qac_init"] if activation.case is not None else cfg["qcfs_init"]
    return {**activation.options(), **init}


def pretrain_model(cfg: dict, model: Model) -> Model | None:
    """The float (ReLU) model that ``model`` is fine-tuned from: ``<dataset>/<arch>/relu`` when
    the configuration's ``pretrain`` is set (a mapping of TrainConfig overrides) and ``model``
    is quantized; None when it trains from scratch (``pretrain: null``, the paper's recipe)."""
    if cfg.get("pretrain") is None or not model.activation.quantized:
        return None
    return Model(model.dataset, model.arch, FLOAT_ACT)


def checkpoint_dir(scale: str) -> str:
    """The directory of every checkpoint of ``scale`` (relative to the working directory)."""
    return f"checkpoints/{scale}"


def checkpoint_file(cfg: dict, model: Model) -> str:
    """Where the ``train`` rule writes ``model``'s checkpoint (relative to the working
    directory): ``checkpoints/<scale>/<dataset>/<arch>/<act>/model.pt``."""
    return f"{checkpoint_dir(cfg['scale'])}/{model.path}/model.pt"


def pretrain_models(cfg: dict) -> list[Model]:
    """The float pretraining models the grid's models are fine-tuned from (none by default)."""
    return sorted({p for m in all_models(cfg) if (p := pretrain_model(cfg, m)) is not None})


def train_options(cfg: dict, model: Model) -> dict[str, Any]:
    """The :class:`qac.train.TrainConfig` values of one training run.

    ``train`` <- ``train_overrides`` of the dataset, then of the architecture, then of the
    activation id (e.g. ``qac-c1``, ``qcfs-L2``); the float model (act ``relu``) then takes the
    ``pretrain`` overrides, and a quantized model whose :func:`pretrain_model` exists starts from
    its checkpoint (``init_from``). Without one (e.g. ``pretrain: null``) the run trains from
    scratch and ``init_threshold_percentile``, which reads the float model, is cleared.
    """
    opts = deep_merge(cfg["train"], {})
    for key in (model.dataset, model.arch, model.act):
        opts = deep_merge(opts, cfg.get("train_overrides", {}).get(key, {}))
    if not model.activation.quantized:
        opts = deep_merge(opts, cfg.get("pretrain") or {})
    source = pretrain_model(cfg, model)
    if source is not None:
        opts["init_from"] = checkpoint_file(cfg, source)
    elif opts.get("init_threshold_percentile") is not None:
        opts["init_threshold_percentile"] = None
    opts.update(
        {
            "arch": model.builder,
            "dataset": cfg["datasets"][model.dataset],
            "data_root": cfg["data_root"],
            "cache_dir": cfg.get("cache_dir"),
            "data_options": cfg.get("data_options", {}).get(model.dataset, {}),
            "width": cfg["widths"].get(model.arch, 1.0),
            "activation": _activation(cfg, model.act),
            "device": cfg["device"],
            "progress": False,
        }
    )
    return opts


def eval_arguments(cfg: dict, model: Model) -> list[str]:
    """``qac evaluate`` arguments: the SNN settings every artifact using ``model`` needs.

    A main (Case-4, calibrated) model is evaluated with the main policy before and after
    calibration, and with averaging at every boundary (``aver+aver+aver``, the SNN equal to its
    quantized ANN) in float32 before and after calibration (the columns beside the main
    policy in Tables 1/2/7 and 3, and beside k = 1 in Table 5, where it is the quantized ANN's
    accuracy that the main policy approaches; k-scaling is not repeated for it) and in float64
    (the exactness check).

    ``evaluation.limit`` limits every result to a class-balanced subset of the test set;
    ``evaluation.sweep_limit`` (QCFS models) limits only their T sweep (Table 8), when it is
    smaller (see :func:`sweep_limit`).
    """
    exp = cfg["experiments"]
    pair = (model.dataset, model.arch)
    settings: list[str] = []
    if model.act == MAIN_ACT:
        for name in ("main", "alignment", "scaling"):
            if pair in _grid(exp[name]):
                settings += [s.format() for s in grid_settings(name, exp[name], cfg["main_policy"])]
    args: list[str] = []
    for s in dict.fromkeys(settings):  # unique, in order
        args += ["--snn", s]
    ev = cfg["evaluation"]
    if model.activation.levels is not None:
        args += ["--sweep", ",".join(str(T) for T in exp["qcfs"]["timesteps"])]
        if sweep_limit(cfg) is not None:
            args += ["--sweep-limit", str(sweep_limit(cfg))]
    args += ["--model-id", model.path]
    if ev.get("limit"):
        args += ["--limit", str(ev["limit"])]
    args += ["--batch-size", str(ev["batch_size"]), "--device", str(cfg["device"])]
    return args


def sweep_limit(cfg: dict) -> int | None:
    """The number of test images of the QCFS T sweeps (Table 8) when it is fewer than every
    other result's (``evaluation.sweep_limit`` below ``evaluation.limit``), else None (the
    sweeps use the same images)."""
    ev = cfg["evaluation"]
    n, limit = ev.get("sweep_limit"), ev.get("limit")
    return n if n and (not limit or n < limit) else None


def calibration_arguments(cfg: dict) -> list[str]:
    c = cfg["calibration"]
    args = [
        "--policy", cfg["main_policy"],
        "--epochs", str(c["epochs"]),
        "--samples", str(c["samples"]),
        "--lr", str(c["lr"]),
        "--calib-batch-size", str(c["batch_size"]),
        "--v0-shape", str(c.get("v0_shape", "channel")),
        "--source", str(c.get("source", "train")),
        "--optimizer", str(c.get("optimizer", "adam")),
        "--device", str(cfg["device"]),
    ]  # fmt: skip
    if not c.get("revert_if_worse", True):
        args.append("--no-revert")
    if cfg["evaluation"].get("limit"):
        args += ["--limit", str(cfg["evaluation"]["limit"])]
    return args


SKIPPED_FIELDS = ["artifact", "dataset", "arch", "act", "reason"]


def write_skipped(cfg: dict, path: str | Path) -> None:
    """Write :func:`skipped_items` as CSV (atomically; a header only when nothing is skipped)."""
    from qac.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SKIPPED_FIELDS)
        writer.writeheader()
        writer.writerows(skipped_items(cfg))


def main(argv: list[str] | None = None) -> int:
    """``python -m qac.workflow [--scale S] [--presets DIR]``: list the models the grid trains
    at a scale (presets: ``workflow/presets`` of the current directory unless given)."""
    parser = argparse.ArgumentParser(prog="python -m qac.workflow", description=main.__doc__)
    parser.add_argument("--scale", default="smoke", choices=SCALES)
    parser.add_argument("--presets", type=Path, default=Path("workflow", "presets"))
    args = parser.parse_args(argv)
    cfg = resolve_config({"scale": args.scale}, args.presets)
    for m in all_models(cfg):
        print(m.path)
    for row in skipped_items(cfg):
        print(f"skipped: {row['artifact']} {row['dataset']}/{row['arch']}/{row['act']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
