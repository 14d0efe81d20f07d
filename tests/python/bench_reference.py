"""Times the reference implementations on the benchmark data of `cargo bench --bench assessment`.

usage: bench_reference.py DATA.bin N_TRAIN N_HOLDOUT N_SYNTHETIC DIM
Precision, recall, density and coverage with the authors' prdc package; DCR and NNDR (synthetic
to train), DCR to the hold-out, and the distance membership attack with scikit-learn's
NearestNeighbors (all cores). Prints the seconds, the peak memory, and the figures.
"""
import contextlib
import io
import resource
import sys
import time

import numpy as np
import prdc
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

path, n_train, n_holdout, n_synthetic, dim = sys.argv[1], *map(int, sys.argv[2:6])
data = np.fromfile(path, dtype="<f4").astype(np.float64)
train = data[: n_train * dim].reshape(n_train, dim)
holdout = data[n_train * dim : (n_train + n_holdout) * dim].reshape(n_holdout, dim)
synthetic = data[(n_train + n_holdout) * dim :].reshape(n_synthetic, dim)

started = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    figures = prdc.compute_prdc(real_features=train, fake_features=synthetic, nearest_k=5)
prdc_seconds = time.perf_counter() - started

started = time.perf_counter()
dist, _ = NearestNeighbors(n_neighbors=2, n_jobs=-1).fit(train).kneighbors(synthetic)
dcr_holdout = NearestNeighbors(n_neighbors=1, n_jobs=-1).fit(holdout).kneighbors(synthetic)[0][:, 0]
to_synthetic = NearestNeighbors(n_neighbors=1, n_jobs=-1).fit(synthetic)
members = -to_synthetic.kneighbors(train)[0][:, 0]
non_members = -to_synthetic.kneighbors(holdout)[0][:, 0]
mia = roc_auc_score(np.r_[np.ones(n_train), np.zeros(n_holdout)], np.r_[members, non_members])
privacy_seconds = time.perf_counter() - started

peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"reference (prdc + scikit-learn NearestNeighbors), {n_train} train / {n_holdout} hold-out / {n_synthetic} synthetic x {dim}:")
print(f"  prdc:                      {prdc_seconds:.3f} s")
print(f"  DCR, NNDR, membership:     {privacy_seconds:.3f} s")
print(f"  together:                  {prdc_seconds + privacy_seconds:.3f} s")
print(f"  peak resident memory:      {peak_mib:.1f} MiB")
print(f"  precision {figures['precision']:.6f} recall {figures['recall']:.6f} density {figures['density']:.6f} coverage {figures['coverage']:.6f}")
print(f"  dcr_train_median {np.median(dist[:, 0]):.6f} dcr_holdout_median {np.median(dcr_holdout):.6f} nndr_mean {np.mean(dist[:, 0] / dist[:, 1]):.6f} mia_auc {mia:.6f}")
