"""Typed configs of the forecasting side, loaded strictly from ``configs/*.yaml``.

See :mod:`pipelines.config` for the loader (unknown keys and wrong types are
one-line errors naming the key and the file) and for the data-side configs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.config import (GridSpec, Positive, PositiveInt, PrepareConfig, StirringConfig, StrictModel, SWESourceConfig,
                              load_config, validate_config)

__all__ = [
    "ModelConfig", "TrainConfig", "RolloutConfig", "PerturbationConfig", "VerifyConfig", "DYffusionDemoConfig",
    "PlotConfig", "RunConfig", "DemoConfig", "WindowsConfig", "PrepareConfig", "load_config", "validate_config",
]


MetricName = Literal["rmse", "mse", "mae", "bias", "acc", "ens_rmse", "ens_mae", "spread", "spread_skill", "crps",
                     "crps_fair"]
RegionName = Literal["global", "nh-extratropics", "tropics", "sh-extratropics"]   # forecast.verify.regions.REGIONS


class ModelConfig(StrictModel):
    """Architecture and size of a model (``configs/models/*.yaml``)."""

    # sfno, afno, or dyffusion (Spherical DYffusion: interpolator + forecaster SFNOs of this size)
    architecture: Literal["sfno", "afno", "dyffusion"] = "sfno"
    embed_dim: PositiveInt = 64
    num_layers: PositiveInt = 4
    # SFNO: the transforms inside the blocks work on a grid this many times coarser.
    scale_factor: PositiveInt = 2
    mlp_ratio: Positive = 2.0
    # spectral truncation as a fraction of the grid's own maximum degree (SFNO) / of the FFT modes (AFNO)
    hard_thresholding_fraction: float = Field(1.0, gt=0, le=1)
    normalization: Literal["none", "layer", "instance"] = "none"
    activation: Literal["gelu", "relu", "silu"] = "gelu"
    residual: bool = True          # predict x + s * f(x) (in normalised units)
    # residual: s = std of the normalised one-step tendency, from the training data (else s = 1)
    tendency_scaling: bool = True
    big_skip: bool = True          # SFNO: concatenate the input before the decoder
    pos_embed: bool = True
    # SFNO: "lat" (learnable, per latitude: keeps longitude-shift equivariance) or "latlon"
    # or "spherical-harmonics": grid-free (sh_* below; a model trained on one grid runs on another)
    pos_embed_kind: Literal["lat", "latlon", "spherical-harmonics"] = "lat"
    # hidden layers of the encoder/decoder MLPs (0: linear maps, as torch-harmonics' example SFNO)
    encoder_layers: int = Field(1, ge=0)
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
    # dropout after the activation of each SFNO block's MLP; DYffusion's interpolator keeps it
    # (and drop_path_rate) on at inference: the source of its ensemble spread
    mlp_dropout: float = Field(0.0, ge=0, lt=1)
    # SFNO only: noise channels of a stochastic (noise-conditioned) SFNO; 0 is deterministic
    noise_channels: int = Field(0, ge=0)
    # its noise's length scale per channel (FourCastNet 3: sigma_l ~ exp(-(L/R)^2 l(l+1)/4));
    # None: white (equal variance at every degree the model resolves)
    noise_length_scales_km: list[Positive] | None = None
    # lag-one-step correlation phi of its noise (AR(1) in time, FourCastNet 3); 0: fresh every step
    noise_autocorrelation: float = Field(0.0, ge=0.0, lt=1.0)
    # SFNO/AFNO: spectral hyperdiffusion of every new state (forecast/models/hyperdiffusion.py),
    # D_l = exp(-(dt / efold) (l(l+1) / (L(L+1)))^order) with L = hyperdiffusion_degree (None: the
    # grid's largest); None: no filter. The demo's solver: 2 h at its largest degree, order 4
    hyperdiffusion_efold_hours: Positive | None = None
    hyperdiffusion_degree: PositiveInt | None = None
    hyperdiffusion_order: PositiveInt = 4
    # the vorticity channels (vo<rest>) are the curl of the predicted winds (u<rest>, v<rest>), not
    # predicted on their own (forecast/models/diagnostics.py); in training and at inference
    diagnosed_vorticity: bool = False
    # --- SFNO neural-operator options (forecast/models/sfno/; configs/models/sfno-*.yaml) -----------
    # pos_embed_kind "spherical-harmonics" (Russwurm et al.): real spherical harmonics up to degree
    # sh_degree at the grid's points, through a SIREN of sh_siren_layers hidden layers of
    # sh_siren_hidden features (0: a linear map)
    sh_degree: int = Field(10, ge=0)
    sh_siren_layers: int = Field(0, ge=0)
    sh_siren_hidden: PositiveInt = 64
    # spectral weights: dense, or Tucker / CP factorised (MG-TFNO) with at most spectral_rank times
    # the dense parameters (forecast/models/sfno/factorised.py)
    spectral_factorisation: Literal["dense", "tucker", "cp"] = "dense"
    spectral_rank: Positive = 0.1
    # transform once (T1): one SHT after the encoder, the blocks on the coefficients, one inverse
    # (forecast/models/sfno/transform_once.py)
    transform_once: bool = False
    # AFNO only
    patch_size: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] = [4, 4]
    num_blocks: PositiveInt = 8
    sparsity_threshold: float = 0.01

    @model_validator(mode="after")
    def _noise_shape(self) -> "ModelConfig":
        if self.noise_length_scales_km is not None and len(self.noise_length_scales_km) != self.noise_channels:
            raise ValueError(f"noise_length_scales_km has {len(self.noise_length_scales_km)} values; give one per "
                             f"noise channel (noise_channels = {self.noise_channels})")
        if (self.noise_length_scales_km is not None or self.noise_autocorrelation) and not self.noise_channels:
            raise ValueError("noise_length_scales_km and noise_autocorrelation shape the noise of a stochastic SFNO: "
                             "set noise_channels > 0")
        if self.transform_once and self.architecture == "dyffusion":
            raise ValueError("transform_once blocks take no step conditioning: not for architecture 'dyffusion'")
        return self


class TrainConfig(StrictModel):
    """Training run (``configs/train.yaml``); the model section is nested."""

    store: str = "data/store.zarr"
    out: str = "runs/sfno"
    model: ModelConfig = ModelConfig()
    variables: list[str] | None = None          # None: every variable of the store
    variable_weights: dict[str, float] = {}
    train_start: str | None = None
    train_end: str | None = None
    val_start: str | None = None
    val_end: str | None = None
    val_fraction: float = Field(0.1, gt=0, lt=1)                  # when no val_start/val_end: last fraction of times
    step_hours: Positive | None = None             # model time step; None: the store's time step
    batch_size: PositiveInt = 4                         # global batch, split over processes
    epochs: PositiveInt = 10
    max_steps: PositiveInt | None = None
    lr: Positive = 1e-3
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(20, ge=0)
    grad_clip: Positive = 1.0
    rollout_steps: PositiveInt = 1                      # k of the multi-step loss at the end of the curriculum
    curriculum_epochs: int = Field(0, ge=0)                 # epochs of 1-step loss before ramping up to rollout_steps
    input_noise: float = Field(0.0, ge=0.0)     # std (normalised units) of noise added to training inputs
    # half the samples mirrored about the equator, each variable times its parity (e.g. {gh: 1, u: 1,
    # v: -1, vo: -1}); only for data symmetric about the equator (forecast.data.mirror_parity)
    equator_mirror: dict[str, int] = {}
    # ensemble training of a stochastic model (model.noise_channels > 0): members per sample and the loss
    ensemble_members: PositiveInt = 1
    loss: Literal["mse", "crps"] = "mse"
    crps_alpha: float = Field(0.95, gt=0.0, le=1.0)   # almost-fair CRPS; 1 is the fair CRPS
    crps_spectral_weight: float = Field(0.0, ge=0.0)  # + this times the CRPS of SHT amplitudes (FourCastNet 3: 0.1)
    # the amplitudes of each degree in units of their climatological amplitude in the training
    # data, every degree weighted alike (forecast.losses.SpectralCRPS); False: FourCastNet 3's raw amplitudes
    crps_spectral_normalised: bool = False
    # DYffusion (model.architecture dyffusion): `epochs` train the interpolator, then these the
    # forecaster against the frozen interpolator (None: as many as `epochs`)
    forecaster_epochs: PositiveInt | None = None
    checkpoint_every: PositiveInt = 100
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    amp: Literal["auto", "bf16", "none"] = "auto"
    compile: bool = False
    tensorboard: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"


    @model_validator(mode="after")
    def _ensemble_training(self) -> "TrainConfig":
        # (rollout_steps and curriculum_epochs do not apply to it: each stage learns one model step)
        if self.loss != "mse" or self.ensemble_members > 1:
            from forecast.models import model_class   # it imports this module (not needed by the defaults)

            if model_class(self.model).trained_in_stages:
                raise ValueError(f"model.architecture {self.model.architecture!r} trains its own stages (DYffusion: "
                                 "MSE interpolator, L1 forecaster): use loss 'mse' and ensemble_members 1")
        if self.loss == "crps" and self.ensemble_members < 2:
            raise ValueError("loss 'crps' needs ensemble_members >= 2 (members per sample)")
        if self.loss == "crps" and self.model.noise_channels == 0:
            raise ValueError("loss 'crps' needs a stochastic model (model.noise_channels > 0): the members of a "
                             "deterministic model are identical")
        if self.loss == "mse" and self.ensemble_members > 1:
            raise ValueError("ensemble_members > 1 is for loss 'crps'; with 'mse' every member would be fitted alone")
        return self


class PerturbationConfig(StrictModel):
    """Initial-condition perturbations; combinable."""

    kind: list[Literal["none", "spherical-gaussian", "data-spectrum", "bred-vector"]] = ["spherical-gaussian"]
    amplitude: Annotated[float, Field(ge=0)] | dict[str, Annotated[float, Field(ge=0)]] = 0.05  # fraction of each variable's standard deviation
    length_scale_km: Positive = 500.0
    bred_cycles: PositiveInt = 3
    bred_window_hours: Positive = 24.0
    centre: bool = True


class RolloutConfig(StrictModel):
    """Ensemble rollout (``configs/rollout.yaml``)."""

    checkpoints: list[str] = []
    initial: str = "data/store.zarr"
    init_times: list[str] = []
    lead: str = "10d"
    members: PositiveInt = 16
    perturbation: PerturbationConfig = PerturbationConfig()
    seed: int = 0
    out: str = "forecast.zarr"
    output_grid: GridSpec | None = None
    batch_members: PositiveInt | None = None          # None: all members in one batch
    variables: Annotated[list[str], Field(min_length=1)] | None = None   # written subset (the model steps every variable); None: all
    output_every: PositiveInt | str = 1       # write every n-th step, or a duration such as "24h"
    # DYffusion: also write the states its interpolator makes at the store's times between model steps
    intermediate: bool = False
    # DYffusion: the interpolator's dropout at inference (MLP dropout and drop path; None: the rate
    # it was trained with). The network learns to shrug off its training dropout, so a higher rate
    # here is how the ensemble's spread is calibrated, as the perturbation amplitude is for the SFNO
    dropout: float | None = Field(None, ge=0, lt=1)
    # DYffusion: the rate of a second dropout whose masks each member keeps for its whole forecast
    # (one network of the dropout ensemble per member; None/0: none): an error that persists through
    # the forecast, where fresh masks give one that the next steps partly undo
    member_dropout: float | None = Field(None, ge=0, lt=1)
    # stochastic SFNO: a factor on its noise at inference (None: 1, as trained); > 1 widens the
    # ensemble (docs/skill.md measures what it does to skill)
    noise_amplitude: Positive | None = None
    # cap each member's power per spherical-harmonic degree at this factor times the training
    # data's mean power (the checkpoint carries it) after every step; None: no cap
    # (forecast/models/spectral_cap.py)
    spectral_cap: Positive | None = None
    # keep these variables' area-weighted global means at the initial state's after every step
    # (quantities the physics conserves: on the demo's shallow-water data gh, the mass, and vo); None: none
    conserve_global_mean: list[str] | None = None
    overwrite: bool = False
    lock_timeout_s: float = Field(0.0, ge=0.0)  # wait for another rollout writing the same out; 0 refuses at once
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # regridding of initial conditions on another grid and of --output-grid; None refuses a grid mismatch
    regrid_method: Literal["conservative", "bilinear", "spectral"] | None = "conservative"
    # blow-up check after each step: values beyond mean +- bounds_std * std, or outside
    # bounds[variable] = [low, high] (physical units), stop the run
    bounds_std: Positive = 50.0
    bounds: dict[str, tuple[float, float]] = {}


class VerifyConfig(StrictModel):
    """Verification (``configs/verify.yaml``)."""

    forecast: str = "forecast.zarr"
    truth: str = "data/store.zarr"
    climatology: str | None = None            # None: the truth store's own climatology
    # the perfect-model ensemble of the embedded data (`forecast perfect-model`), scored as
    # the model "perfect_model": the physical limit of skill; None: not scored
    perfect_model: str | None = None
    baselines: list[Literal["persistence", "climatology"]] = ["persistence", "climatology"]
    metrics: list[MetricName] = ["rmse", "mse", "mae", "bias", "acc", "ens_rmse", "ens_mae", "spread", "spread_skill", "crps", "crps_fair"]
    regions: list[RegionName] = ["global", "nh-extratropics", "tropics", "sh-extratropics"]
    init_chunk: PositiveInt = 8               # init times scored at once: peak memory ~ init_chunk x members
    scheduler: str | None = None              # dask.distributed scheduler address for reading the inputs
    # truth/climatology on another grid than the forecast are regridded onto it; None refuses
    regrid_method: Literal["conservative", "bilinear", "spectral"] | None = "conservative"
    out: str = "scores.nc"


class PlotConfig(StrictModel):
    """Figures (``forecast plot``): a config file can describe a whole plot job."""

    forecast: str | None = None               # maps need a forecast and the truth
    truth: str | None = None
    scores: str | None = None                 # skill curves, spread-skill, rank histograms, spectra
    out: str = "plots"
    formats: list[Literal["png", "pdf"]] = ["png"]
    variable: str | None = None
    lead_times_hours: list[Annotated[float, Field(ge=0)]] = [24.0]
    member: int = Field(0, ge=0)
    dpi: int = Field(120, ge=10, le=1200)
    # a truth on another grid than the forecast is regridded onto it for the maps (as verify does); None refuses
    regrid_method: Literal["conservative", "bilinear", "spectral"] | None = "conservative"


class RunConfig(StrictModel):
    """The scheduled operational run (``configs/operational.yaml``).

    ``store`` is the default of ``rollout.initial`` and ``verify.truth`` (each may still be
    set on its own).
    """

    out: str = "operational"
    store: str = "data/store.zarr"
    prepare: PrepareConfig | None = None      # when set, new reanalysis is appended first
    rollout: RolloutConfig = RolloutConfig()
    verify: VerifyConfig = VerifyConfig()
    plot: PlotConfig = PlotConfig()
    lock_timeout_s: float = Field(0.0, ge=0)  # 0: refuse at once when another run holds the lock

    @model_validator(mode="before")
    @classmethod
    def _store_is_the_default_input(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "store" not in data:
            return data
        data = dict(data)
        for section, key in (("rollout", "initial"), ("verify", "truth")):
            given = data.get(section) or {}
            if isinstance(given, dict) and key not in given:
                data[section] = {**given, key: data["store"]}
        return data


class StochasticDemoConfig(StrictModel):
    """The demo's stochastic SFNO (``sfno-crps``): the ``sfno`` section plus noise, trained on
    the almost-fair CRPS of ``ensemble_members`` members per sample, ``models`` copies of it with
    their own seeds; its ensemble spread comes from the noise and from the copies' differences."""

    noise_channels: PositiveInt = 4
    # model.noise_length_scales_km (None: white); these and the autocorrelation were chosen on the
    # validation window (docs/skill.md)
    noise_length_scales_km: list[Positive] | None = [500.0, 1000.0, 2000.0, 4000.0]
    noise_autocorrelation: float = Field(0.8, ge=0.0, lt=1.0)   # model.noise_autocorrelation
    ensemble_members: Annotated[int, Field(ge=2)] = 2
    # cap of the CRPS's rollout, which ramps from 2 steps by one per epoch (train.rollout_steps,
    # forecast/training/schedule.py); with the spectral term below, chosen on the validation
    # window (docs/skill.md)
    rollout_steps: PositiveInt = 4
    crps_alpha: float = Field(0.95, gt=0.0, le=1.0)
    spectral_weight: float = Field(0.1, ge=0.0)   # train.crps_spectral_weight: CRPS of SHT amplitudes
    spectral_normalised: bool = True    # train.crps_spectral_normalised: every degree weighs alike
    # independently trained copies (seeds seed, seed + 1, ...), each for train.epochs // models
    # epochs (at least 1): the members are spread over them, and their differences carry the
    # model's own uncertainty
    models: PositiveInt = 2
    perturbation: PerturbationConfig = PerturbationConfig(kind=["none"], amplitude=0.1)


class DYffusionDemoConfig(StrictModel):
    """The demo's Spherical DYffusion (``dyffusion``): interpolator and forecaster SFNOs of the
    ``sfno`` section's size, the interpolator with its training dropout kept on at inference
    (the ensemble's spread, as in the paper); trained ``train.epochs`` epochs each stage unless
    ``forecaster_epochs`` says otherwise."""

    mlp_dropout: float = Field(0.1, ge=0, lt=1)
    drop_path_rate: float = Field(0.1, ge=0, lt=1)
    forecaster_epochs: PositiveInt | None = None
    input_noise: float = Field(0.0, ge=0.0)   # train.input_noise for this model only
    # independently trained copies (seeds seed, seed + 1, ...) sharing the epochs, as ``stochastic.models``
    models: PositiveInt = 1
    perturbation: PerturbationConfig = PerturbationConfig(kind=["none"])


class WindowsConfig(StrictModel):
    """The validation and test windows at the end of the record (:mod:`forecast.windows`): each
    holds ``inits`` init times ``init_every_hours`` apart and their ``lead_hours``; training takes
    everything before them. Settings are chosen on validation; the demo reports the test window."""

    inits: Annotated[int, Field(ge=2)] = 8
    init_every_hours: Positive = 12.0
    lead_hours: Positive = 120.0


# the variables the demo's store holds (pipelines' shallow-water source, selected by forecast.demo)
DEMO_VARIABLES = ("gh", "u", "v", "vo")


class DemoConfig(StrictModel):
    """The end-to-end demo on the embedded shallow-water data (``configs/demo.yaml``, which
    states these same defaults: ``forecast demo`` without ``--config`` runs them).

    The data: the stirred shallow-water flow (statistically stationary: a climate), solved on
    a 48x96 Legendre-Gauss grid at truncation 32 and stored on the model's 32x64 grid, which
    resolves every one of the solver's degrees. The record is cut into training, validation and
    test windows (``windows``); the forecasts, the perfect-model ensemble and the report are on
    the test window.
    """

    workdir: str = "demo"
    models: list[Literal["sfno", "afno", "sfno-crps", "dyffusion"]] = ["sfno-crps"]
    swe: SWESourceConfig = SWESourceConfig(grid="legendre-gauss:48x96", lmax=32, days=80.0, output_step_hours=2.0,
                                           spinup_days=10.0, stirring=StirringConfig())
    grid: GridSpec = "legendre-gauss:32x64"
    method: Literal["conservative", "bilinear", "spectral"] = "spectral"
    windows: WindowsConfig = WindowsConfig()
    train: TrainConfig = TrainConfig(step_hours=6, batch_size=4, epochs=4, lr=8e-3, warmup_steps=20, rollout_steps=1,
                                     curriculum_epochs=0, checkpoint_every=500,
                                     equator_mirror={"gh": 1, "u": 1, "v": -1, "vo": -1})
    sfno: ModelConfig = ModelConfig(architecture="sfno", embed_dim=32, num_layers=4, scale_factor=1,
                                    hyperdiffusion_efold_hours=2)
    afno: ModelConfig = ModelConfig(architecture="afno", embed_dim=128, patch_size=[4, 4])
    stochastic: StochasticDemoConfig = StochasticDemoConfig()
    dyffusion: DYffusionDemoConfig = DYffusionDemoConfig()
    members: PositiveInt = 16
    perturbation: PerturbationConfig = PerturbationConfig(kind=["spherical-gaussian"], amplitude=0.2,
                                                          length_scale_km=1000.0)
    seed: int = 0
    # rollout.conserve_global_mean of every model's ensemble: quantities the shallow-water
    # equations conserve (gh: the mass; vo: its global mean is zero on a sphere); None: none
    conserve_global_mean: list[str] | None = None
    # score the perfect-model ensemble (the solver with unknown stirring) beside the baselines
    perfect_model: bool = True
    plot: PlotConfig = PlotConfig(lead_times_hours=[24.0, 120.0])

    @field_validator("conserve_global_mean")
    @classmethod
    def _conserved_are_demo_variables(cls, names: list[str] | None) -> list[str] | None:
        # refused here, not after the data and the first model's training
        unknown = [n for n in names or [] if n not in DEMO_VARIABLES]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not among the demo's variables {', '.join(DEMO_VARIABLES)}")
        return names
