"""The experiment specification: the vocabulary of the paper's experiments and which models,
SNN settings and tidy rows each table and figure is made of.

Everything that names a dataset, an architecture, an activation, an alignment policy or an
artifact reads it from here: the command line (``qac evaluate --snn``), the workflow's job grid
(:mod:`qac.workflow`, the Snakefile's wildcard constraints), the collector
(:mod:`qac.report.collect`) and the tables and figures. The workflow's configuration schema
(``workflow/schemas/config.schema.yaml``) spells its enums out for Snakemake; a test checks
them against this module.

* vocabulary: :data:`DATASETS`, :data:`ARCHITECTURES`, :data:`CASES`, activation ids
  (:class:`Activation`: ``qac-c<case>``, ``qcfs-L<levels>``; ``relu``, :data:`FLOAT_ACT`, the
  float pretraining model of the workflow's ``pretrain``, in no artifact), alignment policies
  (:data:`POLICIES`, from :data:`qac.align.POLICIES`), artifacts (:data:`TABLES`,
  :data:`FIGURES`);
* :class:`SNNSetting`: one SNN evaluation setting, on disk ``POLICY[,k=K][,v0=V][,T=N][,cal]
  [,f64]``;
* :data:`ARTIFACT_MODELS`: the models of each artifact (a grid of the configuration's
  ``experiments`` and the activations over it); :func:`grid_settings`: the SNN settings each
  grid's models are evaluated with;
* :data:`RUN_ROWS`: the tidy rows each SNN run gives (table, quantity, setting predicate,
  key columns), applied by :func:`qac.report.collect.collect`.

Adding an architecture: add it to :data:`ARCHITECTURE_LABELS` (and to the schema's
``arch_id`` enum, which the test compares). Adding an alignment policy: register it in
:data:`qac.align.POLICIES` (and the schema's ``policy`` enum); a two-part policy joins Table 4.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from qac.align import POLICIES as _ALIGN_POLICIES
from qac.align import AlignmentPolicy

__all__ = [
    "DATASET_LABELS",
    "DATASETS",
    "ARCHITECTURE_LABELS",
    "ARCHITECTURES",
    "ARCH_LABELS",
    "CASES",
    "MAIN_CASE",
    "FLOAT_ACT",
    "ACT_PATTERN",
    "Activation",
    "MAIN_ACT",
    "Model",
    "POLICIES",
    "ALIGNMENT_POLICIES",
    "ALL_AVER",
    "MAIN_POLICY",
    "SNNSetting",
    "TABLES",
    "FIGURES",
    "ARTIFACTS",
    "FIGURE_FILES",
    "FIGURE_NAMES",
    "EXTRA_TABLES",
    "RESULT_TABLE",
    "TABLE_DATASET",
    "FIG2_CELLS",
    "Selection",
    "ARTIFACT_MODELS",
    "grid_settings",
    "Match",
    "RunRow",
    "RUN_ROWS",
    "EXACTNESS",
    "RESULT",
    "RECORD_FORMAT",
    "record_fields",
    "record_value",
]

# ------------------------------------------------------------------------------ vocabulary
#: Datasets, in the order of every table and figure, with their labels.
DATASET_LABELS: dict[str, str] = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "imagenet": "ImageNet",
}
DATASETS: tuple[str, ...] = tuple(DATASET_LABELS)
#: Architectures we train (:func:`qac.models.build` names), in Table 1's order.
ARCHITECTURE_LABELS: dict[str, str] = {
    "vgg16": "VGG-16",
    "resnet18": "ResNet-18",
    "resnet20": "ResNet-20",
}
ARCHITECTURES: tuple[str, ...] = tuple(ARCHITECTURE_LABELS)
#: Labels of every architecture a table shows: ours and those of the literature rows.
ARCH_LABELS: dict[str, str] = {
    "vgg9": "VGG-9",
    **ARCHITECTURE_LABELS,
    "resnet19": "ResNet-19",
    "resnet34": "ResNet-34",
    "sew_resnet34": "SEW ResNet-34",
    "modified_plif_net": "Modified PLIF Net",
}
#: The four QAC quantization-parameter cases of Sec. 5.1; the main results use case 4.
CASES: tuple[int, ...] = (1, 2, 3, 4)
MAIN_CASE = 4
#: The float (ReLU) activation id: the pretrained model that quantized models may be fine-tuned
#: from (the workflow's ``pretrain``); it belongs to no table or figure of the paper.
FLOAT_ACT = "relu"
#: Activation ids (a regular expression without groups, e.g. for Snakemake's wildcards).
ACT_PATTERN = rf"qac-c[{''.join(str(c) for c in CASES)}]|qcfs-L[1-9][0-9]*|{FLOAT_ACT}"
_ACT_RE = re.compile(rf"qac-c(?P<case>[0-9]+)|qcfs-L(?P<levels>[0-9]+)|(?P<float>{FLOAT_ACT})")


@dataclass(frozen=True, order=True)
class Activation:
    """A model's activation id: QAC ``qac-c<case>``, the QCFS baseline ``qcfs-L<levels>``, or
    the float ReLU ``relu`` (neither case nor levels: a pretraining model, never converted)."""

    case: int | None = None
    levels: int | None = None

    def __post_init__(self) -> None:
        if self.case is not None and self.levels is not None:
            raise ValueError("an activation has a QAC case or QCFS levels (not both)")
        if self.case is not None and self.case not in CASES:
            raise ValueError(f"QAC case {self.case} is not one of {CASES}")
        if self.levels is not None and self.levels < 1:
            raise ValueError(f"QCFS levels must be >= 1, got {self.levels}")

    @classmethod
    def parse(cls, text: str) -> Activation:
        """``qac-c4`` -> ``Activation(case=4)``; ``ValueError`` for anything else."""
        m = _ACT_RE.fullmatch(str(text))
        bad = f"activation {text!r} is neither qac-c1..qac-c{CASES[-1]}, qcfs-L<L> nor {FLOAT_ACT}"
        if not m:
            raise ValueError(bad)
        try:
            if m["case"]:
                return cls(case=int(m["case"]))
            if m["levels"]:
                return cls(levels=int(m["levels"]))
            return cls()
        except ValueError:
            raise ValueError(bad) from None

    def format(self) -> str:
        if self.case is not None:
            return f"qac-c{self.case}"
        return f"qcfs-L{self.levels}" if self.levels is not None else FLOAT_ACT

    __str__ = format

    @property
    def quantized(self) -> bool:
        """Whether the activation is a quantizer (QAC or QCFS), i.e. not the float ReLU."""
        return self.case is not None or self.levels is not None

    @property
    def method(self) -> str:
        """The tidy rows' ``method``: ``QAC`` or ``QCFS`` (``ReLU`` for the float model)."""
        if self.case is not None:
            return "QAC"
        return "QCFS" if self.levels is not None else "ReLU"

    def options(self) -> dict[str, Any]:
        """The activation options of :class:`qac.train.TrainConfig` (without initial values)."""
        if self.case is not None:
            return {"name": "qac", "case": self.case}
        if self.levels is not None:
            return {"name": "qcfs", "levels": self.levels}
        return {"name": FLOAT_ACT}


MAIN_ACT = Activation(case=MAIN_CASE).format()


@dataclass(frozen=True, order=True)
class Model:
    """A model id ``<dataset>/<arch>/<act>`` (its checkpoint and evaluation paths)."""

    dataset: str
    arch: str
    act: str

    @property
    def path(self) -> str:
        return f"{self.dataset}/{self.arch}/{self.act}"

    @property
    def builder(self) -> str:
        """The :func:`qac.models.build` name: ImageNet uses the ImageNet variants."""
        return f"{self.arch}_imagenet" if self.dataset == "imagenet" else self.arch

    @property
    def activation(self) -> Activation:
        return Activation.parse(self.act)

    def to_json(self) -> dict[str, str]:
        return {"dataset": self.dataset, "arch": self.arch, "act": self.act}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Model:
        """A model id from its record (``{"dataset", "arch", "act"}``); ``ValueError`` when a
        field is missing or the activation id is not one."""
        missing = [k for k in ("dataset", "arch", "act") if not data.get(k)]
        if missing:
            raise ValueError(f"model record lacks {missing}")
        model = cls(str(data["dataset"]), str(data["arch"]), str(data["act"]))
        model.activation  # noqa: B018 (validates the activation id)
        return model

    @classmethod
    def parse(cls, text: str) -> Model:
        """``cifar10/resnet20/qac-c4`` -> a model id."""
        parts = str(text).split("/")
        if len(parts) != 3:
            raise ValueError(f"model id {text!r}: expected <dataset>/<arch>/<act>")
        return cls.from_json(dict(zip(("dataset", "arch", "act"), parts, strict=True)))


# ------------------------------------------------------------------------------ policies
#: Alignment policies an SNN setting may name: the canonical names of qac.align's registry
#: (its QCFS aliases ``qcfs``/``qcfs+aver`` are for the Table 8 sweep).
POLICIES: tuple[str, ...] = tuple(n for n, p in _ALIGN_POLICIES.items() if p.name == n)
#: Table 4's policies: those that leave equal-T boundaries alone.
ALIGNMENT_POLICIES: tuple[str, ...] = tuple(
    n for n in POLICIES if _ALIGN_POLICIES[n].equal == "none"
)
#: Averaging at every boundary: the SNN equal to its quantized ANN.
ALL_AVER: str = AlignmentPolicy("average", "average", "average").name
#: The default policy of the headline results (the configuration's ``main_policy``).
MAIN_POLICY = "aver+aver"

_SNN_USAGE = "use POLICY[,k=K][,v0=V][,T=N][,cal][,f64]"


def _int_at_least_1(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"must be >= 1, got {value}")
    return value


def _v0(value: str | float) -> str | float:
    if value in ("half", "zero"):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"v0 takes half, zero or a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"v0 must be finite, got {value!r}")
    return number


@dataclass(frozen=True)
class SNNSetting:
    """One SNN evaluation setting: alignment ``policy``, temporal scale ``k``, initial membrane
    potential ``v0``, a common T for every layer (``timesteps``, QCFS), calibrated neurons
    (``cal``) and double precision (``f64``). On disk and on the command line it is the string
    ``POLICY[,k=K][,v0=V][,T=N][,cal][,f64]`` (:meth:`parse`, :meth:`format`)."""

    policy: str
    k: int = 1
    v0: str | float = "half"
    timesteps: int | None = None
    cal: bool = False
    f64: bool = False

    def __post_init__(self) -> None:
        AlignmentPolicy.parse(self.policy)  # ValueError naming the known policies
        _int_at_least_1(str(self.k))
        if self.timesteps is not None:
            _int_at_least_1(str(self.timesteps))
        object.__setattr__(self, "v0", _v0(self.v0))

    @classmethod
    def parse(cls, text: str) -> SNNSetting:
        """``"aver+aver,k=2,cal"`` -> a setting; ``ValueError`` (one line) otherwise."""
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        if not parts:
            raise ValueError(f"empty setting: {_SNN_USAGE}")
        values: dict[str, Any] = {"policy": parts[0]}
        try:
            for part in parts[1:]:
                key, eq, value = part.partition("=")
                if key in ("cal", "f64") and not eq:
                    values[key] = True
                elif key in ("k", "T") and value:
                    values["timesteps" if key == "T" else key] = _int_at_least_1(value)
                elif key == "v0" and value:
                    values["v0"] = _v0(value)
                else:
                    raise ValueError(f"unknown part {part!r}: {_SNN_USAGE}")
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"bad setting {text!r}: {exc}") from None

    def format(self) -> str:
        text = self.policy
        if self.k != 1:
            text += f",k={self.k}"
        if self.v0 != "half":
            text += f",v0={self.v0}"
        if self.timesteps is not None:
            text += f",T={self.timesteps}"
        for flag in ("cal", "f64"):
            if getattr(self, flag):
                text += f",{flag}"
        return text

    __str__ = format

    @property
    def plain(self) -> bool:
        """k = 1, default v0, per-layer T and float32: the setting a table cell means."""
        return self.k == 1 and self.v0 == "half" and self.timesteps is None and not self.f64

    def to_json(self) -> dict[str, Any]:
        """The structured record of an evaluation's SNN run (``setting_fields``)."""
        return {
            "policy": self.policy,
            "k": self.k,
            "v0": self.v0,
            "T": self.timesteps,
            "cal": self.cal,
            "f64": self.f64,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SNNSetting:
        return cls(
            policy=str(data["policy"]),
            k=int(data.get("k") or 1),
            v0=data.get("v0") if data.get("v0") is not None else "half",
            timesteps=None if data.get("T") is None else int(data["T"]),
            cal=bool(data.get("cal")),
            f64=bool(data.get("f64")),
        )

    @classmethod
    def of_run(cls, run: Mapping[str, Any]) -> SNNSetting:
        """The setting an evaluation's SNN run was made with: its ``setting_fields``, else its
        ``setting`` string, else (oldest files) its ``policy``/``temporal_scale`` fields; ``cal``
        also when the run says it was calibrated. ``f64`` is the setting's own flag (the
        float64 exactness check); only the oldest files, which carry no setting, take it from
        the run's dtype. A model trained in float64 (the smoke scale) runs every setting in
        float64, and its plain settings stay plain."""
        legacy = False
        if isinstance(run.get("setting_fields"), Mapping):
            setting = cls.from_json(run["setting_fields"])
        elif isinstance(run.get("setting"), str) and run["setting"].strip():
            setting = cls.parse(run["setting"])
        elif run.get("policy"):
            setting = cls(str(run["policy"]), k=int(run.get("temporal_scale") or 1))
            legacy = True
        else:
            raise ValueError(f"SNN run without setting or policy: {sorted(run)}")
        cal = setting.cal or bool(run.get("calibrated"))
        f64 = setting.f64 or (legacy and run.get("dtype") == "float64")
        if (cal, f64) == (setting.cal, setting.f64):
            return setting
        return cls(setting.policy, setting.k, setting.v0, setting.timesteps, cal, f64)

    def key(self, name: str) -> Any:
        """A tidy key column's value for this setting: ``k``, ``alignment`` (the policy) or
        ``calibration`` (``base``/``base+cal``)."""
        if name == "k":
            return self.k
        if name == "alignment":
            return self.policy
        if name == "calibration":
            return "base+cal" if self.cal else "base"
        raise KeyError(name)


# ------------------------------------------------------------------------------ artifacts
#: The paper's tables and the figures the workflow draws (``figs5_10`` is Figs. 5-10).
TABLES: tuple[str, ...] = tuple(f"table{i}" for i in range(1, 9))
FIGURES: tuple[str, ...] = ("fig1", "fig2", "fig3", "figs5_10", "fig_table8")
ARTIFACTS: tuple[str, ...] = TABLES + FIGURES
#: File stems each figure name writes (each as .png and .pdf).
FIGURE_FILES: dict[str, tuple[str, ...]] = {
    **{n: (n,) for n in FIGURES if n != "figs5_10"},
    "figs5_10": tuple(f"fig{i}" for i in range(5, 11)),
}
#: Every name a figure can be drawn by: the artifacts and each of Figs. 5-10.
FIGURE_NAMES: tuple[str, ...] = FIGURES + FIGURE_FILES["figs5_10"]
#: Tidy tables of ours without a paper table: ``fig2`` (per case), ``energy``, ``exactness``.
EXTRA_TABLES: tuple[str, ...] = ("fig2", "energy", "exactness")
#: Dataset -> the paper table of its headline (case 4, calibrated) results.
RESULT_TABLE: dict[str, str] = {"cifar10": "table1", "cifar100": "table7", "imagenet": "table2"}
TABLE_DATASET: dict[str, str] = {t: d for d, t in RESULT_TABLE.items()}
#: Panels of the paper's Fig. 2/11 (ResNet-20 and VGG-16 on CIFAR-10 and CIFAR-100).
FIG2_CELLS: tuple[tuple[str, str], ...] = (
    ("cifar10", "resnet20"),
    ("cifar10", "vgg16"),
    ("cifar100", "resnet20"),
    ("cifar100", "vgg16"),
)


@dataclass(frozen=True)
class Selection:
    """The models of an artifact: the (dataset, arch) pairs of the configuration's
    ``experiments[grid]`` (only ``dataset``'s; only its ``models`` entry named ``entry``, or
    all but that one with ``exclude_entry``), each with the main activation or, with ``over``,
    one activation per value of the grid's ``cases`` (QAC) or ``levels`` (QCFS)."""

    grid: str
    over: Literal["cases", "levels"] | None = None
    dataset: str | None = None
    entry: str | None = None
    exclude_entry: bool = False

    def acts(self, grid: Mapping[str, Any]) -> list[str]:
        if self.over == "cases":
            return [Activation(case=int(c)).format() for c in grid["cases"]]
        if self.over == "levels":
            return [Activation(levels=int(L)).format() for L in grid["levels"]]
        return [MAIN_ACT]


#: Which models each artifact is computed from.
ARTIFACT_MODELS: dict[str, Selection] = {
    **{table: Selection("main", dataset=d) for table, d in TABLE_DATASET.items()},
    "table3": Selection("main"),
    "table6": Selection("main"),
    "table4": Selection("alignment"),
    "table5": Selection("scaling"),
    "fig3": Selection("scaling"),
    "table8": Selection("qcfs", over="levels"),
    "fig_table8": Selection("qcfs", over="levels"),  # Table 8 drawn: accuracy against T
    "fig2": Selection("cases", over="cases"),
    "fig1": Selection("layers", entry="fig1"),
    "figs5_10": Selection("layers", over="cases", entry="fig1", exclude_entry=True),
}
assert set(ARTIFACT_MODELS) == set(ARTIFACTS)


def grid_settings(name: str, grid: Mapping[str, Any], main_policy: str) -> list[SNNSetting]:
    """The SNN settings the main-activation models of ``experiments[name]`` are evaluated with.

    ``main``: the main policy before and after calibration, and averaging at every boundary
    (the SNN equal to its quantized ANN) before and after calibration and in float64 (the
    exactness check); ``alignment``: each of the grid's ``policies``; ``scaling``: the main
    policy at each temporal scale ``k``. Other grids need no SNN settings.
    """
    if name == "main":
        return [
            SNNSetting(main_policy),
            SNNSetting(main_policy, cal=True),
            SNNSetting(ALL_AVER),
            SNNSetting(ALL_AVER, cal=True),
            SNNSetting(ALL_AVER, f64=True),
        ]
    if name == "alignment":
        return [SNNSetting(str(p)) for p in grid["policies"]]
    if name == "scaling":
        return [SNNSetting(main_policy, k=int(k)) for k in grid["k"]]
    return []


# ------------------------------------------------------------------------------ tidy rows
#: Placeholder table of :class:`RunRow`: the dataset's :data:`RESULT_TABLE`.
RESULT = "<result>"


@dataclass(frozen=True)
class Match:
    """A predicate on an SNN run's (effective) setting.

    ``policy``: ``"main"`` (the configured main policy), ``"alignment"`` (any of
    :data:`ALIGNMENT_POLICIES`) or a policy name (with ``not_main``: only while it is not the
    main policy); ``cal``/``f64``: required value (``None``: either); ``any_k``: any temporal
    scale (else k = 1). The v0 must be the default and T per layer.
    """

    policy: str
    cal: bool | None = None
    f64: bool | None = False
    any_k: bool = False
    not_main: bool = False

    def __call__(self, s: SNNSetting, main_policy: str) -> bool:
        if self.policy == "main":
            policy_ok = s.policy == main_policy
        elif self.policy == "alignment":
            policy_ok = s.policy in ALIGNMENT_POLICIES
        else:
            policy_ok = s.policy == self.policy and not (self.not_main and s.policy == main_policy)
        return (
            policy_ok
            and (self.cal is None or s.cal == self.cal)
            and (self.f64 is None or s.f64 == self.f64)
            and (self.any_k or s.k == 1)
            and s.v0 == "half"
            and s.timesteps is None
        )


@dataclass(frozen=True)
class RunRow:
    """One tidy row per model and matching SNN run: ``quantity`` of the run (or of the model's
    ANN block, ``source="ann"``) in ``table`` (:data:`RESULT`: the dataset's result table),
    with key columns ``keys`` taken from the setting (:meth:`SNNSetting.key`) and ``fixed``.
    Only models of the main activation unless ``any_model``; the first matching run of a
    (table, quantity, keys) wins; ``optional``: no row (and no error) when the quantity is
    missing; ``cal_note``: a calibrated run's note says when calibration was reverted."""

    table: str
    quantity: str
    when: Match
    keys: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    source: Literal["run", "ann"] = "run"
    any_model: bool = False
    optional: bool = False
    cal_note: bool = True


_MAIN_CAL = Match("main", cal=True)
_AVER = {"alignment": ALL_AVER}
_ENERGY_QUANTITIES = ("firing_rate", "energy_pj_per_sample", "ann_energy_pj_per_sample")

#: The tidy rows of SNN runs, in the order collect emits them for each run; groups (tables of
#: the main models, then energy of every model) run over all runs one after the other.
RUN_ROWS: tuple[tuple[RunRow, ...], ...] = (
    (
        # Tables 1/2/7 and 6: the main policy after calibration
        RunRow(RESULT, "ann_acc", _MAIN_CAL, source="ann"),
        RunRow(RESULT, "avg_timesteps", _MAIN_CAL),
        RunRow(RESULT, "snn_acc", _MAIN_CAL),
        RunRow("table6", "avg_timesteps", _MAIN_CAL),
        RunRow("table6", "snn_acc", _MAIN_CAL),
        # Table 3: before and after calibration; Table 5: the temporal scale k
        RunRow("table3", "snn_acc", Match("main"), keys=("calibration",)),
        RunRow("table5", "snn_acc", Match("main", cal=False, any_k=True), keys=("k",)),
        # averaging at every boundary, beside the main policy (Tables 1/2/7, 3, 5)
        RunRow(RESULT, "snn_acc", Match(ALL_AVER, cal=True, not_main=True), fixed=_AVER),
        RunRow("table3", "snn_acc", Match(ALL_AVER, not_main=True), ("calibration",), _AVER),
        RunRow("table5", "snn_acc", Match(ALL_AVER, cal=False, not_main=True), fixed=_AVER),
        # Table 4: the alignment ablation (uncalibrated)
        RunRow("table4", "snn_acc", Match("alignment", cal=False), keys=("alignment",)),
    ),
    tuple(
        RunRow(
            "energy",
            q,
            Match("main"),
            keys=("calibration",),
            any_model=True,
            optional=True,
            cal_note=False,
        )
        for q in _ENERGY_QUANTITIES
    ),
)
#: Exactness (claim C1): the uncalibrated run with averaging everywhere, float64 preferred,
#: beside the ANN accuracy in the same precision.
EXACTNESS = Match(ALL_AVER, cal=False, f64=None)


# ------------------------------------------------------------------------------ records
#: Format of the evaluation records (``qac evaluate`` JSON, :func:`qac.evaluate.write_evaluation`):
#: 2 = model id (``model``), structured settings (``setting_fields``), infinity as null + flag.
#: Files without ``format`` are older: their model id is their path, infinity the string "inf".
RECORD_FORMAT = 2
_INFINITE = "_infinite"
_NEGATIVE_INFINITE = "_negative_infinite"
_NON_FINITE_TEXT = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _non_finite(value: Any) -> float | None:
    """``value`` as a non-finite float (``inf``, ``-inf``, ``nan``, also spelt as text), else
    ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    if isinstance(value, str) and value in _NON_FINITE_TEXT:
        return _NON_FINITE_TEXT[value]
    return None


def record_fields(obj: Any) -> Any:
    """``obj`` (JSON-like) with every non-finite number replaced for a record: in a mapping,
    ``key: inf`` becomes ``key: null`` plus ``key_infinite: true`` (``-inf``:
    ``key_negative_infinite: true``; NaN: ``null`` alone); in a list, ``null``. The strings
    ``"inf"``/``"-inf"``/``"nan"`` of older writers count as numbers."""
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            special = _non_finite(value)
            if special is None:
                out[str(key)] = record_fields(value)
                continue
            out[str(key)] = None
            if math.isinf(special):
                out[f"{key}{_INFINITE if special > 0 else _NEGATIVE_INFINITE}"] = True
        return out
    if isinstance(obj, list | tuple):
        return [None if _non_finite(v) is not None else record_fields(v) for v in obj]
    return obj


def record_value(block: Mapping[str, Any], key: str) -> Any:
    """The number ``block[key]`` of a record, ``inf`` where its flag says so (see
    :func:`record_fields`); older records' values (``"inf"`` strings) are returned as they are.
    ``KeyError`` when the record has neither the key nor its flag."""
    if block.get(f"{key}{_INFINITE}"):
        return math.inf
    if block.get(f"{key}{_NEGATIVE_INFINITE}"):
        return -math.inf
    return block[key]
