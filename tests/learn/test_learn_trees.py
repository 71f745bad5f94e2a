"""Federated decision trees, random forests and gradient boosting (F-HUF-4, F-HUF-5): grown on
three non-IID hubs they equal the same algorithm on the pooled rows; seeded forests repeat; missing
values follow a learned default direction; models survive their parameter-vector form."""

from __future__ import annotations

import numpy as np
import pytest

from flute.learn.federated_estimators import FederatedTreeClassifier
from flute.learn.models import ModelFormatError, decode, encode
from flute.learn.tree_models import BoostingParams, DecisionTreeParams, RandomForestParams, TreeEnsemble

from .learn_inputs import pooled, three_hubs

TREE = DecisionTreeParams(max_depth=4, min_rows_leaf=10)
BOOSTING = BoostingParams(n_trees=8, max_depth=3, learning_rate=0.3)


def _assert_same_trees(a: TreeEnsemble, b: TreeEnsemble) -> None:
    assert len(a.trees) == len(b.trees) and a.link == b.link
    assert a.base_margin == pytest.approx(b.base_margin, abs=1e-12)
    for left, right in zip(a.trees, b.trees):
        for name in ("feature", "threshold_bin", "missing_left", "left", "right"):
            np.testing.assert_array_equal(getattr(left, name), getattr(right, name), err_msg=name)
        np.testing.assert_array_equal(left.threshold, right.threshold)
        np.testing.assert_allclose(left.value, right.value, rtol=0, atol=1e-12)


@pytest.mark.parametrize("params", [TREE, DecisionTreeParams(max_depth=3, min_rows_leaf=15, criterion="entropy"), BOOSTING], ids=["gini", "entropy", "gbdt"])
def test_federated_trees_equal_pooled_trees(params: DecisionTreeParams | BoostingParams) -> None:
    hubs = three_hubs()
    x, y = pooled(hubs)
    federated = FederatedTreeClassifier(params).fit_partitions(hubs)
    central = FederatedTreeClassifier(params).fit(x, y)
    _assert_same_trees(federated.model_, central.model_)
    np.testing.assert_allclose(federated.predict_proba(x), central.predict_proba(x), rtol=0, atol=1e-9)
    assert federated.model_.trees[0].n_nodes > 7  # a real tree, not a stump that trivially matches


def test_balanced_class_weights_give_the_same_tree_federated_and_pooled() -> None:
    hubs = three_hubs()
    federated = FederatedTreeClassifier(TREE, class_weight="balanced").fit_partitions(hubs)
    central = FederatedTreeClassifier(TREE, class_weight="balanced").fit(*pooled(hubs))
    _assert_same_trees(federated.model_, central.model_)


def test_boosting_learns_and_more_trees_fit_the_training_rows_better() -> None:
    from sklearn.metrics import log_loss

    x, y = pooled(three_hubs())
    losses = [log_loss(y, FederatedTreeClassifier(BoostingParams(n_trees=n, max_depth=2)).fit(x, y).predict_proba(x)) for n in (1, 5, 20)]
    assert losses[0] > losses[1] > losses[2]
    prevalence = y.mean()
    assert losses[0] < log_loss(y, np.full(y.shape, prevalence))


def test_seeded_forest_repeats_and_another_seed_differs() -> None:
    hubs = three_hubs()
    params = RandomForestParams(n_trees=6, max_depth=3, min_rows_leaf=10)
    x, _ = pooled(hubs)
    first = FederatedTreeClassifier(params, seed=3).fit_partitions(hubs).predict_proba(x)
    again = FederatedTreeClassifier(params, seed=3).fit_partitions(hubs).predict_proba(x)
    other = FederatedTreeClassifier(params, seed=4).fit_partitions(hubs).predict_proba(x)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_forest_without_bootstrap_and_all_features_is_copies_of_the_tree() -> None:
    hubs = three_hubs()
    params = RandomForestParams(n_trees=3, max_depth=4, min_rows_leaf=10, max_features=1.0, bootstrap=False)
    forest = FederatedTreeClassifier(params).fit_partitions(hubs).model_
    tree = FederatedTreeClassifier(DecisionTreeParams(max_depth=4, min_rows_leaf=10)).fit_partitions(hubs).model_
    for grown in forest.trees:
        _assert_same_trees(TreeEnsemble((grown,), 0.0, "mean_probability"), tree)


def test_missing_values_follow_the_learned_default_direction() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 1))
    y = (x[:, 0] > 0.5).astype(np.int64)
    # Missing exactly where the outcome is positive: the split must send missing values right.
    x[(y == 1) & (rng.random(400) < 0.5), 0] = np.nan
    model = FederatedTreeClassifier(DecisionTreeParams(max_depth=1, min_rows_leaf=5)).fit(x, y).model_
    root = model.trees[0]
    assert root.missing_left[0] == 0
    assert model.predict_risk(np.array([[np.nan]]))[0] > 0.9


@pytest.mark.parametrize(
    ("name", "params"),
    [("decision_tree", TREE), ("random_forest", RandomForestParams(n_trees=3, max_depth=3)), ("gbdt", BOOSTING)],
)
def test_parameter_vector_round_trip_predicts_identically(name: str, params: DecisionTreeParams) -> None:
    x, y = pooled(three_hubs())
    model = FederatedTreeClassifier(params).fit(x, y).model_
    restored = decode(name, encode(model), n_inputs=4)
    np.testing.assert_array_equal(restored.predict_risk(x), model.predict_risk(x))


def test_corrupt_parameter_vectors_are_refused() -> None:
    x, y = pooled(three_hubs())
    vector = encode(FederatedTreeClassifier(TREE).fit(x, y).model_)
    with pytest.raises(ModelFormatError, match="node counts"):
        decode("decision_tree", vector[:-1], n_inputs=4)
    with pytest.raises(ModelFormatError, match="feature or node that does not exist"):
        decode("decision_tree", vector, n_inputs=2)
    looping = vector.copy()
    n_nodes = int(vector[3])
    looping[4 + 4 * n_nodes] = 0  # the root's left child points back at the root
    with pytest.raises(ModelFormatError, match="does not exist"):
        decode("decision_tree", looping, n_inputs=4)
    with pytest.raises(ModelFormatError, match="unknown model"):
        decode("xgboost", vector, n_inputs=4)
