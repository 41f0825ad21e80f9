"""State and widgets shared by the dashboard pages (layout only; all logic is in ncviz)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import streamlit as st

from ncviz import plots
from ncviz.analysis import Analysis
from ncviz.demos.catalog import bundled_runs, bundled_runs_dir, is_bundled
from ncviz.errors import NcvizError
from ncviz.load.runs import RUN_FILE, open_run, run_fingerprint
from ncviz.load.server_folder import allowed_root, find_runs, resolve_inside
from ncviz.metrics import CollapseResult
from ncviz.metrics.conventions import CONVENTIONS, DEFAULT_CONVENTION
from ncviz.metrics.spectra import MEANS_CENTRING
from ncviz.server.heap import freeze_imported_heap
from ncviz.server.jobs import Job, default_runner
from ncviz.server.links import LINK_KEYS, resolve_view, view_query
from ncviz.server.requests import AnalysisRequest, run_request

freeze_imported_heap()  # Streamlit collects after every rerun: keep the imports out of it

DEFAULT_RUN = "digits-mlp"
QUICK_WAIT_S = 4.0  # a cached analysis is shown at once instead of a progress bar


def isolated(analysis: Analysis) -> bool:
    """Whether jobs on ``analysis`` read user input (and so run in a budgeted worker)."""
    return not is_bundled(analysis.source)


def submit_analysis(request: AnalysisRequest, label: str | None = None) -> Job:
    """Submit (or join) the background job for ``request``: an upload or a server-folder run
    runs in a worker process with a memory and time budget (the runner isolates it), so an
    upload that needs too much fails for its own session, never for the server."""
    return default_runner().submit(
        request.key,
        label or request.label,
        run_request,
        request,
        isolated=not is_bundled(request.source),
    )


def start_analysis(request: AnalysisRequest) -> Job:
    """Submit (or join) the background job for ``request`` and make it this session's source."""
    job = submit_analysis(request)
    st.session_state["request"] = request
    st.session_state["job_key"] = job.key
    if "link_note" in st.session_state and "link_note_job" not in st.session_state:
        st.session_state["link_note_job"] = job.key  # the run shown instead of a link's
    history = st.session_state.setdefault("history", {})  # every analysis of this session
    history.pop(request.key, None)
    history[request.key] = request
    return job


def bundled_request(name: str, **options: Any) -> AnalysisRequest:
    return AnalysisRequest(source=str(bundled_runs_dir() / name), label=name, options=options)


def current_job() -> Job | None:
    key = st.session_state.get("job_key")
    return default_runner().get(key) if key else None


def wait_briefly(job: Job, seconds: float = QUICK_WAIT_S) -> None:
    deadline = time.monotonic() + seconds
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.05)


def ensure_analysis() -> Analysis | None:
    """This session's finished analysis; starts the default bundled run on first visit, shows
    progress (with cancel) while a job runs, and the one-line error if it failed."""
    if "job_key" not in st.session_state:
        linked = linked_request()
        if linked is not None:
            start_analysis(linked)
        elif DEFAULT_RUN in bundled_runs():
            start_analysis(bundled_request(DEFAULT_RUN))
    note = st.session_state.get("link_note")
    if note and st.session_state.get("link_note_job") == st.session_state.get("job_key"):
        st.warning(note)  # for as long as the demo it opened instead is this session's run
    job = current_job()
    if job is None:
        st.info("Choose a run or upload checkpoints on the **Source** page.")
        return None
    if not job_panel(job, f"Analysis of {job.label}", "analysis"):
        return None
    analysis: Analysis = job.result
    if st.session_state.get("analysis_key") != job.key:
        st.session_state["analysis_key"] = job.key
        for key in ("checkpoint", "layer", "split"):
            st.session_state.pop(key, None)
        _open_link(analysis)
    return _split_view(analysis)


def split_tables(analysis: Analysis) -> dict[str, Any] | None:
    """The run's tables per data split (train, test) for the train-vs-test views (Hui et al.
    2022: collapse on the training data need not carry over to held-out data): the splits a
    recorded run holds, else for a bundled run its run.json ``test_data`` analysed as a second
    job. None while that job runs (its progress is shown) or when the run has no test data."""
    job = current_job()
    full = job.result if job is not None and job.status == "done" else analysis
    if len(full.splits) > 1:
        return {split: full.table[full.table["split"] == split] for split in full.splits}
    request = st.session_state.get("request")
    if request is None or not is_bundled(request.source):
        return None
    test_data = open_run(request.source).raw.get("test_data")
    if not test_data:
        return None
    test = AnalysisRequest(
        request.source, request.label, test_data, None, request.layers, request.options
    )
    job = submit_analysis(test, f"{request.label} (test)")
    if not job_panel(job, f"Analysis of {request.label} on its test split", "test-split"):
        return None
    return {"train": full.table, "test": job.result.table}


def log_request(name: str, version: str | None = None) -> AnalysisRequest | None:
    """The analysis of the run ``name`` (its path relative to the log folder of ``ncviz serve``
    / ``NCVIZ_DATA_DIR``), None unless it is a run inside that folder. The run describes itself
    (run.json's model and data, or recorded statistics); every file it reads stays inside.
    ``version``: the run's state as given (else its files are looked at now)."""
    root = allowed_root()
    if root is None:
        return None
    try:
        path = resolve_inside(root, name)
    except NcvizError:
        return None
    if not (path / RUN_FILE).is_file():
        return None
    options = {"confine_to": str(root)}
    state = run_fingerprint(path) if version is None else version
    return AnalysisRequest(str(path), name, options=options, version=state)


def link_name(request: AnalysisRequest | None) -> str | None:
    """The ``run`` a link to ``request``'s views names: a bundled run's name, or a log-folder
    run's relative path; None for anything a link cannot reopen (uploads, analyses with a model
    or data chosen in the form)."""
    if request is None:
        return None
    if is_bundled(request.source):
        return request.label
    return request.label if is_log_run(request) else None


def is_log_run(request: AnalysisRequest | None) -> bool:
    """Whether ``request`` is a run of the log folder opened as it describes itself (whatever
    state of its files it was analysed at): the runs a page follows live."""
    return request is not None and log_request(request.label, request.version) == request


def linked_request() -> AnalysisRequest | None:
    """The run a shared link names, on a session's first page: a bundled run or a run of the
    log folder; a link to anything else (an upload is private to the session that made it)
    leaves a note and opens nothing."""
    wanted = st.query_params.get("run")
    if wanted is None or st.session_state.get("link_checked"):
        return None
    st.session_state["link_checked"] = True
    if wanted in bundled_runs():
        return bundled_request(wanted)
    request = log_request(wanted)
    if request is not None:
        return request
    st.session_state["link_note"] = (
        f"The link names the run {wanted!r}, which is not available here (uploads stay private "
        "to the session that made them); showing the bundled demo instead."
    )
    return None


def _open_link(analysis: Analysis) -> None:
    """Select the checkpoint, layer and split a shared link names (once, for its own run)."""
    wanted = st.query_params.get("run")
    if st.session_state.get("link_opened") or wanted != link_name(st.session_state.get("request")):
        return
    st.session_state["link_opened"] = True
    view = resolve_view(
        st.query_params.to_dict(),
        analysis.checkpoints,
        analysis.epochs(),
        analysis.layers,
        analysis.splits,
    )
    for key, value in (
        ("checkpoint", view.checkpoint),
        ("layer", view.layer),
        ("split", view.split),
    ):
        if value is not None:
            st.session_state[key] = value


def _write_link(analysis: Analysis, checkpoint: str, layer: str) -> None:
    """Keep the URL's query on the current view, so that the address bar is a shareable link
    (bundled runs; other sources cannot be reopened elsewhere, so their links name no run)."""
    run = link_name(st.session_state.get("request"))
    if run is None:
        for key in LINK_KEYS:
            st.query_params.pop(key, None)
        return
    epochs = dict(zip(analysis.checkpoints, analysis.epochs()))
    split = analysis.split if len(analysis.splits) > 1 else None
    query = view_query(run, checkpoint, epochs.get(checkpoint), layer, split)
    for key in LINK_KEYS:
        if key not in query:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != query[key]:
            st.query_params[key] = query[key]


def link_box() -> None:
    """The current view's address, with a copy button (the code block's own)."""
    url = str(st.context.url or "").split("?")[0]
    query = "&".join(f"{k}={quote(v, safe=':')}" for k, v in st.query_params.to_dict().items())
    if query and url:
        with st.sidebar.popover("Link to this view"):
            st.code(f"{url}?{query}", language=None, wrap_lines=True)


def _split_view(analysis: Analysis) -> Analysis:
    """A run recorded on several splits (train, test) is shown one split at a time, chosen in
    the sidebar; every page then reads that split's table and results."""
    splits = analysis.splits
    if len(splits) < 2:
        return analysis
    if st.session_state.get("split") not in splits:
        st.session_state["split"] = analysis.split if analysis.split in splits else splits[0]
    with st.sidebar:
        st.selectbox(
            "Split",
            splits,
            index=splits.index(st.session_state["split"]),
            key="w_split",
            on_change=_remember,
            args=("w_split", "split"),
        )
    return analysis.for_split(st.session_state["split"])


def job_panel(job: Job, what: str, key: str) -> bool:
    """True once ``job`` is done. Until then: its live progress with a Cancel button, and the
    page reruns by itself when the job ends; after a failure, its one-line error. The one place
    the dashboard draws a background job."""
    wait_briefly(job)
    if job.status == "done":
        return True
    if job.finished:
        st.error(f"{what} {job.status}: {job.error}")
        return False
    _live_progress(job, what, key)
    return False


@st.fragment(run_every=1.0)
def _live_progress(job: Job, what: str, key: str) -> None:
    st.progress(job.fraction, text=f"{what}: {job.message or 'starting'}")
    if st.button("Cancel", key=f"cancel_{key}"):
        job.cancel()
    if job.finished:
        st.rerun()


def over_training(
    analysis: Analysis,
    metric: str,
    layers: list[str],
    references: dict[str, float] | None = None,
    table=None,
    scale: str = "auto",
):
    """``metric`` over training with everything the run knows: the terminal-phase onset, its
    events and learning-rate drops, and ``references`` — the one way pages draw such a curve."""
    return plots.training_figure(
        analysis.table if table is None else table,
        metric,
        layers,
        analysis.terminal_phase_onset(),
        analysis.events,
        references,
        scale=scale,
    )


RUNS_QUERY = "runs"  # the runs overlaid on Training / stacked on Study, in the URL


def server_runs() -> list[str]:
    """The runs a link can name, for pickers of several runs: those of the log folder
    (``ncviz serve LOGDIR``), else the bundled runs."""
    root = allowed_root()
    found = find_runs(root) if root is not None else []
    return found or bundled_runs()


def named_request(name: str) -> AnalysisRequest | None:
    """The analysis of the run a link names: a bundled run, or a run of the log folder."""
    return bundled_request(name) if name in bundled_runs() else log_request(name)


def pick_runs(label: str, choices: list[str], help: str) -> list[str]:
    """A multiselect of runs whose choice lives in the URL (``?runs=a&runs=b``) and is shared by
    the pages that take several runs (Training's overlay, Study)."""
    if "picked_runs" not in st.session_state:  # a link's choice, once
        asked = st.query_params.get_all(RUNS_QUERY)
        st.session_state["picked_runs"] = [r for r in dict.fromkeys(asked) if r in choices]
    picked = [r for r in st.session_state["picked_runs"] if r in choices]
    st.multiselect(
        label,
        choices,
        default=picked,
        key="w_picked_runs",
        on_change=_remember,
        args=("w_picked_runs", "picked_runs"),
        help=help,
    )
    if picked:
        st.query_params[RUNS_QUERY] = picked
    else:
        st.query_params.pop(RUNS_QUERY, None)
    return picked


CONVENTION_QUERY = "convention"  # a paper's conventions for the tables (Study, Export)


def convention_choice(help: str) -> str:
    """Whose conventions a page's tables follow (``ncviz conventions``): ncviz's or a paper's
    preset, chosen once for Study and Export and kept in the URL (``?convention=lc2024``). An
    unknown name in a link is one line naming the valid ones."""
    if "convention" not in st.session_state:  # a link's choice, once
        asked = st.query_params.get(CONVENTION_QUERY, DEFAULT_CONVENTION)
        if asked not in CONVENTIONS:  # said until another convention is picked
            st.session_state["convention_note"] = (
                f"The link asks for the convention {asked!r}, which ncviz does not know; "
                f"showing ncviz's (valid: {', '.join(CONVENTIONS)})."
            )
        st.session_state["convention"] = asked if asked in CONVENTIONS else DEFAULT_CONVENTION
    if "convention_note" in st.session_state:
        st.warning(st.session_state["convention_note"])
    names = list(CONVENTIONS)
    st.selectbox(
        "Convention",
        names,
        index=names.index(st.session_state["convention"]),
        format_func=lambda name: f"{name} — {CONVENTIONS[name].title}",
        key="w_convention",
        on_change=_pick_convention,
        help=help,
    )
    chosen = st.session_state["convention"]
    if chosen == DEFAULT_CONVENTION:
        st.query_params.pop(CONVENTION_QUERY, None)
    elif st.query_params.get(CONVENTION_QUERY) != chosen:
        st.query_params[CONVENTION_QUERY] = chosen
    if chosen != DEFAULT_CONVENTION:  # row names hold * and _: shown as typed, not markdown
        text = " · ".join(CONVENTIONS[chosen].differences)
        st.caption(text.replace("*", "\\*").replace("_", "\\_"))
    return chosen


def _pick_convention() -> None:
    _remember("w_convention", "convention")
    st.session_state.pop("convention_note", None)


def in_convention(request: AnalysisRequest, convention: str) -> AnalysisRequest:
    """``request`` with its rows in ``convention`` (the same request for ncviz's own)."""
    if convention == DEFAULT_CONVENTION:
        return request
    return replace(request, options={**request.options, "convention": convention})


def analyses_of(
    names: list[str], convention: str = DEFAULT_CONVENTION
) -> tuple[dict[str, Analysis], list[str]]:
    """The finished analyses of the runs ``names`` (each a background job, cached like any
    analysis), and the names still being analysed: their progress is drawn, as the one-line
    error of a run that failed (left out). A log-folder run that grew keeps its last analysis
    shown while the new one runs; the page's follow fragment watches them all (:func:`_follow`)."""
    shown = st.session_state.setdefault("runs_shown", {})  # name → key of the job drawn last
    watched, pending, analyses, waiting = {}, [], {}, []
    for name in names:
        request = named_request(name)
        if request is None:
            st.warning(f"The run {name!r} is not available here.")
            continue
        request = in_convention(request, convention)
        job = submit_analysis(request, name)
        if request.version is not None:
            watched[name] = (request.source, request.version)
        previous = default_runner().get(shown.get(name, ""))
        if not job.finished and previous is not None and previous.status == "done":
            analyses[name] = previous.result  # the run grew: its new analysis is on its way
            pending.append(job.key)
        elif job_panel(job, f"Analysis of {name}", f"runs-{name}"):
            analyses[name] = job.result
            shown[name] = job.key
        elif not job.finished:
            waiting.append(name)
    st.session_state["runs_watched"] = watched
    st.session_state["runs_pending"] = pending
    return analyses, waiting


def checkpoint_label(analysis: Analysis, name: str) -> str:
    epochs = dict(zip(analysis.checkpoints, analysis.epochs()))
    return f"epoch {epochs[name]}" if epochs.get(name) is not None else name


def _remember(widget_key: str, store_key: str) -> None:
    if st.session_state[widget_key] is not None:  # a segmented control clicked off keeps its value
        st.session_state[store_key] = st.session_state[widget_key]


def means_centring() -> str:
    """The class means' convention for ranks and spectra — centred M = [μ_c − μ_G] or the
    uncentred [μ_c] — one for the whole page, chosen once for Spectra and the Theory lab alike."""
    chosen = st.session_state.setdefault("means_centring", "centred")
    st.segmented_control(
        "Class means",
        list(MEANS_CENTRING),
        default=chosen,
        key="w_means_centring",
        on_change=_remember,
        args=("w_means_centring", "means_centring"),
        format_func=MEANS_CENTRING.get,
        help="Ranks and spectra of the centred means (Papyan et al. 2020, collapse: rank C − 1) "
        "or of the class means themselves (the deep-UFM low-rank paper, Súkeník et al. 2024: "
        "deep neural collapse has rank C). The same choice here and in the Theory lab.",
    )
    return str(st.session_state["means_centring"])


def selectors(analysis: Analysis) -> tuple[str, str]:
    """Sidebar checkpoint slider and layer picker, shared by every page.

    The choice lives in plain session-state keys (widget state is dropped on page switches)."""
    checkpoints, layers = analysis.checkpoints, analysis.layers
    if st.session_state.get("checkpoint") not in checkpoints:
        st.session_state["checkpoint"] = checkpoints[-1]
    if st.session_state.get("layer") not in layers:
        st.session_state["layer"] = layers[-1]
    with st.sidebar:
        st.caption(f"Run: **{analysis.run}** · {len(checkpoints)} checkpoint(s)")
        if len(checkpoints) > 1:
            st.select_slider(
                "Checkpoint",
                options=checkpoints,
                value=st.session_state["checkpoint"],
                key="w_checkpoint",
                on_change=_remember,
                args=("w_checkpoint", "checkpoint"),
                format_func=lambda c: checkpoint_label(analysis, c),
            )
        st.selectbox(
            "Layer",
            layers,
            index=layers.index(st.session_state["layer"]),
            key="w_layer",
            on_change=_remember,
            args=("w_layer", "layer"),
        )
        for key in ("runs_watched", "runs_pending"):  # set again by the page that draws them
            st.session_state.pop(key, None)
        if is_log_run(st.session_state.get("request")):
            _follow()  # a run of the log folder may still be growing
    _write_link(analysis, st.session_state["checkpoint"], st.session_state["layer"])
    link_box()
    return st.session_state["checkpoint"], st.session_state["layer"]


def page_result(kind: type = CollapseResult) -> tuple[Analysis, str, str, Any] | None:
    """The analysis, selected checkpoint and layer, and that result — or None (with a note)."""
    analysis = ensure_analysis()
    if analysis is None:
        return None
    checkpoint, layer = selectors(analysis)
    result = analysis.results.get((checkpoint, layer))
    if not isinstance(result, kind):
        wanted = "classification" if kind is CollapseResult else "regression"
        st.info(f"This page shows {wanted} runs; **{analysis.run}** is a {analysis.task} run.")
        return None
    return analysis, checkpoint, layer, result


def chart(figure, key: str) -> None:
    st.plotly_chart(figure, key=key, width="stretch", config={"displaylogo": False})


FOLLOW_SECONDS = 2.0  # how often an open page looks at its run's folder
LIVE_SECONDS = 120.0  # how long the "live" badge stays after the run last changed


@st.fragment(run_every=FOLLOW_SECONDS)
def _follow() -> None:
    """Follow a run that is still being written (TensorBoard's habit): every few seconds stat its
    folder's files; when they changed, analyse the run again in the background (finished
    checkpoints come from the result cache) while the page keeps showing what it has, then swap
    the new analysis in and redraw. Nothing redraws while nothing changes."""
    request = st.session_state.get("request")
    if request is None:
        return
    pending = st.session_state.get("follow_job")
    if pending is not None:
        job = default_runner().get(pending)
        if job is None or job.status in ("failed", "cancelled"):
            st.session_state.pop("follow_job", None)  # keep the last good analysis
        elif job.status == "done":
            _swap_in(job, st.session_state.pop("follow_request"))
            st.session_state.pop("follow_job", None)
            st.rerun(scope="app")
    else:
        try:
            version = run_fingerprint(request.source)
        except OSError:
            return  # the folder went away: keep what is shown
        if version != request.version:
            newer = replace(request, version=version)
            st.session_state["follow_job"] = submit_analysis(newer, request.label).key
            st.session_state["follow_request"] = newer
    _follow_other_runs()
    changed = st.session_state.get("live_at")
    if changed is not None and time.time() - changed < LIVE_SECONDS:
        st.caption(f"● live · updated {time.strftime('%H:%M:%S', time.localtime(changed))}")


def _follow_other_runs() -> None:
    """Redraw the page when a run drawn beside this one (:func:`analyses_of`) grew on disk, or
    when the new analysis of one that grew is done."""
    runner = default_runner()
    for key in st.session_state.get("runs_pending", []):
        job = runner.get(key)
        if job is None or job.finished:
            st.rerun(scope="app")
    for source, version in st.session_state.get("runs_watched", {}).values():
        try:
            if run_fingerprint(source) != version:
                st.rerun(scope="app")
        except OSError:
            continue  # the folder went away: keep what is shown


def _swap_in(job: Job, request: AnalysisRequest) -> None:
    """Make ``job``'s analysis the session's, keeping the chosen layer and split; a view on the
    last checkpoint moves on to the new last one."""
    previous = current_job()
    last = previous.result.checkpoints[-1] if previous and previous.status == "done" else None
    if st.session_state.get("checkpoint") == last:
        st.session_state.pop("checkpoint", None)  # the selectors pick the newest
    st.session_state["request"] = request
    st.session_state["job_key"] = st.session_state["analysis_key"] = job.key
    st.session_state["live_at"] = time.time()
