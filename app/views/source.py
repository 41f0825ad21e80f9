"""Choose what to analyse: a bundled demo run, uploaded checkpoints + data, or a features file."""

import json
from pathlib import Path
from typing import Any

import common
import streamlit as st

from ncviz.analysis import hookable_layers
from ncviz.demos.catalog import bundled_runs, bundled_runs_dir
from ncviz.errors import NcvizError
from ncviz.load import ModelSpec, available_architectures
from ncviz.load.runs import open_run
from ncviz.load.server_folder import (
    allowed_root,
    find_runs,
    list_entries,
    parent_of,
    resolve_inside,
)
from ncviz.record import CUSTOM_MODEL_ROUTES
from ncviz.server.jobs import default_runner
from ncviz.server.scratch import new_session_folder, save_upload, save_uploads, upload_needs

MAX_UPLOAD_FILES = 400
CHECKPOINT_TYPES = ["safetensors", "pt", "pth", "ckpt", "npz", "zip", "onnx", "data"]
DATA_TYPES = ["npz", "pt", "safetensors", "csv", "zip"]
BUILTIN_DATA = [
    "builtin:digits",
    "builtin:digits?shape=image",
    "builtin:digits?split=test",
    "builtin:digits?target=pca:3",
    "builtin:gaussian?classes=10&dim=32&n=200",
    "builtin:colored-digits?split=all",
]
DEFAULT_KWARGS = {
    "mlp": {"in_features": 64, "num_classes": 10, "widths": [128, 128, 128], "batchnorm": True},
    "cnn": {"in_channels": 1, "num_classes": 10, "image_size": 8},
    "resnet18_cifar": {"num_classes": 10},
}


def scratch_dir() -> Path:
    """A private folder for this session's uploads (stale ones of closed sessions are removed)."""
    folder = st.session_state.get("scratch")
    if folder is None or not Path(folder).is_dir():
        st.session_state["scratch"] = str(new_session_folder())
    return Path(st.session_state["scratch"])


def bundled_section() -> None:
    runs = bundled_runs()
    if not runs:
        st.warning(f"No bundled runs in {bundled_runs_dir()}; recreate them with `ncviz demo`.")
        return
    request = st.session_state.get("request")
    current = request.label if request and request.label in runs else common.DEFAULT_RUN
    name = st.selectbox(
        "Bundled run", runs, index=runs.index(current) if current in runs else 0, key="bundled_run"
    )
    run = open_run(bundled_runs_dir() / name)
    st.caption(
        f"{run.notes}  \nModel `{run.model.name}` · data `{run.data.source}` · "
        f"{len(run.checkpoints)} checkpoint(s) · task {run.task}"
    )
    if request is None or request.source != str(bundled_runs_dir() / name):
        common.start_analysis(common.bundled_request(name))


def model_inputs(prefix: str) -> tuple[str, str]:
    """Architecture picker and its JSON arguments (widget keys start with ``prefix``)."""
    names = available_architectures()
    arch = st.selectbox("Architecture", names, index=names.index("mlp"), key=f"{prefix}arch")
    kwargs_text = st.text_area(
        "Architecture arguments (JSON)",
        json.dumps(DEFAULT_KWARGS.get(arch, {})),
        key=f"{prefix}kwargs_{arch}",
    )
    return arch, kwargs_text


def _model_dict(arch: str, kwargs_text: str) -> dict:
    try:
        kwargs = json.loads(kwargs_text or "{}")
    except json.JSONDecodeError as error:
        raise NcvizError(f"architecture arguments are not valid JSON ({error.msg}).") from None
    return ModelSpec(arch.removeprefix("torchvision:"), kwargs).to_dict()


def layer_picker(
    arch: str, kwargs_text: str, data_spec: str | None, uploads: list | None = None
) -> tuple[str, ...] | None:
    """Layers to analyse: listed from the model on a sample of the data, defaults preselected;
    for an uploaded ONNX graph, from the graph itself."""
    onnx = [u for u in uploads or [] if u.name.lower().endswith(".onnx")]
    graphs = [(u.name, u.size) for u in uploads or []] if onnx else []  # what it listed
    if st.button(
        "List layers",
        key="list_layers",
        disabled=data_spec is None,
        help="Build the architecture and run two samples through it",
    ):
        # the model runs on the user's data: a job in a budgeted worker (progress, cancel),
        # never in the server; a graph whose outputs need 12 GB fails for this session alone
        try:
            if onnx:
                source, _ = save_uploads(uploaded(uploads or []), scratch_dir())
                args: tuple = (None, data_spec, str(source))
            else:
                args = (_model_dict(arch, kwargs_text), data_spec)
            key = "layers-" + json.dumps(args, sort_keys=True, default=str)
            default_runner().submit(key, "listing layers", hookable_layers, *args, isolated=True)
            st.session_state["layer_listing"] = (key, arch, kwargs_text, data_spec, graphs)
        except NcvizError as error:
            st.error(str(error))
    listing = st.session_state.get("layer_listing")
    job = None
    if listing is not None and listing[1:] == (arch, kwargs_text, data_spec, graphs):
        job = default_runner().get(listing[0])
    listed = job.result if job is not None and common.job_panel(job, "Layers", "layers") else None
    if listed is None:
        st.caption("Layers: every top-level block and the classifier input (list them to choose).")
        return None
    infos, defaults = listed
    shapes = {info.name: "×".join(map(str, info.output_shape)) for info in infos}
    chosen = st.multiselect(
        "Layers",
        list(shapes),
        default=defaults,
        key="layers_chosen",
        format_func=lambda name: f"{name}  ({shapes[name]})",
    )
    return tuple(chosen) or None


def custom_model_routes() -> None:
    """How to bring a model of one's own, in order of preference, with copyable snippets."""
    with st.expander("Your own model (any architecture)? Four routes"):
        for number, (title, code) in enumerate(CUSTOM_MODEL_ROUTES, 1):
            st.markdown(f"**{number}. {title}**")
            st.code(code, language="bash" if code.startswith("ncviz") else "python")


def uploaded(files: list) -> list[tuple[str, memoryview]]:
    """(name, bytes) of Streamlit's uploaded files."""
    return [(upload.name, upload.getbuffer()) for upload in files]


def data_inputs() -> tuple[str | None, Any]:
    """A bundled dataset's spec, or the uploaded dataset file (saved by the caller)."""
    data_choice = st.radio(
        "Data", ["Bundled dataset", "Upload a dataset"], key="data_choice", horizontal=True
    )
    if data_choice == "Bundled dataset":
        return st.selectbox("Dataset", BUILTIN_DATA, key="builtin_data"), None
    upload = st.file_uploader(
        "Dataset (inputs + labels/targets, CSV, or a zip of class folders)",
        type=DATA_TYPES,
        key="upload_data",
    )
    return None, upload


def upload_section() -> None:
    checkpoints = st.file_uploader(
        "Checkpoints (several = a run), features files, a zipped recorded run, or an ONNX model "
        "(+ its .onnx.data, + checkpoints of its weights)",
        type=CHECKPOINT_TYPES,
        accept_multiple_files=True,
        key="upload_checkpoints",
    )
    # ask only for what the uploaded files are read with (an ONNX graph needs no architecture, a
    # recorded run or features files need neither)
    needs = upload_needs([upload.name for upload in checkpoints or []])
    if needs.note:
        st.caption(needs.note)
    data_spec, data_upload, arch, kwargs_text = None, None, None, ""
    optional = needs.model == "optional" and needs.data == "optional"
    with (
        st.expander("Architecture and dataset (only for a zip of checkpoints)")
        if optional
        else st.container()
    ):
        left, right = st.columns(2)
        if needs.data != "unused":
            with left:
                data_spec, data_upload = data_inputs()
        if needs.model != "unused":
            with right:
                arch, kwargs_text = model_inputs("")
    if data_upload is not None:
        try:
            data_spec = str(save_upload(data_upload.name, data_upload.getbuffer(), scratch_dir()))
        except NcvizError as error:
            st.error(str(error))
            return
    layers = None
    if needs.data == "needed":  # layers are listed by running the model (or graph) on the data
        layers = layer_picker(arch or "", kwargs_text, data_spec, checkpoints)
    if not st.button("Analyse", type="primary", key="analyse_upload"):
        return
    try:
        if len(checkpoints) > MAX_UPLOAD_FILES:
            raise NcvizError(f"{len(checkpoints)} files uploaded; the limit is {MAX_UPLOAD_FILES}.")
        model = None if arch is None else _model_dict(arch, kwargs_text)
        if data_spec is None and needs.data == "needed":
            raise NcvizError("upload a dataset or pick a bundled one.")
        source, label = save_uploads(uploaded(checkpoints), scratch_dir())
        # every file the upload names (a run.json's data, train_data) stays in its folder
        options = {"confine_to": str(scratch_dir())}
        common.start_analysis(
            common.AnalysisRequest(str(source), label, data_spec, model, layers, options)
        )
    except NcvizError as error:
        st.error(str(error))


def server_section(root: Path) -> None:
    """The runs of the log folder (``ncviz serve LOGDIR``, ``NCVIZ_DATA_DIR``), found recursively
    and opened as they describe themselves; then any run, checkpoint or data under the folder
    with a model and data chosen here (nothing outside it)."""
    runs = find_runs(root)
    if runs:
        request = st.session_state.get("request")
        active = request.label if request is not None and request.label in runs else runs[0]
        left, right = st.columns([3, 1])
        picked = left.selectbox(
            f"Runs in the log folder ({len(runs)})",
            runs,
            index=runs.index(active),
            key="log_run",
            help="Every folder with a run.json under the folder, as TensorBoard's --logdir. "
            "Its link (the address bar) reopens it.",
        )
        if right.button("Open", key="open_log_run", type="primary"):
            chosen = common.log_request(picked)
            if chosen is not None:
                common.start_analysis(chosen)
        st.divider()
    current = st.session_state.get("server_path", "")
    try:
        entries = list_entries(root, current)
    except NcvizError as error:
        st.error(str(error))
        st.session_state["server_path"] = ""
        return
    st.caption(f"Data folder `{root.name}/{current}`")
    left, right = st.columns([3, 1])
    choice = left.selectbox("Run folder, checkpoint or features file", entries, key="server_entry")
    if current and right.button("Up", key="server_up"):
        st.session_state["server_path"] = parent_of(current)
        st.rerun()
    if choice and choice.endswith("/") and right.button("Open", key="server_open"):
        st.session_state["server_path"] = choice.rstrip("/")
        st.rerun()
    data_left, model_right = st.columns(2)
    with data_left:
        data_spec = st.selectbox(
            "Dataset", [*BUILTIN_DATA, "a file in the data folder"], key="server_data"
        )
        if data_spec == "a file in the data folder":
            data_spec = st.text_input(
                "Data file (relative to the data folder)", key="server_data_path"
            )
    with model_right:
        arch, kwargs_text = model_inputs("server_")
    if not st.button("Analyse", type="primary", key="analyse_server"):
        return
    try:
        if not choice:
            raise NcvizError("the data folder is empty.")
        source = resolve_inside(root, choice.rstrip("/"))
        if data_spec and not data_spec.startswith("builtin:"):
            data_spec = str(resolve_inside(root, data_spec))
        model = _model_dict(arch, kwargs_text)
        options = {"confine_to": str(root)}
        common.start_analysis(
            common.AnalysisRequest(str(source), choice, data_spec, model, None, options)
        )
    except NcvizError as error:
        st.error(str(error))


st.title("Source")
st.write(
    "Pick a bundled run — small networks trained on scikit-learn's digits — or upload your "
    "own: a run recorded from your training loop with `ncviz.Recorder` (zip its folder), an "
    "ONNX export, features files, or checkpoints of a built-in architecture with their data. "
    "Pages on the left show the analysis."
)
root = allowed_root()
if "request" not in st.session_state and (linked := common.linked_request()) is not None:
    common.start_analysis(linked)  # a shared link's run: bundled, or of the log folder
request = st.session_state.get("request")
# a run of the log folder (opened by a link, or grown since): the Source page shows that folder
from_log = common.is_log_run(request)
modes = ["Bundled demo", "Upload"] + (["Server folder"] if root is not None else [])
mode = st.segmented_control(
    "Source", modes, default="Server folder" if from_log else "Bundled demo", key="source_mode"
)
custom_model_routes()
if mode == "Upload":
    upload_section()
elif mode == "Server folder" and root is not None:
    server_section(root)
else:
    bundled_section()

analysis = common.ensure_analysis()
if analysis is not None:
    st.success(
        f"**{analysis.run}**: {len(analysis.checkpoints)} checkpoint(s) × "
        f"{len(analysis.layers)} layer(s) analysed ({analysis.task})."
    )
    checkpoint, layer = common.selectors(analysis)
    headline = "nrc1" if analysis.task == "regression" else "nc1"
    if len(analysis.checkpoints) > 1 and headline in set(analysis.table["metric"]):
        figure = common.over_training(analysis, headline, analysis.layers)
        common.chart(figure, "source-preview")
    with st.expander("Metrics table (first 200 rows)"):
        st.dataframe(analysis.table.head(200), hide_index=True, width="stretch")
