#!/usr/bin/env bash
# Regenerate the sample files of data/ with calo-simulate (deterministic: same seed, same file).
#   sample_two_showers.root : 500 two-shower events (electrons/photons, 5-60 GeV), default config
#   sample_e_pi.root        : 500 single electron or charged-pion events, 10-100 GeV, with
#                             30 random background hits per event (the FPGA task's sample)
# Each file gets its resolved configuration next to it (.yaml).
set -euo pipefail
cd "$(dirname "$0")"
calo-simulate --out sample_two_showers.root --events 500 --seed 1 --no-progress
calo-simulate --out sample_e_pi.root --events 500 --seed 2 --no-progress \
    gun.n_particles=1 "gun.pdg=[11,211]" gun.energy.min=10 gun.energy.max=100 \
    background.mean_hits=30
