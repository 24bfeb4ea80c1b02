import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from xmd_core import stats


# ------------------------------------------------------------------ accuracy_ci


def test_accuracy_ci_point_and_keys():
    res = stats.accuracy_ci([1, 1, 0, 1, 0, 1, 1, 1], n_boot=500, seed=1)
    assert set(res) == {"acc", "low", "high", "n"}
    assert res["acc"] == pytest.approx(0.75) and res["n"] == 8
    assert 0.0 <= res["low"] <= res["acc"] <= res["high"] <= 1.0
    assert res == stats.accuracy_ci(np.array([True, True, False, True, False, True, True, True]), n_boot=500, seed=1)


def test_accuracy_ci_matches_index_resampling():
    """The binomial shortcut has the distribution of an explicit resample of clip indices."""
    rng = np.random.default_rng(3)
    y = (rng.random(60) < 0.65).astype(int)
    idx = rng.integers(0, y.size, size=(20000, y.size))
    lo, hi = np.quantile(y[idx].mean(axis=1), [0.025, 0.975])
    res = stats.accuracy_ci(y, n_boot=20000, seed=4)
    assert res["low"] == pytest.approx(lo, abs=0.02)
    assert res["high"] == pytest.approx(hi, abs=0.02)


@pytest.mark.parametrize("level, lo, hi", [(0.95, 0.90, 0.985), (0.5, 0.40, 0.62)])
def test_accuracy_ci_coverage(level, lo, hi):
    p, n, seeds = 0.7, 100, 400
    hits = 0
    for s in range(seeds):
        y = np.random.default_rng(1000 + s).random(n) < p
        r = stats.accuracy_ci(y, n_boot=400, level=level, seed=s)
        hits += r["low"] <= p <= r["high"]
    assert lo <= hits / seeds <= hi


def test_accuracy_ci_shrinks_with_n():
    rng = np.random.default_rng(5)
    widths = {}
    for n in (100, 1600):
        r = stats.accuracy_ci(rng.random(n) < 0.7, n_boot=2000, seed=0)
        widths[n] = r["high"] - r["low"]
    assert widths[1600] < widths[100] / 2.5  # ~1/4 expected
    assert widths[1600] > 0


def test_accuracy_ci_degenerate_all_right():
    r = stats.accuracy_ci(np.ones(20), n_boot=100)
    assert (r["acc"], r["low"], r["high"]) == (1.0, 1.0, 1.0)


# ------------------------------------------------------------------ cluster bootstrap / accuracy_table


def _clustered(n_clusters=30, per=20, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.choice([0.1, 0.9], size=n_clusters)  # strong within-cluster correlation
    cl = np.repeat(np.arange(n_clusters), per)
    y = (rng.random(cl.size) < p[cl]).astype(int)
    return pd.DataFrame({"participant": [f"p{c:02d}" for c in cl], "correct": y, "cond": "ears"})


def test_cluster_bootstrap_wider_when_correlated():
    df = _clustered()
    row = stats.accuracy_table(df, "cond", n_boot=1000)
    clu = stats.accuracy_table(df, "cond", cluster="participant", n_boot=1000)
    assert row["acc"].iloc[0] == clu["acc"].iloc[0] == pytest.approx(df.correct.mean())
    assert clu["n_clusters"].iloc[0] == 30 and clu["n"].iloc[0] == 600
    w_row = row["high"].iloc[0] - row["low"].iloc[0]
    w_clu = clu["high"].iloc[0] - clu["low"].iloc[0]
    assert w_clu > 2.0 * w_row


def test_cluster_bootstrap_of_singletons_is_row_bootstrap():
    rng = np.random.default_rng(2)
    y = (rng.random(400) < 0.6).astype(int)
    row = stats.accuracy_ci(y, n_boot=4000)
    clu = stats.cluster_accuracy_ci(y, np.arange(400), n_boot=4000)
    assert clu["high"] - clu["low"] == pytest.approx(row["high"] - row["low"], rel=0.15)


def test_accuracy_table_groups_sorted_and_same_seed_per_group():
    df = pd.DataFrame(
        {
            "model": ["b"] * 4 + ["a"] * 6,
            "split": ["x", "y"] * 5,
            "correct": [1, 0, 1, 1, 0, 0, 1, 0, 1, 1],
        }
    )
    t = stats.accuracy_table(df, "model", n_boot=300, seed=7)
    assert list(t.columns) == ["model", "acc", "low", "high", "n"]
    assert list(t.model) == ["a", "b"]
    assert list(t.n) == [6, 4]
    assert t.acc.tolist() == pytest.approx([0.5, 0.75])
    ref = stats.accuracy_ci([0, 0, 1, 0, 1, 1], n_boot=300, seed=7)
    assert (t.low.iloc[0], t.high.iloc[0]) == (ref["low"], ref["high"])
    t2 = stats.accuracy_table(df, ["model", "split"], n_boot=300)
    assert list(zip(t2.model, t2.split)) == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    assert t2.n.sum() == 10


# ------------------------------------------------------------------ paired comparisons


def _paired_example(n11=5, b=3, c=9, n00=5):
    a = np.array([1] * n11 + [1] * b + [0] * c + [0] * n00)
    bb = np.array([1] * n11 + [0] * b + [1] * c + [0] * n00)
    return a, bb


def test_mcnemar_exact_hand_computed():
    a, bb = _paired_example()
    r = stats.mcnemar(a, bb)
    assert (r["b"], r["c"], r["exact"]) == (3, 9, True)
    # two-sided exact: 2 * P(X <= 3), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66 + 220) / 4096
    assert r["p_value"] == pytest.approx(598 / 4096, rel=1e-12)
    assert r["statistic"] == 3
    assert stats.mcnemar(bb, a)["p_value"] == pytest.approx(r["p_value"])


def test_mcnemar_chi_square_with_correction():
    a, bb = _paired_example(n11=40, b=13, c=19, n00=8)
    r = stats.mcnemar(a, bb)
    assert (r["b"], r["c"], r["exact"]) == (13, 19, False)
    stat = (abs(13 - 19) - 1) ** 2 / (13 + 19)
    assert r["statistic"] == pytest.approx(stat)
    assert r["p_value"] == pytest.approx(math.erfc(math.sqrt(stat / 2)))  # chi2(1) survival


def test_mcnemar_no_discordant_pairs():
    r = stats.mcnemar([1, 0, 1], [1, 0, 1])
    assert (r["b"], r["c"], r["p_value"]) == (0, 0, 1.0)


def test_paired_difference_ci():
    a, bb = _paired_example()
    r = stats.paired_difference_ci(a, bb, n_boot=3000, seed=0)
    assert r["diff"] == pytest.approx(6 / 22) and r["n"] == 22
    assert r["acc_b"] - r["acc_a"] == pytest.approx(r["diff"])
    assert r["low"] < r["diff"] < r["high"]
    # paired resampling of clip indices, done explicitly
    idx = np.random.default_rng(9).integers(0, 22, size=(20000, 22))
    lo, hi = np.quantile(bb[idx].mean(1) - a[idx].mean(1), [0.025, 0.975])
    assert (r["low"], r["high"]) == pytest.approx((lo, hi), abs=0.03)
    same = stats.paired_difference_ci(a, a, n_boot=200)
    assert (same["diff"], same["low"], same["high"]) == (0.0, 0.0, 0.0)


def test_paired_is_tighter_than_unpaired_for_correlated_models():
    rng = np.random.default_rng(1)
    a = rng.random(500) < 0.7
    bb = a.copy()
    flip = rng.random(500) < 0.1
    bb[flip] = ~bb[flip]
    r = stats.paired_difference_ci(a, bb, n_boot=2000)
    ra, rb = stats.accuracy_ci(a, n_boot=2000), stats.accuracy_ci(bb, n_boot=2000, seed=1)
    unpaired_half = math.hypot((ra["high"] - ra["low"]) / 2, (rb["high"] - rb["low"]) / 2)
    assert (r["high"] - r["low"]) / 2 < 0.6 * unpaired_half


# ------------------------------------------------------------------ class-wise and alignment


def test_classwise_accuracy_wide():
    df = pd.DataFrame(
        {
            "model": ["audio"] * 4 + ["visual"] * 4,
            "label": ["dog", "dog", "cat", "cat"] * 2,
            "correct": [1, 1, 0, 1, 0, 1, 1, 1],
        }
    )
    w = stats.classwise_accuracy(df, "model")
    assert list(w.index) == ["cat", "dog"] and w.index.name == "label"
    assert list(w.columns) == ["audio", "visual", "n"]
    assert w.loc["cat"].tolist() == pytest.approx([0.5, 1.0, 2])
    assert w.loc["dog"].tolist() == pytest.approx([1.0, 0.5, 2])


def test_sign_agreement_hand_example():
    classes = [f"c{i}" for i in range(10)]
    llm = pd.Series([0.3, 0.2, -0.1, -0.4, 0.5, 0.1, -0.2, 0.3, 0.0, 0.2], index=classes)
    human = pd.Series([0.1, 0.4, -0.3, -0.1, 0.2, -0.2, -0.1, 0.1, 0.0, 0.3], index=classes)
    # agree in all but c5 (sign differs) and c8 (human tie, though the LLM gap is 0 too) -> 8 of 10
    r = stats.sign_agreement(llm, human.iloc[::-1])  # matched by index, not position
    assert (r["agree"], r["n"]) == (8, 10)
    assert r["p_value"] == pytest.approx((45 + 10 + 1) / 1024)
    assert stats.sign_agreement(llm, llm)["agree"] == 9  # a zero gap never agrees, even with itself
    allr = stats.sign_agreement(llm.where(llm != 0, -0.1), llm.where(llm != 0, -0.3) * 2)
    assert allr["agree"] == 10 and allr["p_value"] == pytest.approx(1 / 1024)


def test_rank_correlation_perfect_monotone():
    x = pd.Series(np.arange(30.0), index=[f"k{i:02d}" for i in range(30)])
    y = x**3 + 1
    r = stats.rank_correlation_ci(x, y.sample(frac=1, random_state=0), n_boot=500)
    assert r["rho"] == pytest.approx(1.0)
    assert r["low"] == pytest.approx(1.0) and r["high"] == pytest.approx(1.0)
    assert r["p_value"] < 1e-10 and r["n"] == 30
    assert stats.rank_correlation_ci(x, -y, n_boot=200)["high"] == pytest.approx(-1.0)


def test_rank_correlation_noisy_matches_scipy():
    rng = np.random.default_rng(0)
    x = pd.Series(rng.integers(0, 10, 60).astype(float))
    y = x + rng.normal(0, 4, 60)
    r = stats.rank_correlation_ci(x, y, n_boot=1000, seed=2)
    ref = spearmanr(x, y)
    assert r["rho"] == pytest.approx(ref.statistic) and r["p_value"] == pytest.approx(ref.pvalue)
    assert r["low"] < r["rho"] < r["high"] and r["high"] - r["low"] > 0.1


def test_rowwise_spearman_with_ties_matches_scipy():
    rng = np.random.default_rng(4)
    xs, ys = rng.integers(0, 5, (20, 15)), rng.integers(0, 5, (20, 15))
    got = stats._rowwise_spearman(xs, ys)
    want = [spearmanr(a, b).statistic for a, b in zip(xs, ys)]
    assert got == pytest.approx(want)


def _figure1_table():
    rows = {}
    for i, g in enumerate([0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3]):
        rows[f"aud{i}"] = (0.95, 0.95 - g)
    # three-way tie at gap 0.2 for the last two audio slots (float noise differs per pair)
    rows["zeta"], rows["alpha"], rows["mid"] = (0.9, 0.7), (0.7, 0.5), (0.6, 0.4)
    for i, g in enumerate([0.8, 0.7, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25]):
        rows[f"vis{i}"] = (0.9 - g, 0.9)
    rows["vis_extra"] = (0.68, 0.9)  # gap -0.22: 11th most visual, left out everywhere
    for i, g in enumerate([0.0, 0.02, -0.02, 0.04, -0.04, 0.06, -0.06, 0.08, -0.08]):
        rows[f"par{i}"] = (0.5 + g, 0.5)
    rows["q_b"], rows["q_a"] = (0.62, 0.52), (0.48, 0.58)  # |gap| 0.1 tie for the last on-par slot
    return pd.DataFrame.from_dict(rows, orient="index", columns=["qwen2_audio", "qwen2_vl"])


def test_select_figure1_classes():
    cw = _figure1_table()
    sel = stats.select_figure1_classes(cw, "qwen2_audio", "qwen2_vl")
    assert list(sel.columns) == ["label", "row", "gap"] and len(sel) == 30
    assert list(sel.row) == ["on par"] * 10 + ["audio better"] * 10 + ["visual better"] * 10
    assert sel.label.is_unique
    by = {r: set(sel.label[sel.row == r]) for r in stats.FIGURE1_ROWS}
    assert by["audio better"] == {f"aud{i}" for i in range(8)} | {"alpha", "mid"}
    assert by["visual better"] == {f"vis{i}" for i in range(10)}
    assert by["on par"] == {f"par{i}" for i in range(9)} | {"q_a"}
    assert sel.label.iloc[0] == "par0" and sel.label.iloc[10] == "aud0" and sel.label.iloc[20] == "vis0"
    assert sel.set_index("label").gap["vis0"] == pytest.approx(-0.8)
    # a `label` column is used instead of the index, and the result does not depend on row order
    shuffled = cw.sample(frac=1, random_state=1).rename_axis("label").reset_index()
    assert stats.select_figure1_classes(shuffled, "qwen2_audio", "qwen2_vl").equals(sel)


def test_select_figure1_refuses_too_few_classes():
    cw = _figure1_table().iloc[:29]
    with pytest.raises(ValueError, match="at least 30"):
        stats.select_figure1_classes(cw, "qwen2_audio", "qwen2_vl")
    assert len(stats.select_figure1_classes(cw, "qwen2_audio", "qwen2_vl", n_per_row=9)) == 27


# ------------------------------------------------------------------ diagnostics


def test_accuracy_by_letter_order_and_values():
    df = pd.DataFrame({"answer": list("JCAJCAB"), "correct": [1, 0, 1, 0, 1, 1, 0]})
    t = stats.accuracy_by_letter(df)
    assert list(t.letter) == ["A", "B", "C", "J"]
    assert t.acc.tolist() == pytest.approx([1.0, 0.0, 0.5, 0.5])
    assert t.n.tolist() == [2, 1, 2, 2]
    assert t.share.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="answer"):
        stats.accuracy_by_letter(pd.DataFrame({"answer": ["A", "K"], "correct": [1, 0]}))


def test_position_bias_test():
    rng = np.random.default_rng(0)
    letters = rng.choice(list("ABCDEFGHIJ"), 2000)
    fair = pd.DataFrame({"answer": letters, "correct": (rng.random(2000) < 0.7).astype(int)})
    biased = fair.assign(correct=np.where(fair.answer == "A", 1, (rng.random(2000) < 0.5).astype(int)))
    assert stats.position_bias_test(fair)["p_value"] > 0.001
    r = stats.position_bias_test(biased)
    assert r["p_value"] < 1e-10 and r["dof"] == 9 and r["n"] == 2000


def test_agreement_rate_with_unparseable():
    a = ["A", "B", None, "D", "E", np.nan]
    b = ["A", "C", "C", "D", None, np.nan]
    r = stats.agreement_rate(a, b)
    assert (r["agree"], r["n"], r["unparseable"]) == (2, 6, 3)
    assert (r["unparseable_a"], r["unparseable_b"]) == (2, 2)
    assert r["rate"] == pytest.approx(2 / 6)
    assert stats.agreement_rate(pd.Series(list("ABC")), np.array(list("ABC")))["rate"] == 1.0


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "values, match",
    [([], "correct is empty"), ([0, 1, 2], "only 0/1"), ([0, 0.5], "only 0/1"), ([1, np.nan], "missing"), (["x", "y"], "0/1")],
)
def test_accuracy_ci_rejects_bad_correct(values, match):
    with pytest.raises(ValueError, match=match):
        stats.accuracy_ci(values)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="correct_a and correct_b differ in length"):
        stats.paired_difference_ci([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="correct_b"):
        stats.mcnemar([1, 0], [1, 3])
    with pytest.raises(ValueError, match="level"):
        stats.accuracy_ci([1, 0], level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        stats.accuracy_ci([1, 0], n_boot=0)
    with pytest.raises(ValueError, match="lacks column"):
        stats.accuracy_table(pd.DataFrame({"model": ["a"], "correct": [1]}), "split")
    with pytest.raises(ValueError, match="df\\['model'\\] contains missing"):
        stats.accuracy_table(pd.DataFrame({"model": ["a", None], "correct": [1, 0]}), "model")
    with pytest.raises(ValueError, match="df is empty"):
        stats.accuracy_table(pd.DataFrame({"model": [], "correct": []}), "model")
    with pytest.raises(ValueError, match="df\\['correct'\\]"):
        stats.classwise_accuracy(pd.DataFrame({"model": ["a"], "label": ["x"], "correct": [7]}), "model")
    with pytest.raises(ValueError, match="same classes"):
        stats.sign_agreement(pd.Series([1.0], index=["a"]), pd.Series([1.0], index=["b"]))
    with pytest.raises(ValueError, match="gap_llm is empty"):
        stats.sign_agreement(pd.Series([], dtype=float), pd.Series([], dtype=float))
    with pytest.raises(ValueError, match="at least 3"):
        stats.rank_correlation_ci(pd.Series([1.0, 2.0]), pd.Series([2.0, 1.0]))
    with pytest.raises(ValueError, match="x is constant"):
        stats.rank_correlation_ci(pd.Series([1.0] * 4), pd.Series([1.0, 2, 3, 4]))
    with pytest.raises(ValueError, match="pred_a and pred_b differ in length"):
        stats.agreement_rate(["A"], ["A", "B"])
    with pytest.raises(ValueError, match="clusters"):
        stats.cluster_accuracy_ci([1, 0, 1], ["p1", "p2"])
