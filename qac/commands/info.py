"""``qac info``: a checkpoint's per-layer T, bits and alpha."""

from __future__ import annotations

import json

from qac.commands.inputs import jsonable, load_checkpoint


def add_parser(sub) -> None:
    """Add ``info`` to the subcommands ``sub``."""
    p = sub.add_parser("info", help="print a checkpoint's per-layer T, bits and alpha")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def _print_layers(rows: list[dict]) -> None:
    print(f"{'layer':40s} {'T':>8s} {'bits':>6s} {'alpha':>8s}")
    for r in rows:
        T, bits = r["T"], r["bits"]
        T_txt = "INF" if T == "inf" else f"{T:g}"
        bits_txt = "INF" if bits == "inf" else f"{bits:.2f}"
        print(f"{r['layer']:40s} {T_txt:>8s} {bits_txt:>6s} {r['alpha']:8.4f}")


def run(args) -> int:
    from qac.layers import quantizer_summary
    from qac.stats import average_bits, average_timesteps

    model, payload = load_checkpoint(args.checkpoint)
    spec = payload["spec"]
    rows = quantizer_summary(model)
    if args.json:
        print(json.dumps(jsonable({"spec": spec, "layers": rows}), indent=2))
        return 0
    print(
        f"{spec['arch']} ({spec['num_classes']} classes, width {spec['width']}), "
        f"activation {spec['activation']}"
    )
    _print_layers(rows)
    if rows:
        avg_T, avg_b = average_timesteps(model), average_bits(model)
        print(f"average T {avg_T:.3f}, average bits {avg_b:.3f}")
    metrics = payload.get("metrics") or {}
    if metrics.get("ann_acc") is not None:
        print(f"test accuracy at the end of training: {metrics['ann_acc']:.2f}%")
    return 0
