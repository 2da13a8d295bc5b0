"""Figures: every plot writes a real PNG/PDF; coastlines come from the shipped file."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import xarray as xr
from matplotlib.image import imread

from forecast.config import PlotConfig, VerifyConfig
from forecast.plots import plot_map, plot_rank_histogram, plot_skill_curves, plot_spectra, plot_spread_skill
from forecast.plots.coastlines import COASTLINE_FILE, load_coastlines
from forecast.plots.style import format_units
from forecast.plots.workflow import plot_run
from forecast.verify.workflow import verify
from pipelines.errors import InputError
from pipelines.store import open_store
from verify_factories import make_forecast, make_regridded_forecast, make_store


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("plots")
    truth = make_store(tmp / "store.zarr")
    make_forecast(tmp / "fc.nc", truth, members=3, inits=[0, 4], leads=4)
    verify(VerifyConfig(forecast=str(tmp / "fc.nc"), truth=str(tmp / "store.zarr"), out=str(tmp / "scores.nc")))
    return tmp


def _is_png(path: Path) -> bool:
    image = imread(path)
    return image.ndim == 3 and image.shape[0] > 200 and image[..., :3].std() > 0.05  # not blank


def test_shipped_coastlines_cover_the_continents() -> None:
    coast = load_coastlines(COASTLINE_FILE)
    assert coast is not None and coast.geom_type == "MultiLineString" and len(coast.geoms) > 100
    minx, miny, maxx, maxy = coast.bounds
    assert minx < -170 and maxx > 170 and miny < -80 and maxy > 80


def test_missing_coastlines_warn_and_give_none(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="without coastlines"):
        assert load_coastlines(tmp_path / "none.geojson") is None


def test_map_png_and_pdf(run: Path) -> None:
    forecast, truth = xr.open_dataset(run / "fc.nc"), open_store(run / "store.zarr").data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no download attempt, no coastline warning
        png = plot_map(forecast, truth, "gh", 12, 1, run / "map.png")
    assert _is_png(png)
    pdf = plot_map(forecast, truth, "u", "6h", 0, run / "map.pdf", projection="platecarree")
    assert pdf.read_bytes()[:4] == b"%PDF"
    with pytest.raises(InputError, match="no forecast for member 7"):
        plot_map(forecast, truth, "gh", 12, 7, run / "bad.png")
    with pytest.raises(InputError, match="extension"):
        plot_map(forecast, truth, "gh", 12, 0, run / "map.jpg")


def test_score_figures(run: Path) -> None:
    scores = run / "scores.nc"
    outs = [plot_skill_curves(scores, "gh", "rmse", run / "rmse.png"),
            plot_spread_skill(scores, "u", run / "ss.png"),
            plot_rank_histogram(scores, "gh", run / "rh.png"),
            plot_spectra(scores, "u", run / "spec.png", lead_times_hours=[6, 18])]
    assert all(_is_png(p) for p in outs)
    assert plot_skill_curves(scores, "u", "acc", run / "acc.pdf", region="tropics").stat().st_size > 1000
    with pytest.raises(InputError, match="region 'arctic'"):
        plot_skill_curves(scores, "gh", "rmse", run / "x.png", region="arctic")


def test_plot_run_writes_everything(run: Path) -> None:
    config = PlotConfig(formats=["png"], variable="gh", lead_times_hours=[6.0])
    paths = plot_run(run / "fc.nc", run / "store.zarr", run / "scores.nc", run / "all", config)
    names = sorted(p.name for p in paths)
    assert "map_gh_lead6h_member0.png" in names
    assert {"skill_rmse_gh.png", "spread_skill_gh.png", "rank_histogram_gh.png", "spectra_gh.png"} <= set(names)


@pytest.mark.parametrize("request_, message", [({"lead_times_hours": [6.0, 999.0]}, "--lead 999 .hours. is not a lead time"),
                                               ({"member": 9}, "--member 9 is not in the forecast")])
def test_plot_run_refuses_leads_and_members_the_forecast_lacks(run: Path, tmp_path: Path, request_, message) -> None:
    with pytest.raises(InputError, match=message):
        plot_run(run / "fc.nc", run / "store.zarr", None, tmp_path / "out", PlotConfig(**request_))
    assert not list((tmp_path / "out").glob("*.png"))


def test_units_are_typeset() -> None:
    assert format_units("m s-1") == "m s$^{-1}$"
    assert format_units("(m s-1)2 sr") == "(m s$^{-1}$)$^{2}$ sr"


def test_rmse_curves_show_the_ensemble_mean(run: Path, monkeypatch) -> None:
    import forecast.plots.curves as curves

    drawn = {}
    monkeypatch.setattr(curves, "save_figure", lambda fig, out, dpi=120: drawn.setdefault(
        "labels", [line.get_label() for line in fig.axes[0].get_lines()]) and Path(out))
    curves.plot_skill_curves(run / "scores.nc", "gh", "rmse", run / "rmse_labels.png")
    assert drawn["labels"] == ["forecast (members)", "persistence", "climatology", "forecast (ensemble mean)"]
    drawn.clear()
    curves.plot_skill_curves(run / "scores.nc", "gh", "acc", run / "acc_labels.png")
    assert "forecast (ensemble mean)" not in drawn["labels"] and "forecast (members)" not in drawn["labels"]
    assert drawn["labels"][0] == "forecast"   # not for other metrics: one forecast curve


def test_maps_regrid_a_truth_on_another_grid_as_verify_does(tmp_path: Path) -> None:
    """A forecast on a finer grid than its truth store (written with --output-grid): the maps
    use the truth regridded onto the forecast grid, the same function verify uses; without a
    regrid method the refusal names both grids before anything is drawn."""
    from pipelines.grids import Grid

    truth = make_store(tmp_path / "store.zarr")
    fine = make_regridded_forecast(tmp_path / "fine.nc", truth, Grid.parse("equiangular:17x32"))
    config = PlotConfig(lead_times_hours=[6.0], variable="gh")
    paths = plot_run(fine, tmp_path / "store.zarr", None, tmp_path / "maps", config)
    assert [p.name for p in paths] == ["map_gh_lead6h_member0.png"] and _is_png(paths[0])
    with pytest.raises(InputError, match="truth's grid legendre-gauss:8x16 differs from the forecast grid "
                                         "equiangular:17x32"):
        plot_run(fine, tmp_path / "store.zarr", None, tmp_path / "none", config.model_copy(update={"regrid_method": None}))
    assert not (tmp_path / "none").exists()
