"""``qac report``: collect, layers, table, figure, captions, caption (called by the Snakemake
rules) and run-summary (the Snakefile's ``onsuccess`` hook); :func:`add_commands` adds them to
the ``qac`` command line, :func:`main` runs them alone.

Exit status 0 on success, 2 with a one-line ``qac.report: error: ...`` message on bad input
(unreadable or malformed files, unknown names, bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from qac.experiments import ARTIFACTS
from qac.report._common import DATASETS, ReportInputError, skipped_rows

__all__ = ["add_commands", "run", "build_parser", "main"]

_PROG = "qac report"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"qac.report: error: {message}\n")


def _notes(values: Sequence[str] | None) -> str | dict[str, str] | None:
    """``--note TEXT`` (all rows) or ``--note DATASET=TEXT`` (per dataset; repeatable)."""
    if not values:
        return None
    per: dict[str, str] = {}
    plain: list[str] = []
    for v in values:
        head, sep, rest = v.partition("=")
        if sep and head in (*DATASETS, "*"):
            per[head] = rest
        else:
            plain.append(v)
    if per:
        if plain:
            per.setdefault("*", " ".join(plain))
        return per
    return " ".join(plain)


def _reference(args):
    if args.no_reference:
        return None
    from qac.paper.reference import load_reference

    try:
        return load_reference(args.reference) if args.reference else load_reference()
    except (OSError, ValueError) as exc:
        raise ReportInputError(f"cannot read the reference CSV: {exc}") from exc


def cmd_collect(args) -> int:
    from qac.report.collect import collect, reference_rows, write_csv

    df = collect(args.eval_files, args.scale, main_policy=args.main_policy)
    write_csv(df, args.out)
    if args.reference_out:
        write_csv(reference_rows(df), args.reference_out)
    print(f"{args.out}: {len(df)} rows from {len(args.eval_files)} eval files")
    return 0


def cmd_layers(args) -> int:
    from qac.report.collect import layer_profiles, write_csv

    df = layer_profiles(args.eval_files, scale=args.scale)
    write_csv(df, args.out)
    print(f"{args.out}: {len(df)} layer rows from {len(args.eval_files)} eval files")
    return 0


def cmd_table(args) -> int:
    from qac.report.captions import caption
    from qac.report.collect import read_tidy
    from qac.report.tables import make_table, write_table

    ours = read_tidy(args.tidy)
    ref = _reference(args)
    skipped = skipped_rows(args.skipped) if args.skipped else None
    df = make_table(args.name, ours, ref, skipped, note=_notes(args.note), scale=args.scale)
    if args.caption is not None:
        text = args.caption
    else:
        text = caption(args.name, ref) if ref is not None else caption(args.name)
    paths = write_table(df, args.out_prefix, text)
    print(f"{args.name}: {len(df)} rows -> " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_figure(args) -> int:
    from qac.report.collect import read_layers, read_tidy
    from qac.report.figures import make_figure

    tidy = read_tidy(args.tidy) if args.tidy else None
    layers = read_layers(args.layers) if args.layers else None
    skipped = skipped_rows(args.skipped) if args.skipped else None
    paths = make_figure(
        args.name,
        {"tidy": tidy, "layers": layers},
        _reference(args),
        args.out_dir,
        skipped=skipped,
        scale=args.scale,
    )
    print(f"{args.name}: " + ", ".join(str(p) for p in paths))
    return 0


#: Names ``captions`` writes by default: the workflow's artifacts.
ARTIFACT_NAMES: tuple[str, ...] = ARTIFACTS


def caption_rst(text: str, scale: str | None = None) -> str:
    """A caption as a reStructuredText paragraph (for ``snakemake --report``)."""
    import textwrap

    if scale:
        text += f" Our numbers come from the ``{scale}`` scale."
    return textwrap.fill(text, width=100) + "\n"


def _sweep_note(args) -> str | None:
    """Table 8's subset sentence (:func:`qac.report.captions.sweep_subset_note`) when
    ``--sweep-limit`` (the configuration's ``evaluation.sweep_limit``) is below ``--limit``
    (``evaluation.limit``; none: the whole test set), as :func:`qac.workflow.sweep_limit`
    decides for the evaluations."""
    from qac.report.captions import sweep_subset_note
    from qac.workflow import sweep_limit

    ev = {"limit": args.limit, "sweep_limit": args.sweep_limit}
    n = sweep_limit({"evaluation": ev})
    return sweep_subset_note(n, args.limit) if n is not None else None


def cmd_captions(args) -> int:
    from qac.report._common import atomic_write_text
    from qac.report.captions import caption

    ref = _reference(args)
    names = args.names or list(ARTIFACT_NAMES)
    note = _sweep_note(args)
    out = []
    for name in names:
        text = caption(name, ref, sample_note=note)
        out.append(atomic_write_text(f"{args.out_dir}/{name}.rst", caption_rst(text, args.scale)))
    print(f"{len(out)} captions -> {args.out_dir}")
    return 0


def cmd_training(args) -> int:
    from qac.report.figures import training_figure

    for path in training_figure(args.logs, args.out_dir, stem=args.stem):
        print(path)
    return 0


def cmd_caption(args) -> int:
    from qac.report.captions import caption

    print(caption(args.name, _reference(args)))
    return 0


def _scale_config(args) -> dict:
    """The workflow configuration of ``--scale`` as the Snakefile resolves it: the presets
    (``--presets``, default the checkout's ``workflow/presets``), then ``--config`` (default the
    checkout's ``config.yaml``, the Snakefile's ``configfile``). A ``--presets`` without
    ``defaults.yaml`` or a missing ``--config`` is an error naming it; without either option,
    empty when the checkout's presets are not there (an installed package)."""
    from pathlib import Path

    import yaml

    from qac.workflow import PRESET_DIR, ROOT, load_yaml, resolve_config

    if args.presets:
        presets = Path(args.presets)
        if not (presets / "defaults.yaml").is_file():
            raise ReportInputError(
                f"--presets {presets}: no defaults.yaml there (expected the workflow's presets "
                "folder, e.g. workflow/presets)"
            )
    else:
        presets = PRESET_DIR
        if not (presets / "defaults.yaml").is_file():
            return {}
    if args.config:
        config = Path(args.config)
        if not config.is_file():
            raise ReportInputError(f"--config {config}: no such file")
    else:
        config = ROOT / "config.yaml"
    user = {}
    if config.is_file():
        try:
            user = load_yaml(config.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ReportInputError(f"{config}: not valid YAML ({exc})") from None
        if not isinstance(user, dict):
            raise ReportInputError(f"{config}: not a mapping of configuration keys")
    try:
        return resolve_config({**user, "scale": args.scale}, presets)
    except ValueError as exc:
        raise ReportInputError(str(exc)) from None


def cmd_run_summary(args) -> int:
    from qac.report import runsummary

    res = args.results_dir or f"results/{args.scale}"
    if args.reset:
        moved = runsummary.reset_wall_time(f"{res}/wall_time.tsv")
        print(f"{res}/wall_time.tsv: " + (f"moved to {moved}" if moved else "none to reset"))
    for log in args.add_log or []:
        try:
            added = runsummary.add_log(f"{res}/wall_time.tsv", log, killed=args.killed)
        except ReportInputError as exc:  # a dry run, nothing to do, still running: say so
            print(f"qac.report: warning: not recorded: {exc}", file=sys.stderr)
            continue
        print(f"{log}: {'added to' if added else 'already in'} {res}/wall_time.tsv")
    cfg = _scale_config(args)
    path = runsummary.write_run_summary(
        res,
        args.scale,
        floors=cfg.get("floors"),
        main_policy=cfg.get("main_policy"),
        note=cfg.get("data_note"),
    )
    print(path)
    return 0


def _artifact_parser(
    sub, command: str, text: str, func, names: str | None = None
) -> argparse.ArgumentParser:
    """Subcommand ``command`` (help ``text``) about the table or figure given by ``--name``
    (help ``names``), run by ``func``."""
    c = sub.add_parser(command, help=text)
    c.add_argument("--name", required=True, help=names)
    c.set_defaults(report_func=func)
    return c


def _filter_args(c: argparse.ArgumentParser) -> None:
    """Which rows a table or figure shows: skipped runs, scale, reference."""
    c.add_argument("--skipped", help="CSV/JSON of experiment,dataset,architecture,reason")
    c.add_argument("--scale", help="use only rows of this scale")
    c.add_argument("--reference", help="alternative reference CSV (default: packaged)")
    c.add_argument("--no-reference", action="store_true", help="leave the paper out")


def add_commands(p: argparse.ArgumentParser) -> None:
    """Add the report subcommands to ``p`` (``qac report``); each sets ``report_func``."""
    sub = p.add_subparsers(dest="report_command", required=True, parser_class=_Parser)

    c = sub.add_parser("collect", help="eval JSON files -> tidy CSV (reference schema)")
    c.add_argument("--scale", required=True, help="workflow scale written to the 'scale' column")
    c.add_argument("--out", required=True, help="tidy CSV to write")
    c.add_argument("--main-policy", default="aver+aver", help="headline alignment policy")
    c.add_argument(
        "--reference-out",
        help="also write only the rows of tables 1-8 (the input for qac.paper.compare)",
    )
    c.add_argument("eval_files", nargs="*", metavar="EVAL.json")
    c.set_defaults(report_func=cmd_collect)

    c = sub.add_parser("layers", help="eval JSON files -> per-layer T/bits/alpha CSV")
    c.add_argument("--out", required=True, help="layer CSV to write")
    c.add_argument("--scale", help="workflow scale written to the 'scale' column")
    c.add_argument("eval_files", nargs="*", metavar="EVAL.json")
    c.set_defaults(report_func=cmd_layers)

    text = "one paper table as CSV + Markdown + LaTeX"
    c = _artifact_parser(sub, "table", text, cmd_table, "table1 ... table8, energy, exactness")
    c.add_argument("--tidy", required=True, help="tidy CSV written by 'collect'")
    c.add_argument(
        "--note",
        action="append",
        help="note for our rows; DATASET=TEXT for one dataset (repeatable)",
    )
    c.add_argument("--caption", help="caption (default: the generated caption)")
    c.add_argument("--out-prefix", required=True, help="writes PREFIX.csv, .md, .tex")
    _filter_args(c)

    text = "one paper figure as PNG (300 dpi) + PDF"
    c = _artifact_parser(
        sub, "figure", text, cmd_figure, "fig1, fig2, fig3, figs5_10, fig5 ... fig10, fig_table8"
    )
    c.add_argument("--tidy", help="tidy CSV written by 'collect' (fig2, fig3)")
    c.add_argument("--layers", help="layer CSV written by 'layers' (fig1, figs5_10)")
    c.add_argument("--out-dir", required=True, help="output folder")
    _filter_args(c)

    c = sub.add_parser("training", help="training curves (test acc, loss, mean T per epoch)")
    c.add_argument("--out-dir", required=True, help="output folder")
    c.add_argument("--stem", default="training", help="file name stem (default: training)")
    c.add_argument("logs", nargs="+", metavar="LOG.jsonl", help="logs under DATASET/ARCH/ACT/")
    c.set_defaults(report_func=cmd_training)

    c = sub.add_parser("captions", help="write <out-dir>/<name>.rst for every artifact")
    c.add_argument("--out-dir", required=True, help="output folder")
    c.add_argument("--scale", help="scale mentioned in the captions")
    c.add_argument(
        "--names", nargs="+", help="tables/figures (default: table1-8, fig1-3, figs5_10)"
    )
    c.add_argument("--reference", help="alternative reference CSV")
    c.add_argument("--no-reference", action="store_true", help=argparse.SUPPRESS)
    c.add_argument(
        "--sweep-limit",
        type=int,
        help="test images of Table 8's T sweeps (evaluation.sweep_limit): when below --limit, "
        "the captions of table8 and fig_table8 say they ran on a subset",
    )
    c.add_argument(
        "--limit", type=int, help="test images of the other results (evaluation.limit; default all)"
    )
    c.set_defaults(report_func=cmd_captions)

    c = sub.add_parser(
        "run-summary",
        help="results/<scale>/README.md: wall time, time per stage, headline numbers, floors",
    )
    c.add_argument("--scale", required=True, help="workflow scale (its floors are checked)")
    c.add_argument("--results-dir", help="default: results/<scale>")
    c.add_argument(
        "--presets", help="workflow presets folder (default: this checkout's workflow/presets)"
    )
    c.add_argument(
        "--config",
        help="the workflow's config.yaml (default: this checkout's, the Snakefile's configfile)",
    )
    c.add_argument(
        "--reset",
        action="store_true",
        help="start a new measurement: first move wall_time.tsv aside as "
        "wall_time.<UTC time>.tsv (deleting it does the same)",
    )
    c.add_argument(
        "--add-log",
        nargs="+",
        action="extend",
        metavar="SNAKEMAKE.log",
        help="first record the runs of these .snakemake/log files in wall_time.tsv (for runs "
        "without the Snakefile's hooks; a run already there is not added twice)",
    )
    c.add_argument(
        "--killed",
        action="store_true",
        help="with --add-log: a log that does not say how its run ended (killed: no hook ran) "
        "is recorded as a failed piece ending at the log's last change",
    )
    c.set_defaults(report_func=cmd_run_summary)

    c = _artifact_parser(sub, "caption", "print the caption of a table or figure", cmd_caption)
    c.add_argument("--reference", help="alternative reference CSV")
    c.add_argument("--no-reference", action="store_true", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The report subcommands on their own (``prog`` ``qac report``)."""
    p = _Parser(prog=_PROG, description="Tables, figures and captions of the QAC replication.")
    add_commands(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the parsed report subcommand; bad input -> one ``qac.report: error:`` line, 2."""
    try:
        return int(args.report_func(args))
    except ReportInputError as exc:
        print(f"qac.report: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"qac.report: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``qac report`` alone: parse ``argv`` and :func:`run` it."""
    return run(build_parser().parse_args(argv))
