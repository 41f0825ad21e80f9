"""The Lightning and Hugging Face callbacks, each with the real framework, write runs that open."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from ncviz.analysis import analyze
from ncviz.load.recorded import open_recorded
from tests.app.test_pages import _app, _assert_clean, _visit

lightning = pytest.importorskip("lightning", reason="lightning is a dev requirement")
transformers = pytest.importorskip("transformers", reason="transformers is a dev requirement")


def blobs(n=300, classes=3, dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = 3 * torch.eye(classes, dim)[y] + torch.randn(n, dim, generator=generator)
    return x, y


class LitNet(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _index):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_callback_records_a_run_the_dashboard_opens(tmp_path):
    from ncviz.integrations.lightning import NcvizCallback

    logging.getLogger("lightning").setLevel(logging.ERROR)
    x, y = blobs()
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    callback = NcvizCallback(
        tmp_path / "lit", layers=["net.0"], classifier="net.2", every_n_epochs=2
    )
    trainer = lightning.Trainer(
        max_epochs=3,
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(LitNet(), train)
    run = open_recorded(tmp_path / "lit")
    assert [e.step for e in run.entries] == [0, 2]  # every 2nd epoch and the last
    assert run.layers == ["net.0", "net.2:input"]
    assert len(run.log["train_loss"]) == 3 and run.log["train_loss"][2] < run.log["train_loss"][0]
    analysis = analyze(tmp_path / "lit")
    assert analysis.metrics_at("step 2", "net.2:input")["accuracy"] > 0.9
    _opens_in_dashboard(tmp_path / "lit", "lit")
    # Lightning's own checkpoint of a module holding its network as self.net loads into the
    # bare network (the `net.` prefix is a wrapper's)
    from ncviz.load import load_weights, read_checkpoint

    trainer.save_checkpoint(tmp_path / "epoch=2-step=30.ckpt")
    checkpoint = read_checkpoint(tmp_path / "epoch=2-step=30.ckpt")
    assert (checkpoint.epoch, checkpoint.step) == (trainer.current_epoch, trainer.global_step)
    load_weights(
        nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), checkpoint.state_dict
    )


def test_hf_trainer_callback_records_a_run_the_dashboard_opens(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from ncviz.integrations.hf import NcvizTrainerCallback

    transformers.logging.set_verbosity_error()
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(240) % 3
    # the class is the token that fills most of the sequence
    ids = torch.randint(4, 20, (240, 12), generator=generator)
    ids[:, :8] = 1 + labels[:, None]
    rows = [{"input_ids": i, "labels": int(c)} for i, c in zip(ids, labels)]
    config = BertConfig(
        vocab_size=20,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    args = TrainingArguments(
        output_dir=str(tmp_path / "hf-out"),
        num_train_epochs=2,
        per_device_train_batch_size=16,
        learning_rate=5e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="epoch",
        use_cpu=True,
        disable_tqdm=True,
    )
    callback = NcvizTrainerCallback(
        tmp_path / "hf", layers=["bert.pooler"], classifier="classifier"
    )
    Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback]).train()
    run = open_recorded(tmp_path / "hf")
    assert [e.step for e in run.entries] == [0, 1]
    assert run.entries[0].num_samples == 240
    assert run.layers == ["bert.pooler", "classifier:input"]
    assert "loss" in run.log or "train_loss" in run.log
    _opens_in_dashboard(tmp_path / "hf", "hf")


def _opens_in_dashboard(folder, name):
    import os

    os.environ["NCVIZ_DATA_DIR"] = str(folder.parent)
    try:
        at = _app().run()
        at.segmented_control(key="source_mode").set_value("Server folder").run()
        at.selectbox(key="server_entry").set_value(f"{name}/").run()
        at.button(key="analyse_server").click().run()
        _assert_clean(at, f"{name} source")
        assert any(f"**{folder.name}**" in s.value for s in at.success)
        _visit(at, "overview")
        assert "NC1 · nc1" in {m.label for m in at.metric}
        for page in ("training", "geometry", "embedding"):
            _visit(at, page)
            _assert_clean(at, f"{name}/{page}")
            assert len(at.get("plotly_chart")) >= 1, page
    finally:
        del os.environ["NCVIZ_DATA_DIR"]
