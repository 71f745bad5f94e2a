"""How good and how private a synthetic table is (F-IMSD-3, NF-IMSD-3/4).

- Fidelity: per column, the Kolmogorov-Smirnov statistic (numeric) or total-variation distance
  (categorical) between real and synthetic; the mean absolute difference of the pairwise
  correlation matrices (codes of categories, missing left out pairwise); and SDMetrics' quality
  score (the mean of its column-shape and column-pair-trend scores, 0..1), the figure published
  generators and the issue's targets are stated in, so ours compare with theirs on one scale.
- Utility, TSTR: a classifier of csPCa trained on synthetic rows and tested on a REAL holdout
  (AUROC), logistic regression and gradient boosting, next to the same trained on the real train
  rows (TRTR); and augmentation: LR trained on real + synthetic rows.
- Privacy: distance to the closest record (DCR) of each synthetic row in the real TRAIN rows vs
  the real HOLDOUT rows (ratio of medians, train subsampled to the holdout's size so both
  reference sets are equally dense; ~1 = the generator did not move towards its training records), a DCR membership-inference attack (AUC of "closer to a synthetic row = member" on
  train vs holdout records; 0.5 = no signal) and the count of synthetic rows that copy a train
  row exactly.
Where this runs: these metrics touch real rows, so they run where the real data is - at a hub, on
its own train/holdout split, with only the figures leaving it. The benchmark pools the public
PI-CAI table and evaluates centrally on its holdout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from flute.synth.schema import ColumnKind, TableSchema

if TYPE_CHECKING:
    import pandas as pd

LOG_COLUMNS = ("psa", "prostateVolume")


@dataclass(frozen=True)
class Fidelity:
    column_distance: dict[str, float]  # KS (numeric) or TV (categorical)
    mean_column_distance: float
    correlation_difference: float
    sdm_quality: float  # SDMetrics QualityReport score, 1 = same shapes and pair trends


@dataclass(frozen=True)
class Utility:
    tstr_lr: float
    tstr_gb: float
    trtr_lr: float
    trtr_gb: float


@dataclass(frozen=True)
class Privacy:
    dcr_ratio: float
    mia_auc: float
    exact_copies: int


@dataclass(frozen=True)
class Evaluation:
    fidelity: Fidelity
    utility: Utility
    privacy: Privacy

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def evaluate(schema: TableSchema, synthetic: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame, target: str, *, seed: int = 0) -> Evaluation:
    return Evaluation(fidelity(schema, synthetic, train), utility(schema, synthetic, train, holdout, target, seed=seed), privacy(schema, synthetic, train, holdout, seed=seed))


def fidelity(schema: TableSchema, synthetic: pd.DataFrame, real: pd.DataFrame) -> Fidelity:
    from scipy.stats import ks_2samp

    distances = {}
    for column in schema.columns:
        if column.kind.numeric:
            a, b = numeric_values(real[column.name]), numeric_values(synthetic[column.name])
            distances[column.name] = float(ks_2samp(a[~np.isnan(a)], b[~np.isnan(b)]).statistic)
        else:
            p = real[column.name].astype("string").fillna("<missing>").value_counts(normalize=True)
            q = synthetic[column.name].astype("string").fillna("<missing>").value_counts(normalize=True)
            distances[column.name] = float(0.5 * p.subtract(q, fill_value=0.0).abs().sum())
    difference = np.abs(correlation_matrix(schema, real) - correlation_matrix(schema, synthetic))
    upper = np.triu_indices(len(schema.columns), 1)
    return Fidelity(distances, float(np.mean(list(distances.values()))), float(np.nanmean(difference[upper])), sdmetrics_quality(schema, synthetic, real))


def sdmetrics_metadata(schema: TableSchema) -> dict[str, dict[str, dict[str, str]]]:
    """SDMetrics' single-table metadata of the schema: numeric kinds are `numerical`; categories
    and 0/1 flags are `categorical` (a flag's mean is not a shape SDMetrics should compare)."""
    return {"columns": {c.name: {"sdtype": "numerical" if c.kind.numeric else "categorical"} for c in schema.columns}}


def sdmetrics_quality(schema: TableSchema, synthetic: pd.DataFrame, real: pd.DataFrame) -> float:
    """SDMetrics 0.32 `QualityReport` score of `synthetic` against `real` over the schema's
    columns. Both frames are first put in one representation (numbers as float, categories as
    their schema labels, missing as its own label), so a category typed 4 in one frame and 4.0 or
    "4" in the other is the same category. The report's progress bar is switched off."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the single-table report's deprecation notice
        from sdmetrics.reports.single_table import QualityReport

    report = QualityReport()
    report.generate(_sdmetrics_frame(schema, real), _sdmetrics_frame(schema, synthetic), sdmetrics_metadata(schema), verbose=False)
    return float(report.get_score())


def _sdmetrics_frame(schema: TableSchema, frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    values: dict[str, object] = {}
    for column in schema.columns:
        if column.kind.numeric:
            values[column.name] = numeric_values(frame[column.name])
        else:
            labels = np.asarray(column.labels(), dtype=object)
            values[column.name] = labels[column.encode(frame[column.name].to_numpy(dtype=object))]
    return pd.DataFrame(values)


def utility(schema: TableSchema, synthetic: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame, target: str, *, seed: int = 0) -> Utility:
    """AUROC on the real holdout of models trained on synthetic (TSTR) and on real (TRTR) rows."""
    features = [c.name for c in schema.columns if c.name != target]
    tstr = {kind: _auroc(schema, features, synthetic, holdout, target, kind, seed) for kind in ("lr", "gb")}
    trtr = {kind: _auroc(schema, features, train, holdout, target, kind, seed) for kind in ("lr", "gb")}
    return Utility(tstr["lr"], tstr["gb"], trtr["lr"], trtr["gb"])


def augmented_auroc(schema: TableSchema, synthetic: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame, target: str, *, seed: int = 0) -> float:
    """LR AUROC on the holdout trained on the real train rows PLUS the synthetic rows
    (NF-IMSD-4: augmentation), to set against `Utility.trtr_lr` (real rows alone)."""
    import pandas as pd

    features = [c.name for c in schema.columns if c.name != target]
    both = pd.concat([train[list(schema.names)], synthetic[list(schema.names)]], ignore_index=True)
    return _auroc(schema, features, both, holdout, target, "lr", seed)


def privacy(schema: TableSchema, synthetic: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame, *, seed: int = 0) -> Privacy:
    """DCR in the standardised feature space (see `standardised_embedding`); the attack scores each real record
    by minus its distance to the nearest synthetic row."""
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    synth, members, outsiders = (standardised_embedding(schema, frame, train) for frame in (synthetic, train, holdout))
    to_train, to_holdout = _closest_distances(synth, members, outsiders, seed)
    nearest = NearestNeighbors(n_neighbors=1).fit(synth)
    score = -np.concatenate([nearest.kneighbors(members)[0][:, 0], nearest.kneighbors(outsiders)[0][:, 0]])
    truth = np.r_[np.ones(len(members)), np.zeros(len(outsiders))]
    median_holdout = float(np.median(to_holdout))
    ratio = float(np.median(to_train) / median_holdout) if median_holdout > 0 else float("nan")
    keys = set(map(tuple, train[list(schema.names)].astype("string").fillna("<NA>").to_numpy().tolist()))
    copies = sum(tuple(row) in keys for row in synthetic[list(schema.names)].astype("string").fillna("<NA>").to_numpy().tolist())
    return Privacy(ratio, float(roc_auc_score(truth, score)), int(copies))


def closest_record_distances(
    schema: TableSchema, synthetic: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Each synthetic row's distance to its closest train record and to its closest holdout
    record (train subsampled to the holdout's size, so the two medians compare like with like)."""
    synth, members, outsiders = (standardised_embedding(schema, frame, train) for frame in (synthetic, train, holdout))
    return _closest_distances(synth, members, outsiders, seed)


def _closest_distances(synth: np.ndarray, members: np.ndarray, outsiders: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    same_size = np.random.default_rng(seed).choice(len(members), size=min(len(members), len(outsiders)), replace=False)
    to_train = NearestNeighbors(n_neighbors=1).fit(members[same_size]).kneighbors(synth)[0][:, 0]
    to_holdout = NearestNeighbors(n_neighbors=1).fit(outsiders).kneighbors(synth)[0][:, 0]
    return to_train, to_holdout


def _auroc(schema: TableSchema, features: Sequence[str], fit_on: pd.DataFrame, test_on: pd.DataFrame, target: str, kind: str, seed: int) -> float:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = numeric_values(fit_on[target])
    if len(np.unique(labels[~np.isnan(labels)])) < 2:
        return 0.5  # a single-class training set predicts nothing
    classifier = LogisticRegression(max_iter=1000) if kind == "lr" else GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=seed)
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), classifier)
    model.fit(_design(schema, features, fit_on), labels.astype(int))
    return float(roc_auc_score(numeric_values(test_on[target]).astype(int), model.predict_proba(_design(schema, features, test_on))[:, 1]))


def _design(schema: TableSchema, features: Sequence[str], frame: pd.DataFrame) -> np.ndarray:
    """Numeric columns (log of PSA and volume), categories one-hot; NaN left to the model."""
    blocks = []
    for name in features:
        column = schema.column(name)
        if column.kind.numeric or column.kind is ColumnKind.FLAG:
            values = numeric_values(frame[name])
            blocks.append(np.log(np.clip(values, 0.1, None)) if name in LOG_COLUMNS else values)
        else:
            codes = column.encode(frame[name].to_numpy(dtype=object))
            blocks += [(codes == code).astype(np.float64) for code in range(len(column.categories))]
    return np.column_stack(blocks)


def standardised_embedding(schema: TableSchema, frame: pd.DataFrame, reference: pd.DataFrame) -> np.ndarray:
    """Every column standardised on the real train rows (missing -> the reference median)."""
    design = _design(schema, schema.names, frame)
    base = _design(schema, schema.names, reference)
    median, std = np.nanmedian(base, axis=0), np.nanstd(base, axis=0)
    design = np.where(np.isnan(design), median, design)
    return (design - median) / np.where(std > 0, std, 1.0)


def correlation_matrix(schema: TableSchema, frame: pd.DataFrame) -> np.ndarray:
    """Spearman correlations: numeric values, categories as their codes, missing left out."""
    import pandas as pd

    values = {}
    for column in schema.columns:
        if column.kind.numeric:
            values[column.name] = numeric_values(frame[column.name])
        else:
            codes = column.encode(frame[column.name].to_numpy(dtype=object)).astype(np.float64)
            if column.allow_missing:
                codes[codes == column.missing_code] = np.nan
            values[column.name] = codes
    return pd.DataFrame(values).corr(method="spearman").to_numpy()


def numeric_values(series: pd.Series) -> np.ndarray:
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
