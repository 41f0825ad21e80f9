"""The dashboard's entry page renders and reacts to its widgets (Streamlit AppTest, no browser)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app" / "main.py")


def _metric_values(at: AppTest) -> dict[str, float]:
    frame = at.dataframe[0].value
    return dict(zip(frame["metric"], frame["value"]))


def test_entry_page_shows_the_metrics_of_the_synthetic_example():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    values = _metric_values(at)
    assert {"nc1", "nc2_etf_distance", "nc3", "nc4", "accuracy"} <= set(values)
    assert values["accuracy"] == 1.0


def test_less_noise_means_lower_nc1():
    at = AppTest.from_file(APP, default_timeout=60).run()
    noisy = _metric_values(at)["nc1"]
    at.select_slider(key="noise").set_value(0.01).run()
    assert not at.exception
    assert _metric_values(at)["nc1"] < noisy / 50
