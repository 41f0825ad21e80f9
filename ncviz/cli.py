"""The ``ncviz`` command: analyze runs headless, list layers, convert unsafe checkpoints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ncviz.errors import NcvizError
from ncviz.server.launch import DEFAULT_HOST, DEFAULT_PORT


class _ProgressBar:
    """A tqdm bar on stderr that appears with the first progress report: an error raised before
    any batch ran (a mistyped layer, a bad file) is printed alone, not under an empty bar."""

    def __init__(self) -> None:
        self.bar: Any = None

    def update(self, done: int, total: int, message: str) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="batch", dynamic_ncols=True, file=sys.stderr)
        if self.bar.total != total:
            self.bar.reset(total=total)
        self.bar.n = done
        self.bar.set_description(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar() -> tuple[_ProgressBar, Any]:
    bar = _ProgressBar()
    return bar, bar.update


def _init_distributed(device: str | None) -> tuple[int, str | None]:
    """Under torchrun (WORLD_SIZE > 1): join the process group; rank and this rank's device."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, device
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in (None, "cuda", "auto")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), device


def _cmd_analyze(args: argparse.Namespace) -> int:
    from ncviz.analysis import analyze
    from ncviz.extract import ActivationCache

    rank, device = _init_distributed(args.device)
    cache: ActivationCache | bool = False
    if not args.no_cache:
        cache = ActivationCache(args.cache_dir) if args.cache_dir else True
    bar, update = _progress_bar() if rank == 0 else (None, None)
    try:
        result = analyze(
            args.path,
            args.data,
            model=args.model,
            layers=args.layers,
            device=device,
            batch_size=args.batch_size,
            pool=args.pool,
            autocast=args.autocast,
            cache=cache,
            progress=update,
            trust_remote_code=args.trust_remote_code,
            language=args.language,
            feature_learning=[m for m in ("agop", "gc") if getattr(args, m)],
            ood=args.ood_data,
            **_metric_options(args),
        )
    finally:
        if bar is not None:
            bar.close()
    if rank != 0:  # every rank holds the all-reduced metrics; rank 0 writes them
        return 0
    if args.multicentre:
        from ncviz.analysis import with_multicentre

        result = with_multicentre(result, args.multicentre)
    paths = result.save(args.out)
    if args.report:
        from ncviz.report import analysis_report

        report = Path(args.out) / "report.html"
        report.write_text(analysis_report(result, result.checkpoints[-1], result.layers[-1]))
        paths.append(report)
    print(result.summary())
    if result.groups:
        print(result.group_summary())
    rows = len(result.tidy())
    print(f"wrote {', '.join(str(p) for p in paths)} ({rows} rows)")
    return 0


def _metric_options(args: argparse.Namespace) -> dict[str, Any]:
    """The metric options given on the command line (a preset first, then single options)."""
    given = {"convention": args.convention, "min_count": args.min_count, "dist_exp": args.dist_exp}
    return {name: value for name, value in given.items() if value is not None}


def _cmd_conventions(args: argparse.Namespace) -> int:
    from ncviz.metrics.conventions import describe_conventions

    print(describe_conventions())
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    from ncviz.extract import default_layers, list_layers
    from ncviz.load import (
        build_model,
        classifier_module,
        load_dataset,
        load_weights,
        read_checkpoint,
    )
    from ncviz.load.runs import is_run, open_run
    from ncviz.sources.onnx import onnx_source

    model, data = args.model, args.data
    path = Path(args.path)
    checkpoint = path
    if (found := onnx_source(path)) is not None:
        if data is None:
            raise NcvizError("ncviz layers needs --data for an ONNX model (its input shape).")
        return _print_onnx_layers(found[0], load_dataset(data).inputs[:2])
    if is_run(path):
        run = open_run(path)
        model, data = model or run.model, data or run.data
        checkpoint = run.checkpoints[-1]
    if model is None or data is None:
        raise NcvizError("ncviz layers needs --model and --data (or a run folder with run.json).")
    net = build_model(model)
    load_weights(net, read_checkpoint(checkpoint).state_dict, source=checkpoint.name)
    sample = load_dataset(data).inputs[:2]
    name, _ = classifier_module(net)
    defaults = set(default_layers(net, name, sample))
    for info in list_layers(net, sample):
        mark = "*" if info.name in defaults else " "
        print(f"{mark} {info.name:40s} {info.kind:18s} {'×'.join(map(str, info.output_shape))}")
    print("(* = analysed by default)")
    return 0


def _print_onnx_layers(graph_path: Path, sample: object) -> int:
    """Every layer of an ONNX graph with its output shape on two samples of the data."""
    from ncviz.load.onnx import OnnxRunner, read_onnx

    graph = read_onnx(graph_path)
    defaults = set(graph.default_layers())
    outputs = OnnxRunner(graph, graph.layers)(sample)
    for name, value in outputs.items():
        mark = "*" if name in defaults else " "
        print(f"{mark} {name:40s} {'×'.join(map(str, value.shape[1:]))}")
    print(f"(* = analysed by default; classifier: {graph.classifier or 'none found'})")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from ncviz.convert import convert_checkpoint

    out = convert_checkpoint(args.file, args.out, trust=args.trust)
    print(f"wrote {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ncviz.demos.build import make_demo

    bars: dict[str, tqdm] = {}

    def update(name: str, epoch: int, epochs: int) -> None:
        bar = bars.setdefault(name, tqdm(total=epochs, desc=name, unit="epoch", file=sys.stderr))
        bar.n = epoch
        bar.refresh()
        if epoch == epochs:
            bar.close()

    folders = make_demo(args.out, args.runs, args.epochs, args.checkpoints, progress=update)
    for folder in folders:
        print(f"wrote {folder}")
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from ncviz.study import DEFAULT_NAME_PATTERN, load_study, run_study

    frame = load_study(args.tables, layer=args.layer, split=args.split)
    pattern = DEFAULT_NAME_PATTERN if args.pattern is None else args.pattern or None
    study = run_study(
        frame,
        args.against,
        derived=args.derive,
        pattern=pattern,
        resamples=args.bootstrap,
    )
    paths = study.save(args.out)
    print(study.summary())
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _custom_model_help() -> str:
    from ncviz.record import CUSTOM_MODEL_ROUTES

    routes = [
        f"{k}. {title}:\n\n" + "\n".join("    " + line for line in code.splitlines())
        for k, (title, code) in enumerate(CUSTOM_MODEL_ROUTES, 1)
    ]
    return "Your own model — the routes, in order of preference:\n\n" + "\n\n".join(routes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncviz", description="Measure neural collapse.")
    sub = parser.add_subparsers(dest="command", required=True)

    analyze = sub.add_parser(
        "analyze",
        help="metrics of a run, checkpoint or features file",
        description="Metrics of a run folder (checkpoints + run.json, a run the Recorder wrote, "
        "or a folder of features files), one checkpoint, or one features file.",
        epilog=_custom_model_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    analyze.add_argument(
        "path",
        help="run folder (checkpoints, recorded, or features files), checkpoint, features file",
    )
    analyze.add_argument("--data", help='data spec, e.g. "builtin:digits?split=test"')
    analyze.add_argument(
        "--model", help='model spec: JSON, a .json file, or "mlp:in_features=64,…"'
    )
    analyze.add_argument("--layers", type=lambda s: s.split(","), help="comma-separated layers")
    analyze.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    analyze.add_argument("--batch-size", type=int, default=256)
    analyze.add_argument("--pool", choices=("auto", "flatten", "avg"), default="auto")
    analyze.add_argument("--autocast", action="store_true", help="mixed precision on GPU")
    analyze.add_argument(
        "--min-count",
        type=int,
        metavar="N",
        help="drop classes with fewer than N samples (token classes: 2); the table reports "
        "classes_kept, classes_dropped and samples_dropped",
    )
    analyze.add_argument(
        "--convention",
        metavar="NAME",
        help="report a paper's rows under its own conventions: ncviz (default); papyan2020, "
        "lc2024, rfm2024, ncmc2024, dufm2024 (classification); nrc2024 (regression). "
        "`ncviz conventions` lists what each changes; the table's convention column records it",
    )
    analyze.add_argument(
        "--dist-exp",
        type=float,
        metavar="P",
        help="exponent p of the squared class-mean distance in cdnv (1 by default; 2 is the "
        "Linguistic Collapse convention)",
    )
    analyze.add_argument(
        "--ood-data",
        metavar="SPEC",
        help="out-of-distribution data run through every checkpoint (a data spec, e.g. "
        '"builtin:gaussian?dim=64"): each layer gets nc5, the mean |cos| of its class means to '
        "the OOD features' mean (Ammar et al. 2024); features files carry ood.<layer> instead",
    )
    analyze.add_argument(
        "--language",
        action="store_true",
        help="next-token classes of a causal LM over a token corpus (--data: .txt/.jsonl text, "
        '.npy/.safetensors token ids; ?context=N); implied by a run\'s task "language"',
    )
    analyze.add_argument(
        "--agop",
        action="store_true",
        help="per linear layer: NFA correlation of WᵀW with the AGOP (agop_nfa_corr, "
        "agop_nfa_corr_sqrt) and NC1 of its stages (stage_nc1_*) (Beaglehole et al. 2024)",
    )
    analyze.add_argument(
        "--gc",
        action="store_true",
        help="geometric complexity of the embedding and geometric collapse at the classifier "
        "input (Munn et al. 2024); both on at most 1,000 samples",
    )
    analyze.add_argument("--out", default="ncviz-out", help="output folder (default ncviz-out)")
    analyze.add_argument(
        "--multicentre",
        type=int,
        metavar="K",
        default=0,
        help="add, at the last layer of every checkpoint, the sub-cluster rows (subcluster_*: "
        "per-class k-means with k ≤ K by silhouette) and, for a run trained to fixed centres, "
        "NCMC's collapse to each class's centre-mean (ncmc_*)",
    )
    analyze.add_argument(
        "--report",
        action="store_true",
        help="also write report.html: the Export page's offline report of the last checkpoint "
        "and layer",
    )
    analyze.add_argument("--cache-dir", help="activation cache folder (default $NCVIZ_CACHE_DIR)")
    analyze.add_argument("--no-cache", action="store_true", help="do not use the cache")
    analyze.add_argument(
        "--trust-remote-code",
        "--trust",
        dest="trust_remote_code",
        action="store_true",
        help="run code that comes with the model: an hf: spec's trust_remote_code, or a "
        "torch.export .pt2 archive (only for files you trust, on your own machine)",
    )
    analyze.set_defaults(func=_cmd_analyze)

    conventions = sub.add_parser(
        "conventions", help="list the papers' conventions (--convention) and what each changes"
    )
    conventions.set_defaults(func=_cmd_conventions)

    layers = sub.add_parser("layers", help="list the hookable layers of a model")
    layers.add_argument("path", help="run folder, checkpoint file or ONNX model")
    layers.add_argument("--model")
    layers.add_argument("--data")
    layers.set_defaults(func=_cmd_layers)

    demo = sub.add_parser("demo", help="(re)train the bundled demo runs")
    demo.add_argument("--out", default="checkpoints", help="folder for the runs (./checkpoints)")
    demo.add_argument("--runs", nargs="*", help="only these runs (default: all)")
    demo.add_argument("--epochs", type=int, help="override the epoch budget (smoke tests)")
    demo.add_argument("--checkpoints", type=int, help="override the checkpoints per run")
    demo.set_defaults(func=_cmd_demo)

    study = sub.add_parser(
        "study",
        help="which metric tracks a target (e.g. val_loss) across runs: Spearman ρ with intervals",
        description="Rank correlations of every metric column with a target across runs "
        "(Wu & Papyan 2024, Linguistic Collapse, arXiv 2405.17767). Tables: CSV/Parquet with one "
        "row per run, or ncviz metrics tables (each run's last step at --layer).",
    )
    study.add_argument("tables", nargs="+", help="CSV or Parquet tables")
    study.add_argument("--against", required=True, help="target column, e.g. val_loss")
    study.add_argument(
        "--derive",
        action="append",
        default=[],
        metavar="NAME=EXPR",
        help='add a column, e.g. "agreement=hits/(hits+misses)" (repeatable)',
    )
    study.add_argument(
        "--pattern",
        help="regular expression with named groups that splits run names into attributes "
        "(default: <depth>x<width>_<epochs><variant>@<seed>; empty to skip)",
    )
    study.add_argument("--layer", help="layer of ncviz metrics tables (default: the last)")
    study.add_argument("--split", help="split of ncviz metrics tables (default: the first)")
    study.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    study.add_argument("--out", default="ncviz-study", help="output folder (default ncviz-study)")
    study.set_defaults(func=_cmd_study)

    serve = sub.add_parser(
        "serve",
        help="start the dashboard on this machine (http://localhost:8501)",
        description="The dashboard on the bundled runs, and on the runs of LOGDIR (listed on the "
        "Source page under 'Server folder').",
    )
    serve.add_argument("logdir", nargs="?", help="a folder of runs (recorded, checkpoints, ...)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST}; 0.0.0.0 shares it)"
    )
    serve.set_defaults(func=_cmd_serve)

    convert = sub.add_parser("convert", help="convert a trusted pickle/TorchScript to safetensors")
    convert.add_argument("file")
    convert.add_argument("--out")
    convert.add_argument("--trust", action="store_true", help="I trust this file's code")
    convert.set_defaults(func=_cmd_convert)
    return parser


def _cmd_serve(args: argparse.Namespace) -> int:
    from ncviz.server.launch import serve

    return serve(args.logdir, port=args.port, host=args.host)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NcvizError as error:
        print(f"ncviz: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ncviz: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
