import numpy as np
import pytest

from oscsim import metrics as M


def test_linear_fit_r2_hand_values():
    r2, slope = M.linear_fit_r2([0, 1, 2], [0, 2, 1])  # fit 0.5x + 0.5, residuals -.5, 1, -.5
    assert r2 == pytest.approx(1 - 1.5 / 2.0) and slope == pytest.approx(0.5)
    r2, slope = M.linear_fit_r2([0, 1, 2, 3], [1, 3, 5, 7])
    assert r2 == pytest.approx(1.0) and slope == pytest.approx(2.0)


def test_outliers_trimmed_r2_and_identifiable():
    true = np.array([-2.0, -1.8, -1.6, -1.4, -1.2, -1.0])
    corrected = true + np.array([0.0, 0.31, -0.5, 0.29, 0.0, 0.0])
    m = M.rate_constant_metrics(corrected, true, identifiable=[True, False, False, True, True, True])
    assert m["n_outliers"] == 2 and m["n_outliers_identifiable"] == 0
    keep = [0, 3, 4, 5]
    r2, slope = M.linear_fit_r2(true[keep], corrected[keep])
    assert m["trimmed_R2"] == pytest.approx(r2) and m["slope"] == pytest.approx(slope)
    assert m["rate_constants_R2_identifiable"] == pytest.approx(M.linear_fit_r2(true[keep], corrected[keep])[0])
    assert m["rate_constants_R2"] == pytest.approx(np.corrcoef(true, corrected)[0, 1] ** 2)


def test_trim_uses_all_when_most_are_outliers():
    true = np.linspace(-2, -1, 5)
    corrected = true + np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    m = M.rate_constant_metrics(corrected, true)
    assert m["n_outliers"] == 3 and m["trimmed_R2"] == pytest.approx(m["rate_constants_R2"])


def test_alpha_correction_on_crafted_network():
    # reactions with 2, 1 and 0 substrate edges; MLP_sub absorbed alpha = 0.5 per edge. The edgeless reaction
    # is shifted once too: the lab clamps n_sub at 1 (`n_sub_per_rxn.clamp_(min=1)`), and so does oscsim.
    edges = np.array([(0, 0, 1), (1, 0, 1), (2, 1, 1)])  # reaction 0: two |s|=1 edges; 1: one; 2: none
    out = M.alpha_corrected_log_k(np.array([-1.0, -1.0, -1.0]), edges, {1: 0.5})
    assert np.allclose(out, [-1 + 2 * np.log10(0.5), -1 + np.log10(0.5), -1 + np.log10(0.5)])
    # an |s|=2 edge is corrected by MLP_sub's own scale at (c=1, |s|=2)
    edges2 = np.array([(0, 0, 1), (1, 0, 2), (2, 1, 2)])
    out2 = M.alpha_corrected_log_k(np.array([-1.0, -1.0, -1.0]), edges2, {1: 0.5, 2: 0.01})
    assert np.allclose(out2, [-1 + np.log10(0.5) - 2, -1 - 2, -1 + np.log10(0.5)])
    # learned S: each edge corrected by its message's own scale at the exponent learned (here 0.3 and 1.2)
    out3 = M.corrected_by_edge(np.array([-1.0, -1.0, -1.0]), np.array([0, 0, 1]), np.array([-0.3, -1.2, -1.0]), -1.0)
    assert np.allclose(out3, [-1 - 1.5, -2, -2])


def test_rollout_metrics_and_horizon():
    t = np.linspace(0, 10, 201)
    true = np.stack([np.sin(t), np.cos(t), 2 + np.sin(2 * t)], axis=1)
    m = M.rollout_metrics(true, true.copy())
    assert m["test_R2"] == pytest.approx(1.0) and m["test_pearson"] == pytest.approx(1.0)
    assert m["rollout_horizon"] == 200
    drift = true.copy()
    drift[100:] += 5.0
    m = M.rollout_metrics(true, drift)
    assert 90 <= m["rollout_horizon"] <= 110 and m["test_R2"] < 0
    exploded = true.copy()
    exploded[150:] = np.inf
    m = M.rollout_metrics(true, exploded)
    assert m["test_R2"] == -np.inf and m["rollout_horizon"] == 150  # finite frames only
    # a metabolite that barely moves at first: the first 10 frames' mean R^2 is far below 0.9, yet the rollout
    # tracks for 200 frames; the horizon is the longest good window, not the first bad one
    flat = np.concatenate([np.full(20, 3.0) + 1e-4 * np.arange(20), 3.0 + np.sin(t[20:] * 3)])
    true2 = np.stack([np.sin(t), flat], axis=1)
    pred2 = true2.copy()
    pred2[:, 1] += 1e-3
    m = M.rollout_metrics(true2, pred2)
    assert np.mean(M.r2_per_series(true2[:10], pred2[:10])) < 0.9 and m["rollout_horizon"] == 200


def test_fitted_exponent():
    c = np.linspace(0.5, 9, 50)
    assert M.fitted_exponent(c, 3 * c**2) == pytest.approx(2.0)
    assert M.fitted_exponent(c, 0.4 * c**0.86) == pytest.approx(0.86)


def test_dbscan_and_hungarian_accuracy():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.01, (10, 2))
    b = rng.normal(1, 0.01, (10, 2))
    labels = M.dbscan(np.vstack([a, b, [[5.0, 5.0]]]), eps=0.1, min_samples=5)
    assert len(set(labels[:10])) == 1 and len(set(labels[10:20])) == 1 and labels[0] != labels[10]
    assert labels[20] == -1
    true = np.array([1] * 10 + [0] * 10 + [0])
    acc, n = M.cluster_accuracy(true, labels)
    assert n == 2 and acc == pytest.approx(20 / 21)


def test_trial_status():
    assert [M.trial_status(v) for v in (0.05, 0.5, 0.95, float("nan"))] == ["failed", "partial", "converged", "failed"]
