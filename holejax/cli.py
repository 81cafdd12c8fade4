"""The ``holejax`` command line: ``demo``, ``analyze`` and ``report``.

User errors (a bad flag, a missing or foreign store, an output that exists,
an unknown metric, a failed input check of the library) print one line,
``holejax COMMAND: error: WHAT; FIX``, and exit with status 2; no traceback.
Outputs are checked before any work starts, so ``holejax analyze -o
EXISTING`` refuses at once instead of after the analysis. ``--traceback``
shows the full traceback of a failure instead. Warnings of the library
(e.g. a kNN graph in several components) are printed as one line each.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import holejax as hj  # light: its names load on first use
from holejax import __version__
from holejax._checks import check_choice, close_matches
from holejax.distributed import connect

__all__ = ["main", "build_parser", "UsageError"]

USAGE_ERROR = 2


class UsageError(Exception):
    """A mistake in the command line or its files; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are :class:`UsageError` (one line, no usage block)."""

    def error(self, message: str):
        raise UsageError(f"{message}; see '{self.prog} --help'")


def _unknown_arguments(parser: argparse.ArgumentParser, command: str, extras: list[str]) -> UsageError:
    """The error for arguments no parser took, with the closest flags of ``command``."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    flags = [s for a in sub._actions for s in a.option_strings]
    hints = [f"{u} -> {m[0]}" for u in extras if u.startswith("-") and (m := close_matches(u, flags, n=1))]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    return UsageError(f"unknown argument(s) {' '.join(extras)}{hint}; see '{sub.prog} --help'")


# ---- checks run before any work -------------------------------------------------------


def _check_output(path: str, flag: str, *, overwrite: bool, kind: str) -> Path:
    """An output path that can be written: its folder exists, and it is new unless ``overwrite``."""
    out = Path(path)
    folder = out.parent
    if not folder.is_dir():
        raise UsageError(f"{flag} {path!r}: folder {str(folder)!r} does not exist; create it first or write elsewhere")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{flag} {path!r}: folder {str(folder)!r} is not writable; write elsewhere")
    if kind == "html" and out.is_dir():
        raise UsageError(f"{flag} {path!r} is a folder; pass a file name such as report.html")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise UsageError(f"{flag} {path!r} already exists; pass --overwrite to replace it, or choose another path")
        if kind == "results":
            _check_replaceable_results(out, flag)
    return out


def _check_replaceable_results(out: Path, flag: str) -> None:
    """``--overwrite`` replaces only a results store that holejax wrote."""
    try:
        hj.open_results(out)
    except (ValueError, OSError) as err:
        raise UsageError(
            f"{flag} {str(out)!r} exists and is not a holejax results store, so --overwrite will not "
            f"replace it ({_one_line(err)}); choose another path"
        ) from None


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _opened(opener, path: str, what: str):
    """``opener(path)``, its errors as one line naming the argument."""
    try:
        return opener(path)
    except (ValueError, OSError) as err:
        raise UsageError(f"{what} {path!r}: {_one_line(err)}") from None


def _check_metrics(metrics: list[str]) -> list[str]:
    for m in metrics:
        try:
            check_choice(m, "--metric", hj.METRICS)
        except ValueError as err:
            raise UsageError(_one_line(err)) from None
    if len(set(metrics)) != len(metrics):
        raise UsageError(f"--metric lists a metric twice ({metrics}); give each metric once")
    return metrics


# ---- the commands -------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o/--output {args.output!r} is a file; the demo writes a folder, choose another path")
    if not out.exists() and not out.parent.is_dir():
        raise UsageError(f"-o/--output {args.output!r}: folder {str(out.parent)!r} does not exist; create it first")
    from holejax.demo.run import run_demo  # loaded on use: `holejax --help` starts without sklearn and xarray

    run_demo(args.output, quick=args.quick, seed=args.seed)
    return 0


def _analyze(args: argparse.Namespace) -> int:
    metrics = _check_metrics(args.metric)
    if _same_path(args.store, args.output):
        raise UsageError(
            f"-o/--output {args.output!r} is the activation store itself; write the results to another path"
        )
    _check_output(args.output, "-o/--output", overwrite=args.overwrite, kind="results")
    if args.scheduler:  # the workers open the store themselves
        with connect(args.scheduler) as client:
            study = hj.analyze(args.store, metrics=metrics, client=client)
    else:
        acts = _opened(hj.open_activations, args.store, "STORE")
        study = hj.analyze(acts, metrics=metrics)
    path = hj.write_results(study, args.output, mode="overwrite" if args.overwrite else "error")
    print(f"results written to {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    if _same_path(args.results, args.output):
        raise UsageError(f"-o/--output {args.output!r} is the results store itself; write the report elsewhere")
    _check_output(args.output, "-o/--output", overwrite=args.overwrite, kind="html")
    study = _opened(hj.open_results, args.results, "RESULTS")
    if study.attrs.get("content") == "topology":
        raise UsageError(
            f"RESULTS {args.results!r} holds a topology summary, not the results of `holejax analyze`; "
            "pass it as --topology and the analysis results as RESULTS"
        )
    source = args.activations or study.attrs.get("source")
    if not source:
        raise UsageError(
            f"RESULTS {args.results!r} does not name its activation store; pass --activations STORE"
        )
    if args.activations:
        acts = _opened(hj.open_activations, source, "--activations")
    else:
        acts = _opened(hj.open_activations, source, "the activation store that RESULTS names (--activations STORE overrides it)")
    topology = None
    if args.topology:
        topology = _opened(hj.open_results, args.topology, "--topology")
        if topology.attrs.get("content") != "topology":
            raise UsageError(
                f"--topology {args.topology!r} is not a topology results store (it holds no hj.topology_summary "
                "output); write one with hj.write_results(hj.topology_summary(acts), path)"
            )
    path = hj.write_report(study, acts, args.output, topology=topology)
    print(f"report written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``holejax`` command."""
    parser = _Parser(prog="holejax", description="Persistent homology of neural-network activations.")
    parser.add_argument("--version", action="version", version=f"holejax {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,analyze,report}")

    demo = sub.add_parser("demo", help="train small PyTorch and Flax models on digits and report")
    demo.add_argument("-o", "--output", default="holejax-demo",
                      help="output folder (default: holejax-demo); its demo stores and reports are replaced")
    demo.add_argument("--quick", action="store_true", help="fewer samples and epochs (for tests)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    analyze = sub.add_parser("analyze", help="analyse an activation store into a results store")
    analyze.add_argument("store", metavar="STORE", help="activation store written by hj.export_activations")
    analyze.add_argument("-o", "--output", required=True, help="results store to write")
    analyze.add_argument("--metric", action="append", default=None,
                         help="distance metric (repeatable; default euclidean and cosine)")
    analyze.add_argument("--overwrite", action="store_true", help="replace an existing results store")
    analyze.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="run on the Dask cluster of this scheduler (tcp://host:8786); every worker must "
                              "reach STORE (a shared path or an fsspec URL)")
    analyze.set_defaults(run=_analyze)

    report = sub.add_parser("report", help="write a standalone HTML report from a results store")
    report.add_argument("results", metavar="RESULTS", help="results store written by `holejax analyze`")
    report.add_argument("-o", "--output", default="report.html", help="HTML file to write")
    report.add_argument("--overwrite", action="store_true", help="replace an existing HTML file")
    report.add_argument("--activations", default=None,
                        help="activation store (default: the one the results were computed from)")
    report.add_argument("--topology", default=None, metavar="TOPO_ZARR",
                        help="results store of hj.topology_summary: adds the topology section")
    report.set_defaults(run=_report)
    return parser


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _show_warning(prog, message, category, filename, lineno, file=None, line=None) -> None:
    """A warning of the library as one line: ``holejax analyze: warning: ...``."""
    print(f"{prog}: warning: {_one_line(message)}", file=sys.stderr)


def _command_of(argv: Sequence[str]) -> str:
    commands = [a for a in argv if a in ("demo", "analyze", "report")]
    return f"holejax {commands[0]}" if commands else "holejax"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``holejax`` console script; returns the exit status.

    Example:
        >>> main(["analyze", "missing.zarr", "-o", "r.zarr", "--metric", "cosin"])
        2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in argv
    argv = [a for a in argv if a != "--traceback"]  # accepted anywhere on the line
    prog = _command_of(argv)
    try:
        commands = "holejax demo, holejax analyze STORE -o RESULTS, or holejax report RESULTS (see 'holejax --help')"
        if not argv:
            raise UsageError(f"no command given; run {commands}")
        if argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
            raise UsageError(f"unknown option {argv[0]!r}; start with a command: {commands}")
        parser = build_parser()
        args, extras = parser.parse_known_args(argv)
        if extras:
            raise _unknown_arguments(parser, args.command, extras)
        if getattr(args, "metric", "unset") is None:
            args.metric = ["euclidean", "cosine"]
        with warnings.catch_warnings():  # restores showwarning afterwards
            warnings.showwarning = partial(_show_warning, prog)
            return args.run(args)
    except UsageError as err:
        if show_traceback:
            raise
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return USAGE_ERROR
    except (ValueError, TypeError, OSError, ImportError) as err:
        # the library's input checks: their messages name the problem and the fix
        if show_traceback:
            raise
        print(f"{prog}: error: {_one_line(err)} (--traceback shows where)", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
