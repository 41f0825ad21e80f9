"""Choose what to analyse: a bundled demo run, uploaded checkpoints + data, or a features file."""

import json
import tempfile
from pathlib import Path

import common
import streamlit as st

from ncviz import plots
from ncviz.demo import bundled_runs, bundled_runs_dir
from ncviz.errors import NcvizError
from ncviz.load import ModelSpec, available_architectures
from ncviz.load.runs import open_run

MAX_UPLOAD_FILES = 400
CHECKPOINT_TYPES = ["safetensors", "pt", "pth", "ckpt", "npz"]
DATA_TYPES = ["npz", "pt", "safetensors", "csv", "zip"]
BUILTIN_DATA = [
    "builtin:digits",
    "builtin:digits?shape=image",
    "builtin:digits?split=test",
    "builtin:digits?target=pca:3",
    "builtin:gaussian?classes=10&dim=32&n=200",
]
DEFAULT_KWARGS = {
    "mlp": {"in_features": 64, "num_classes": 10, "widths": [128, 128, 128], "batchnorm": True},
    "cnn": {"in_channels": 1, "num_classes": 10, "image_size": 8},
    "resnet18_cifar": {"num_classes": 10},
}


def scratch_dir() -> Path:
    """A private folder for this session's uploads."""
    if "scratch" not in st.session_state:
        st.session_state["scratch"] = tempfile.mkdtemp(prefix="ncviz-upload-")
    return Path(st.session_state["scratch"])


def save_upload(upload, folder: Path) -> Path:
    name = Path(upload.name).name.replace("/", "_") or "upload"
    path = folder / name
    path.write_bytes(upload.getbuffer())
    return path


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


def upload_section() -> None:
    checkpoints = st.file_uploader(
        "Checkpoints (several = a run) or one features file",
        type=CHECKPOINT_TYPES,
        accept_multiple_files=True,
        key="upload_checkpoints",
    )
    left, right = st.columns(2)
    with left:
        data_choice = st.radio(
            "Data", ["Bundled dataset", "Upload a dataset"], key="data_choice", horizontal=True
        )
        if data_choice == "Bundled dataset":
            data_spec = st.selectbox("Dataset", BUILTIN_DATA, key="builtin_data")
            data_upload = None
        else:
            data_upload = st.file_uploader(
                "Dataset (inputs + labels/targets, CSV, or a zip of class folders)",
                type=DATA_TYPES,
                key="upload_data",
            )
            data_spec = None
    with right:
        names = available_architectures()
        arch = st.selectbox("Architecture", names, index=names.index("mlp"), key="arch")
        kwargs_text = st.text_area(
            "Architecture arguments (JSON)",
            json.dumps(DEFAULT_KWARGS.get(arch, {})),
            key=f"kwargs_{arch}",
        )
        layers_text = st.text_input(
            "Layers (comma-separated; blank = every block + classifier input)", key="layers_text"
        )
    if not st.button("Analyse", type="primary", key="analyse_upload"):
        return
    try:
        if not checkpoints:
            raise NcvizError("upload at least one checkpoint or a features file.")
        if len(checkpoints) > MAX_UPLOAD_FILES:
            raise NcvizError(f"{len(checkpoints)} files uploaded; the limit is {MAX_UPLOAD_FILES}.")
        try:
            kwargs = json.loads(kwargs_text or "{}")
        except json.JSONDecodeError as error:
            raise NcvizError(f"architecture arguments are not valid JSON ({error.msg}).") from None
        model = ModelSpec(arch.removeprefix("torchvision:"), kwargs).to_dict()
        folder = Path(tempfile.mkdtemp(dir=scratch_dir()))
        saved = [
            save_upload(upload, folder / "run")
            for upload in checkpoints
            if (folder / "run").mkdir(exist_ok=True) is None
        ]
        if data_upload is not None:
            data_spec = str(save_upload(data_upload, folder))
        elif data_spec is None:
            raise NcvizError("upload a dataset or pick a bundled one.")
        source = saved[0] if len(saved) == 1 else folder / "run"
        layers = tuple(x.strip() for x in layers_text.split(",") if x.strip()) or None
        label = saved[0].name if len(saved) == 1 else f"{len(saved)} uploaded checkpoints"
        common.start_analysis(common.AnalysisRequest(str(source), label, data_spec, model, layers))
    except NcvizError as error:
        st.error(str(error))


st.title("Source")
st.write(
    "Pick a bundled run — small networks trained on scikit-learn's digits — or upload your "
    "own checkpoints with their data. Pages on the left show the analysis."
)
mode = st.segmented_control(
    "Source", ["Bundled demo", "Upload"], default="Bundled demo", key="source_mode"
)
if mode == "Upload":
    upload_section()
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
        figure = plots.training_figure(
            analysis.table, headline, analysis.layers, analysis.terminal_phase_onset()
        )
        common.chart(figure, "source-preview")
    with st.expander("Metrics table (first 200 rows)"):
        st.dataframe(analysis.table.head(200), hide_index=True, width="stretch")
