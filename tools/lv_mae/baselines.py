"""docs/targets.md's LV-MAE baselines: on the segment folders FEATURES/{probe_train,probe_test}
(tools/lv_mae/segment_folders.gin), a linear probe of the mean-pooled segment embeddings and
attentive probes of the raw segment sequence (without, and with, 1-D sin-cos positions), with the
AttentiveProbe settings of recipes/lv_mae.gin. Prints each accuracy with its Wilson 95 % interval
and writes FEATURES/baseline.json.

    python tools/lv_mae/baselines.py runs/lv_mae_features
"""

import json
import sys

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmmae.eval.attentive_probe import AttentiveClassifier, AttentiveProbe, accuracy
from mmmae.eval.interval import wilson_interval
from mmmae.eval.segment_datasets import SegmentFeatures
from mmmae.nn.pos_embed import sincos_pos_embed

root = sys.argv[1]
train, test = (SegmentFeatures(f"{root}/{split}") for split in ("probe_train", "probe_test"))


def tensors(data):
    a = data.arrays
    return torch.from_numpy(a["segments"]), torch.from_numpy(a["segments_valid"]), a


results = {}
(xtr, vtr, atr), (xte, vte, ate) = tensors(train), tensors(test)
mean_tr = (xtr * vtr[..., None]).sum(1) / vtr.sum(1, keepdim=True)
mean_te = (xte * vte[..., None]).sum(1) / vte.sum(1, keepdim=True)
for label in ("first_label", "last_label"):
    ytr, yte = torch.from_numpy(atr[label]), torch.from_numpy(ate[label])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(mean_tr.numpy(), ytr.numpy())
    acc = float(clf.score(mean_te.numpy(), yte.numpy()))
    results[f"linear mean-pooled {label}"] = (acc, wilson_interval(acc, len(yte)))
    for name, pos in (("attentive raw", 0.0), ("attentive raw + positions", 1.0)):
        table = pos * sincos_pos_embed((xtr.shape[1],), xtr.shape[-1])
        probe_cfg = AttentiveProbe(train, test, modality="segments", label=label, heads=4, epochs=20, batch_size=64,
                                   lr=1e-3, weight_decay=0.01, warmup_epochs=1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            probe = AttentiveClassifier(xtr.shape[-1], 4, int(ytr.max()) + 1)
            probe_cfg._train(probe, xtr + table, vtr, ytr, torch.device("cpu"))
        acc = accuracy(probe, xte + table, vte, yte, 64, torch.device("cpu"))
        results[f"{name} {label}"] = (acc, wilson_interval(acc, len(yte)))
for key, (acc, ci) in results.items():
    print(f"{key}: {acc:.3f} ({ci[0]:.3f}-{ci[1]:.3f})")
with open(f"{root}/baseline.json", "w") as out:
    json.dump(results, out, indent=1)
