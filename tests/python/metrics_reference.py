"""Reference values for fieldsynth's nearest-neighbour and distribution metrics.

usage: metrics_reference.py ARRAYS.json
ARRAYS.json: {"train": [[...]], "holdout": [[...]], "synthetic": [[...]], "k": 5,
              optionally "train_labels": [...], "synthetic_labels": [...]}
Prints JSON with the reference implementations' figures:
  prdc (Naeem et al. 2020, the authors' package) for precision / recall / density / coverage;
  scikit-learn NearestNeighbors for DCR and NNDR; roc_auc_score for the membership attack;
  numpy / scipy (sqrtm) for the Frechet distance;
  with labels, scikit-learn LogisticRegression for conditional_accuracy.
"""
import contextlib
import io
import json
import sys

import numpy as np
import prdc
import scipy.linalg
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

with open(sys.argv[1]) as handle:
    spec = json.load(handle)
train = np.asarray(spec["train"], dtype=np.float64)
holdout = np.asarray(spec["holdout"], dtype=np.float64)
synthetic = np.asarray(spec["synthetic"], dtype=np.float64)
k = int(spec["k"])

with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
    figures = prdc.compute_prdc(real_features=train, fake_features=synthetic, nearest_k=k)

to_train = NearestNeighbors(n_neighbors=2).fit(train)
dist_train, _ = to_train.kneighbors(synthetic)
dcr_train = dist_train[:, 0]
nndr = np.where(dist_train[:, 0] == 0, 0.0, dist_train[:, 0] / np.where(dist_train[:, 1] == 0, 1, dist_train[:, 1]))
dcr_holdout = NearestNeighbors(n_neighbors=1).fit(holdout).kneighbors(synthetic)[0][:, 0]

to_synthetic = NearestNeighbors(n_neighbors=1).fit(synthetic)
members = -to_synthetic.kneighbors(train)[0][:, 0]
non_members = -to_synthetic.kneighbors(holdout)[0][:, 0]
mia_auc = roc_auc_score(np.r_[np.ones(len(members)), np.zeros(len(non_members))], np.r_[members, non_members])

mu_r, mu_s = train.mean(axis=0), synthetic.mean(axis=0)
cov_r, cov_s = np.cov(train, rowvar=False), np.cov(synthetic, rowvar=False)
root = scipy.linalg.sqrtm(cov_r @ cov_s)
frechet = float(np.sum((mu_r - mu_s) ** 2) + np.trace(cov_r) + np.trace(cov_s) - 2 * np.trace(np.real(root)))

figures_out = {}
if "train_labels" in spec:
    # The TRTR classifier: fieldsynth's (linfa) minimises sum of the multinomial log loss +
    # alpha / 2 * |W|^2 with alpha = 1, intercepts unpenalised; scikit-learn minimises
    # C * sum log loss + 1/2 |W|^2, so C = 1. With two classes scikit-learn fits one weight vector
    # w = w1 - w0, and the penalty of the two softmax vectors at their optimum (w1 = -w0 = w / 2)
    # is alpha / 4 * |w|^2: C = 2.
    train_labels = np.asarray(spec["train_labels"])
    synthetic_labels = np.asarray(spec["synthetic_labels"])
    c = 2.0 if len(np.unique(train_labels)) == 2 else 1.0
    model = LogisticRegression(C=c, max_iter=10000, tol=1e-10).fit(train, train_labels)
    figures_out["conditional_accuracy"] = float(np.mean(model.predict(synthetic) == synthetic_labels))

print(json.dumps({
    **figures_out,
    "precision": float(figures["precision"]),
    "recall": float(figures["recall"]),
    "density": float(figures["density"]),
    "coverage": float(figures["coverage"]),
    "dcr_train_median": float(np.median(dcr_train)),
    "dcr_holdout_median": float(np.median(dcr_holdout)),
    "dcr_train_p05": float(np.percentile(dcr_train, 5)),
    "nndr_mean": float(np.mean(nndr)),
    "exact_copy_rate": float(np.mean(dcr_train == 0)),
    "mia_auc": float(mia_auc),
    "frechet_distance": frechet,
}))
