"""Sampling uncertainty of test accuracies: per-image records, intervals, paired comparisons.

Per-image record (``qac evaluate`` writes one beside every accuracy)::

    {"n": 10000, "correct": "<base64>", "labels": "<16 hex>"}

``correct`` is ``base64(numpy.packbits(hits))`` over the test set in dataset order (bit 1 =
image classified correctly, most significant bit first, the last byte zero-padded): 10,000
images take 1,668 characters. ``labels`` is the first 16 hex digits of the SHA-256 of the label
vector (int64, little-endian): two records can be paired image by image only when their ``n``
and ``labels`` agree (same test images in the same order).

Statistics (95 % unless ``level`` says otherwise; every difference is A - B in percentage
points):

* one accuracy: Wilson score interval (``statsmodels`` ``proportion_confint``);
* two accuracies on the same images (paired): exact McNemar test on the discordant images
  (b = A right and B wrong, c = A wrong and B right) and the exact interval of the difference
  (b - c) / n conditional on the m = b + c discordant images, i.e. the Clopper-Pearson
  interval of b / m mapped by d = (2 p - 1) m / n. The central exact McNemar test and this
  interval are dual: p < 1 - level exactly when the interval excludes 0. Identical
  predictions (m = 0) give the interval [0, 0];
* two accuracies without per-image data but with known n (unpaired): Newcombe's hybrid score
  interval (``statsmodels`` ``confint_proportions_2indep(method="newcomb")``);
* neither: the point difference only (``method="point"``).

Verdicts on an interval [lo, hi] (see :func:`verdict_greater`, :func:`verdict_not_lower`,
:func:`verdict_within`) are ``holds``, ``fails`` or ``inconclusive``.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "Verdict",
    "PerImage",
    "Accuracy",
    "Difference",
    "pack_bits",
    "unpack_bits",
    "labels_fingerprint",
    "wilson_interval",
    "mcnemar_exact",
    "paired_difference",
    "unpaired_difference",
    "accuracy_difference",
    "verdict_greater",
    "verdict_not_lower",
    "verdict_within",
    "combine",
]

Verdict = Literal["holds", "fails", "inconclusive"]
LEVEL = 0.95


# ----------------------------------------------------------------------------- records


def pack_bits(hits: np.ndarray | Iterable[bool]) -> str:
    """``base64(numpy.packbits(hits))`` (ASCII)."""
    arr = np.asarray(hits, dtype=bool).ravel()
    return base64.b64encode(np.packbits(arr).tobytes()).decode("ascii")


def unpack_bits(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: a bool array of length ``n``."""
    raw = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    if raw.size != (n + 7) // 8:
        raise ValueError(f"per-image record holds {raw.size * 8} bits, expected {n}")
    return np.unpackbits(raw, count=n).astype(bool)


def labels_fingerprint(labels: np.ndarray | Iterable[int]) -> str:
    """First 16 hex digits of the SHA-256 of the labels as little-endian int64."""
    arr = np.asarray(labels, dtype="<i8").ravel()
    return hashlib.sha256(arr.tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class PerImage:
    """Which test images a model classified correctly (dataset order)."""

    correct: np.ndarray
    labels: str | None = None

    @property
    def n(self) -> int:
        return int(self.correct.size)

    @property
    def accuracy(self) -> float:
        """Accuracy in percent (0 for an empty test set)."""
        return 100.0 * float(self.correct.sum()) / max(self.n, 1)

    @classmethod
    def from_predictions(cls, hits: Iterable[Any], labels: Iterable[Any]) -> PerImage:
        """From per-batch hit and label tensors/arrays (concatenated in order)."""
        hit = [np.asarray(h, dtype=bool).ravel() for h in hits]
        lab = [np.asarray(x).ravel() for x in labels]
        correct = np.concatenate(hit) if hit else np.zeros(0, dtype=bool)
        return cls(correct, labels_fingerprint(np.concatenate(lab)) if lab else None)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "correct": pack_bits(self.correct), "labels": self.labels}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> PerImage:
        return cls(unpack_bits(str(record["correct"]), int(record["n"])), record.get("labels"))


# ----------------------------------------------------------------------------- intervals


def wilson_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials, in percent."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return (math.nan, math.nan)
    lo, hi = proportion_confint(int(k), int(n), alpha=1 - level, method="wilson")
    return (100.0 * float(lo), 100.0 * float(hi))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``."""
    from statsmodels.stats.contingency_tables import mcnemar

    if b + c == 0:
        return 1.0
    return float(mcnemar([[0, b], [c, 0]], exact=True).pvalue)


@dataclass(frozen=True)
class Accuracy:
    """An accuracy (percent) with what is known about its sample."""

    value: float
    n: int | None = None
    per_image: PerImage | None = None


@dataclass(frozen=True)
class Difference:
    """A - B in percentage points with its interval.

    ``method`` is ``paired`` (exact McNemar, ``p_value`` and the discordant counts ``b`` =
    images only A gets right, ``c`` = only B; ``only_a``/``only_b`` in :meth:`as_dict`),
    ``unpaired`` (Newcombe from n) or ``point`` (``low == high == estimate``).
    """

    estimate: float
    low: float
    high: float
    method: Literal["paired", "unpaired", "point"]
    n: int | None = None
    p_value: float | None = None
    b: int | None = None
    c: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "diff": self.estimate,
            "ci_low": self.low,
            "ci_high": self.high,
            "method": self.method,
        }
        if self.n is not None:
            out["n"] = self.n
        if self.p_value is not None:
            out.update(p_mcnemar=self.p_value, only_a=self.b, only_b=self.c)
        return out

    def describe(self) -> str:
        """``+1.23 pp [-0.40, +2.90] (paired, p=0.14)``."""
        text = f"{self.estimate:+.2f} pp"
        if self.method != "point":
            text += f" [{self.low:+.2f}, {self.high:+.2f}]"
        extra = f", p={self.p_value:.2g}" if self.p_value is not None else ""
        return f"{text} ({self.method}{extra})"


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> Difference:
    """A - B on the same images (``a``, ``b``: per-image correctness) with the exact
    interval conditional on the discordant images (see the module docstring)."""
    from statsmodels.stats.proportion import proportion_confint

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired records need the same non-zero length, got {a.size}/{b.size}")
    n = int(a.size)
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    m = n10 + n01
    est = 100.0 * (n10 - n01) / n
    if m == 0:
        return Difference(0.0, 0.0, 0.0, "paired", n, 1.0, 0, 0)
    p_lo, p_hi = proportion_confint(n10, m, alpha=1 - level, method="beta")
    scale = 100.0 * m / n
    lo, hi = scale * (2 * float(p_lo) - 1), scale * (2 * float(p_hi) - 1)
    return Difference(est, lo, hi, "paired", n, mcnemar_exact(n10, n01), n10, n01)


def unpaired_difference(
    acc_a: float, n_a: int, acc_b: float, n_b: int, level: float = LEVEL
) -> Difference:
    """A - B from accuracies (percent) and sample sizes: Newcombe's hybrid score interval."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    k_a, k_b = round(acc_a * n_a / 100.0), round(acc_b * n_b / 100.0)
    lo, hi = confint_proportions_2indep(
        k_a, n_a, k_b, n_b, method="newcomb", compare="diff", alpha=1 - level
    )
    return Difference(acc_a - acc_b, 100.0 * float(lo), 100.0 * float(hi), "unpaired")


def _pairable(a: Accuracy, b: Accuracy) -> bool:
    pa, pb = a.per_image, b.per_image
    if pa is None or pb is None or pa.n != pb.n or pa.n == 0:
        return False
    return pa.labels is None or pb.labels is None or pa.labels == pb.labels


def accuracy_difference(a: Accuracy, b: Accuracy, level: float = LEVEL) -> Difference:
    """A - B: paired when both carry per-image records of the same test images, else
    unpaired when both ``n`` are known, else the point difference."""
    if _pairable(a, b):
        return paired_difference(a.per_image.correct, b.per_image.correct, level)
    if a.n and b.n:
        return unpaired_difference(a.value, a.n, b.value, b.n, level)
    d = a.value - b.value
    return Difference(d, d, d, "point")


# ----------------------------------------------------------------------------- verdicts


def verdict_greater(d: Difference, margin: float = 0.0, *, strict: bool = True) -> Verdict:
    """*A beats B by more than margin*: holds when the interval lies above ``margin``
    (``strict``; at or above when not strict), fails when it lies below ``margin``,
    inconclusive otherwise. A point difference equal to ``margin`` fails when ``strict``
    and holds when not (nothing to be uncertain about)."""
    if d.method == "point":
        ok = d.estimate > margin + 1e-9 or (not strict and d.estimate >= margin - 1e-9)
        return "holds" if ok else "fails"
    if d.low > margin + 1e-9 or (not strict and d.low >= margin - 1e-9):
        return "holds"
    return "fails" if d.high < margin - 1e-9 else "inconclusive"


def verdict_not_lower(d: Difference, tol: float = 0.0) -> Verdict:
    """*A does not lower accuracy vs B by more than tol*: fails when the whole interval
    lies below ``-tol``, holds when none of it does, inconclusive otherwise."""
    if d.high < -tol - 1e-9:
        return "fails"
    return "holds" if d.low >= -tol - 1e-9 else "inconclusive"


def verdict_within(d: Difference, tol: float) -> Verdict:
    """*A and B differ by at most tol*: holds when the interval lies inside
    [-tol, tol], fails when it lies entirely outside, inconclusive otherwise."""
    if d.low > tol + 1e-9 or d.high < -tol - 1e-9:
        return "fails"
    return "holds" if -tol - 1e-9 <= d.low and d.high <= tol + 1e-9 else "inconclusive"


def combine(verdicts: Iterable[str]) -> Verdict:
    """Several parts of one claim: fails if any fails, holds if all hold, else inconclusive."""
    vs = list(verdicts)
    if "fails" in vs:
        return "fails"
    return "holds" if vs and all(v == "holds" for v in vs) else "inconclusive"
