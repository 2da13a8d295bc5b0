#!/usr/bin/env bash
# Regenerate every results file in docs/results/benchmarks/ (operators.json aside: an hour; see docs/benchmarks.md)
# and render the docs' tables from them (python docs/render.py).
#
#     bash benchmarks/run_all.sh          # small sizes: a few minutes in all
#     bash benchmarks/run_all.sh --full   # each benchmark's own defaults (the sizes its docstring names)
#     bash benchmarks/run_all.sh --demo   # first `forecast demo` (./demo), whose results.json and gh
#                                         # spread/skill plot become docs/results/demo.json and
#                                         # docs/figures/demo_spread_skill_gh.png (README)
#
# Timings are of this machine at the time it runs: run it on a quiet machine (two jobs side by
# side halve each other's figures). long_rollout needs the demo's checkpoint and store
# (`forecast demo`, in ./demo); without them it is skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
export FORECAST_PROGRESS=0 PYTHONWARNINGS=ignore
full=0
for arg in "$@"; do
    case "$arg" in
        --full) full=1 ;;
        --demo) demo=1 ;;
        *) echo "usage: bash benchmarks/run_all.sh [--full] [--demo]" >&2; exit 2 ;;
    esac
done

if [ "${demo:-0}" = 1 ]; then
    echo "+ forecast demo"
    forecast demo
    mkdir -p docs/figures
    cp demo/results.json docs/results/demo.json
    cp demo/plots/sfno-crps/spread_skill_gh.png docs/figures/demo_spread_skill_gh.png
fi

# run NAME [SMALL-SIZE ARGS...]: benchmarks/NAME.py, with the size arguments unless --full
run() {
    local name=$1
    shift
    [ "$full" = 1 ] && set --
    echo "+ python benchmarks/$name.py $*"
    python "benchmarks/$name.py" "$@"
}

run verify --members 8 --leads 4 --repeat 3
run verify_memory --inits 4 --members 4 --init-chunk 2
run hyperdiffusion --repeats 5
run dyffusion --members 4 --repeats 2
run training --steps 4 --embed-dim 16 --grid legendre-gauss:32x64
run swe_predictability --spinup-days 5 --inits 2 --members 4
run pipeline --steps 8 --regrid-steps 8 --days 4
run grib_ingest --steps 16 --steps-per-file 8 --memory-steps 8
run rollout --members 4 --steps 4 --memory-leads 4 16 --repeats 2
run noise --repeats 3
run models --quick --models sfno --compile --repeats 5

checkpoint=demo/runs/sfno-crps/model0/checkpoints/latest.pt
if [ -f "$checkpoint" ] && [ -d demo/data/swe.zarr ]; then
    run long_rollout --steps 1000 --every 50 --seeds 2 --reference climate
    echo "+ python benchmarks/generalisation.py demo"
    python benchmarks/generalisation.py demo
else
    echo "skipping long_rollout and generalisation: no demo checkpoint ($checkpoint); run \`forecast demo\`, then" \
         "\`python benchmarks/long_rollout.py --seeds 2\`" >&2
fi

python docs/render.py
