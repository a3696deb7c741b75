"""The report plots read at their saved size: plain ticks, every series visible, small
multiples at most 4 wide, and no figure for a single x value."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402

from advparams.evaluation import ResultRow, config_from_mapping  # noqa: E402
from advparams.reports.fingerprints import spread  # noqa: E402
from advparams.reports.plots import budget_figure, count_ticks, hist_figure, make_plots, sweep_keys, tied_options  # noqa: E402
from advparams.reports.plotting import (  # noqa: E402
    DPI,
    STYLE,
    Series,
    attribute_doc,
    axis_label,
    coinciding,
    dodge,
    draw_series,
    enough_points,
    grid_shape,
    pyplot,
    same_curves,
    shifted,
    simplify,
    tick_label,
    tick_values,
)

BUDGETS = [1, 2, 5, 10, 20, 50]
CFG = config_from_mapping(
    {
        "name": "plots",
        "dataset": "synthetic",
        "model": "lenet",
        "seeds": [0, 1],
        "schemes": [{"name": "advparams"}, {"name": "random", "match_params": "advparams"}],
        "attacks": [
            {"name": "finetune", "grid": {"data_fraction": [0.01, 0.05, 0.1]}},
            {"name": "key-leak", "grid": {"fraction": [0.5]}},
            {"name": "prune", "grid": {"rate": [0.3, 0.6], "scope": ["layer", "global"]}},
        ],
        "budgets": BUDGETS,
    }
)


def _rows() -> list[ResultRow]:
    rows = []
    for seed in (0, 1):
        rows.append(ResultRow("plots", "clean", seed, accuracy=0.9))
        rows.append(ResultRow("plots", "lock", seed, "advparams", accuracy=0.1, metrics={"params_changed": 10}))
        for scheme in ("advparams", "random"):
            for b in BUDGETS:
                # nnsplitter-like: the last budget changes a little fewer values on one seed
                changed = b - seed if b == 50 else b
                rows.append(
                    ResultRow("plots", "budget", seed, scheme, setting={"budget": b}, accuracy=0.5,
                              metrics={"params_changed": changed})
                )  # fmt: skip
            rows.append(ResultRow("plots", "attack", seed, scheme, "key-leak", {"fraction": 0.5}, 0.3))
            for f in (0.01, 0.05, 0.1):
                rows.append(ResultRow("plots", "attack", seed, scheme, "finetune", {"data_fraction": f}, 0.8))
            for rate in (0.3, 0.6):
                for scope in ("layer", "global"):
                    # both schemes give the same accuracy: the lines coincide
                    rows.append(
                        ResultRow("plots", "attack", seed, scheme, "prune", {"rate": rate, "scope": scope}, 0.1)
                    )
        rows.append(ResultRow("plots", "baseline", seed, "scratch", "finetune", {"data_fraction": 0.05}, 0.6))
    layers = {
        f"layer{i}.weight": {"range": [-1.0, 1.0], "original": [1, 5, 9, 5, 1], "locked": [2, 5, 8, 5, 1],
                             "changed": [1, 0, 0, 0, 0]}
        for i in range(10)
    }  # fmt: skip
    rows.append(ResultRow("plots", "histogram", 0, "advparams", metrics=layers))
    return rows


# -- pure helpers -------------------------------------------------------------------------


def test_enough_points_needs_two_distinct_values() -> None:
    assert not enough_points([])
    assert not enough_points([0.5, 0.5, 0.5])
    assert enough_points([0.5, 0.7])


@pytest.mark.parametrize("n", range(1, 31))
def test_grid_is_at_most_four_wide_and_holds_every_panel(n: int) -> None:
    rows, cols = grid_shape(n)
    assert cols <= 4 and rows * cols >= n and (rows - 1) * cols < n


def test_ticks_are_the_plotted_values_as_plain_numbers() -> None:
    assert tick_values([1, 2, 5, 10, 20, 50, 48.5], log=True, preferred=BUDGETS) == [1, 2, 5, 10, 20, 50]
    assert tick_values([10, 12, 50], log=True) == [10, 50]  # 12 crowds 10 on a log axis
    assert tick_values([0.1, 0.5, 0.9], log=False) == [0.1, 0.5, 0.9]
    assert [tick_label(v) for v in (1.0, 5.000000000000001, 10000.0, 0.05, 2.5)] == ["1", "5", "10000", "0.05", "2.5"]
    assert count_ticks(7) == [1, 2, 5] and count_ticks(3000) == [1, 10, 100, 1000]


def test_coinciding_series_are_dodged_apart_and_the_others_stay() -> None:
    same = {1.0: 10.0, 2.0: 11.0, 3.0: 12.0}
    curves = [same, dict(same), {1.0: 50.0, 2.0: 60.0, 3.0: 70.0}, {1.0: 10.5, 2.0: 11.5, 3.0: 12.5}]
    assert coinciding(curves, tol=1.0) == [[0, 1, 3]]
    shifts = dodge(curves, tol=1.0)
    assert shifts[2] == 0.0
    assert len({shifts[0], shifts[1], shifts[3]}) == 3 and 0.0 in shifts[:2] + shifts[3:]
    # A single shared point is not a coinciding line.
    assert coinciding([{1.0: 5.0}, {1.0: 5.0}], tol=1.0) == []
    # The shift is a fraction of the x grid's smallest step (ratio on a log axis).
    assert shifted([1.0, 2.0], 0.1, [1.0, 2.0, 4.0], log=False) == pytest.approx([1.1, 2.1])
    assert shifted([10.0], 0.5, [10.0, 40.0], log=True) == pytest.approx([20.0])


def test_draw_series_gives_coinciding_lines_distinct_markers_and_x() -> None:
    plt = pyplot()
    fig, ax = plt.subplots()
    pts = {0.1: [10.0, 10.2], 0.5: [10.0, 10.4]}
    moved = draw_series(ax, [Series("a", pts, 0), Series("b", dict(pts), 1)], log=False, tol=2.0)
    lines = [c.lines[0] for c in ax.containers]  # each error bar's data line
    plt.close(fig)
    assert moved and len(lines) == 2
    assert lines[0].get_marker() != lines[1].get_marker()
    assert list(lines[0].get_xdata()) != list(lines[1].get_xdata())


def test_identical_curves_are_grouped_even_with_extra_points() -> None:
    assert simplify([0, 0, 0, 0.5, 1], [0, 0.3, 1, 1, 1]) == [(0, 0), (0, 1), (1, 1)]
    perfect, extra, diagonal = ([0, 0, 1], [0, 1, 1]), ([0, 0, 0, 1], [0, 0.5, 1, 1]), ([0, 1], [0, 1])
    assert same_curves([perfect, diagonal, extra]) == [[0, 2], [1]]


def test_axis_labels_come_with_units_from_the_attack_config() -> None:
    from advparams.attacks import ATTACKS

    doc = attribute_doc(ATTACKS.get("finetune").Config, "data_fraction")
    assert doc is not None and doc.startswith("share of")
    label, scale = axis_label("data_fraction", [0.01, 0.1], doc)
    assert label.startswith("data_fraction (%)") and scale == 100.0
    plain = ("weight: weight of the SSIM term", 1.0)
    assert axis_label("weight", [0.1, 10.0], "weight of the SSIM term [inferred].") == plain
    assert attribute_doc(ATTACKS.get("finetune").Config, "no_such_option") is None


def test_sweep_keys_split_lines_on_free_options_and_name_tied_ones() -> None:
    grid = [{"rate": r, "scope": s} for r in (0.1, 0.2) for s in ("layer", "global")]
    assert sweep_keys(grid) == ("rate", ["scope"])
    cases = [{"data_fraction": 0.01, "epochs": 40}, {"data_fraction": 0.05, "epochs": 25}]
    assert sweep_keys(cases) == ("data_fraction", [])
    assert tied_options(cases, "data_fraction", []) == ["epochs 40, 25"]
    assert sweep_keys([{"fraction": 0.5}]) is None
    assert sweep_keys([{"method": "a"}, {"method": "b"}]) is None


def test_spread_keeps_equal_scores_apart() -> None:
    assert spread(3, 0.2) == [-0.1, 0.0, 0.1] and spread(1, 0.2) == [0.0]


# -- figures ------------------------------------------------------------------------------


def test_budget_ticks_are_the_budgets_plotted_as_plain_labels() -> None:
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig = budget_figure(plt, _rows(), CFG, ([0.9], 0.1))
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    plt.close(fig)
    assert ax.get_xscale() == "log"
    assert labels == [str(b) for b in BUDGETS]
    assert minor == []
    assert "values changed" in ax.get_xlabel() and ax.get_ylabel() == "test accuracy (%)"


def test_budget_with_one_budget_is_not_drawn() -> None:
    rows = [r for r in _rows() if r.kind != "budget" or r.setting["budget"] == 5]
    assert budget_figure(pyplot(), rows, CFG, ([], None)) is None


def test_histograms_are_small_multiples_with_labelled_axes_and_one_legend() -> None:
    plt = pyplot()
    layers = next(r for r in _rows() if r.kind == "histogram").metrics
    with plt.rc_context(STYLE):
        fig = hist_figure(plt, layers, "t")
    drawn = [ax for ax in fig.axes if ax.axison]
    cols = {round(ax.get_position().x0, 3) for ax in drawn}
    width, _ = fig.get_size_inches()
    plt.close(fig)
    assert len(drawn) == 10 and len(cols) <= 4
    assert 6 <= width <= 10
    assert all(ax.get_yscale() == "log" for ax in drawn)
    assert {ax.get_xlabel() for ax in drawn} == {"weight value", ""}
    assert sum(ax.get_xlabel() == "weight value" for ax in drawn) >= 4  # the bottom of every column
    assert any(ax.get_ylabel() == "count (log scale)" for ax in drawn)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in drawn)


def test_make_plots_skips_single_point_plots_and_keeps_sizes_legible(tmp_path) -> None:  # type: ignore[no-untyped-def]
    made = make_plots(_rows(), CFG, tmp_path)
    assert "key-leak.png" not in made and not (tmp_path / "key-leak.png").exists()
    assert {"budget.png", "finetune.png", "prune.png", "hist-advparams.png"} == set(made)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(made)
    for name in made:
        w, h = Image.open(tmp_path / name).size
        assert 6 <= w / DPI <= 10.5 and h / DPI <= 14, (name, w, h)


def test_attack_plot_with_coinciding_schemes_says_so_and_splits_panels() -> None:
    from advparams.reports.plots import attack_figure

    plt = pyplot()
    with plt.rc_context(STYLE):
        fig = attack_figure(plt, _rows(), CFG, CFG.attacks[2], ([0.9], 0.1))
    titles = sorted(ax.get_title() for ax in fig.axes if ax.axison)
    legend_title = fig.legends[0].get_title().get_text()
    xs = [[tuple(c.lines[0].get_xdata()) for c in ax.containers] for ax in fig.axes if ax.axison]
    plt.close(fig)
    assert titles == ["scope=global", "scope=layer"]
    assert "slightly apart" in legend_title
    assert all(len(p) == 2 and p[0] != p[1] for p in xs)  # advparams and random not on the same points


def _committed(name: str):  # type: ignore[no-untyped-def]
    from pathlib import Path

    from advparams.evaluation.run import open_run

    folder = Path(__file__).resolve().parents[2] / "docs" / "evaluation" / name
    if not (folder / "results.jsonl").exists():
        pytest.skip(f"no committed evaluation {name}")
    run = open_run(folder)
    return run.read_config(), run.rows()


def test_trace_queries_with_one_query_limit_is_not_drawn(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from advparams.reports.tracing import tracing_plots

    config, rows = _committed("tracing-fashion-mnist")
    plt = pyplot()
    assert tracing_plots(rows, config, tmp_path, plt) == ["trace-queries.png"]
    one = config.with_section("tracing", replace(config.tracing, limits=(256,)))
    assert tracing_plots(rows, one, tmp_path / "one", plt) == []


def test_fingerprint_plots_need_two_scores(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from advparams.reports.fingerprints import fingerprint_plots

    config, rows = _committed("fingerprints-fashion-mnist")
    plt = pyplot()
    assert fingerprint_plots(rows, config, tmp_path, plt) == ["fp-scores.png", "fp-hist.png", "fp-roc.png"]
    first = next(r for r in rows if r.kind == "fingerprint")
    alone = ResultRow(first.run, "fingerprint", first.seed, first.scheme, metrics={**first.metrics, "negatives": []})
    assert fingerprint_plots([alone], config, tmp_path / "one", plt) == []
