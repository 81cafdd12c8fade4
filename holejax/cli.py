"""The ``holejax`` command line: ``demo``, ``analyze`` and ``report``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from holejax.demo.run import run_demo

    run_demo(args.output, quick=args.quick, seed=args.seed)
    return 0


def _analyze(args: argparse.Namespace) -> int:
    import holejax as hj

    acts = hj.open_activations(args.store)
    study = hj.analyze(acts, metrics=args.metric)
    path = hj.write_results(study, args.output, mode="overwrite" if args.overwrite else "error")
    print(f"results written to {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    import holejax as hj

    study = hj.open_results(args.results)
    source = args.activations or study.attrs.get("source")
    if not source:
        raise SystemExit(
            f"{args.results}: the results do not name their activation store; pass --activations STORE."
        )
    acts = hj.open_activations(source)
    topology = None
    if args.topology:
        topology = hj.open_results(args.topology)
        if topology.attrs.get("content") != "topology":
            raise SystemExit(
                f"{args.topology}: not a topology results store (it holds no hj.topology_summary output); "
                "write one with hj.write_results(hj.topology_summary(acts), path)."
            )
    path = hj.write_report(study, acts, args.output, topology=topology)
    print(f"report written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="holejax", description="Persistent homology of neural-network activations."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train small PyTorch and Flax models on digits and report")
    demo.add_argument("-o", "--output", default="holejax-demo", help="output folder (default: holejax-demo)")
    demo.add_argument("--quick", action="store_true", help="fewer samples and epochs (for tests)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    analyze = sub.add_parser("analyze", help="analyse an activation store into a results store")
    analyze.add_argument("store", help="activation store written by hj.export_activations")
    analyze.add_argument("-o", "--output", required=True, help="results store to write")
    analyze.add_argument("--metric", action="append", default=None,
                         help="distance metric (repeatable; default euclidean and cosine)")
    analyze.add_argument("--overwrite", action="store_true", help="replace an existing results store")
    analyze.set_defaults(run=_analyze)

    report = sub.add_parser("report", help="write a standalone HTML report from a results store")
    report.add_argument("results", help="results store written by `holejax analyze`")
    report.add_argument("-o", "--output", default="report.html", help="HTML file to write")
    report.add_argument("--activations", default=None,
                        help="activation store (default: the one the results were computed from)")
    report.add_argument("--topology", default=None, metavar="TOPO_ZARR",
                        help="results store of hj.topology_summary: adds the topology section")
    report.set_defaults(run=_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``holejax`` console script."""
    args = build_parser().parse_args(argv)
    if getattr(args, "metric", "unset") is None:
        args.metric = ["euclidean", "cosine"]
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
