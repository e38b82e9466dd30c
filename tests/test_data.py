import numpy as np
import pytest

from reciprocal_gym.data import DATASETS, from_arrays, load_dataset, make_split, resolve_sizes, split_from_arrays


@pytest.mark.parametrize("name, n, d, C", [("breast_cancer", 569, 30, 2), ("wine", 178, 13, 3),
                                           ("digits", 1797, 64, 10), ("iris", 150, 4, 3)])
def test_bundled_datasets(name, n, d, C):
    ds = load_dataset(name)
    assert ds.X.shape == (n, d) and ds.n_classes == C and set(np.unique(ds.y)) == set(range(C))


def test_synthetic_generators_are_seeded_and_parametrized():
    a = load_dataset("blobs", n_samples=300, n_features=5, n_classes=3, separation=4.0, seed=3)
    b = load_dataset("blobs", n_samples=300, n_features=5, n_classes=3, separation=4.0, seed=3)
    c = load_dataset("blobs", n_samples=300, n_features=5, n_classes=3, separation=4.0, seed=4)
    assert a.X.shape == (300, 5) and a.n_classes == 3
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    m = load_dataset("moons", n_samples=200, noise=0.1, seed=0)
    assert m.X.shape == (200, 2) and m.n_classes == 2


def test_label_noise_flips_the_asked_fraction():
    clean = load_dataset("blobs", n_samples=4000, seed=1)
    noisy = load_dataset("blobs", n_samples=4000, seed=1, label_noise=0.2)
    np.testing.assert_array_equal(clean.X, noisy.X)
    assert abs(np.mean(clean.y != noisy.y) - 0.2) < 0.03


def test_user_arrays_recode_labels():
    ds = from_arrays(np.arange(12.0).reshape(6, 2), np.array(["b", "a", "b", "c", "a", "c"]))
    assert list(ds.classes) == ["a", "b", "c"] and list(ds.y) == [1, 0, 1, 2, 0, 2]


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], "NaN or inf"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), [0, 1], "NaN or inf"),
        (np.zeros((3, 2)), [0, 1], "same length"),
        (np.zeros(3), [0, 1, 0], "2-D"),
        (np.zeros((3, 2)), [1, 1, 1], "two classes"),
        (np.zeros((2, 2)), [0.0, np.nan], "NaN"),
    ],
)
def test_user_arrays_bad_input(X, y, match):
    with pytest.raises(ValueError, match=match):
        from_arrays(X, y)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: load_dataset("mnist"), "dataset='mnist' is not known"),
        (lambda: load_dataset("iris", seed=1), "takes no parameters"),
        (lambda: load_dataset("blobs", n_samples=0), "n_samples"),
        (lambda: load_dataset("blobs", label_noise=1.5), "label_noise"),
        (lambda: load_dataset("blobs", n_classes=1), "n_classes"),
        (lambda: resolve_sizes(100, n_labeled=0), "n_labeled"),
        (lambda: resolve_sizes(100, n_labeled=-3), "n_labeled"),
        (lambda: resolve_sizes(100, n_pool=0), "n_pool"),
        (lambda: resolve_sizes(100, n_pool=200), "n_pool=200 is too large"),
        (lambda: resolve_sizes(100, n_labeled=10, n_pool=50, n_val=30, n_test=30), "only 100"),
        (lambda: resolve_sizes(100, n_val=-1), "n_val"),
        (lambda: resolve_sizes(100, n_labeled=2.5), "n_labeled"),
    ],
)
def test_bad_sizes_and_names(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_default_sizes_fit_every_dataset():
    for name in DATASETS:
        ds = load_dataset(name)
        sizes = resolve_sizes(ds.n_samples)
        assert sizes.total == ds.n_samples and min(sizes.n_pool, sizes.n_val, sizes.n_test) >= 1


def test_split_is_a_seeded_partition_with_non_test_standardization():
    ds = load_dataset("wine")
    sizes = resolve_sizes(ds.n_samples, n_labeled=9, n_pool=80, n_val=40, n_test=49)
    s1 = make_split(ds, sizes, np.random.default_rng(7))
    s2 = make_split(ds, sizes, np.random.default_rng(7))
    s3 = make_split(ds, sizes, np.random.default_rng(8))
    rows = np.concatenate([s1.rows[k] for k in ("labeled", "pool", "val", "test")])
    assert sorted(rows) == list(range(ds.n_samples))
    for key in s1.rows:
        np.testing.assert_array_equal(s1.rows[key], s2.rows[key])
        np.testing.assert_array_equal(s1.y[key], ds.y[s1.rows[key]])
    assert not np.array_equal(s1.rows["pool"], s3.rows["pool"])
    assert sorted(np.unique(s1.y["labeled"])) == [0, 1, 2]  # stratified: every class labeled
    non_test = np.vstack([s1.features(ds.X, k) for k in ("labeled", "pool", "val")])[:, :-1]
    np.testing.assert_allclose(non_test.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(non_test.std(0), 1.0, atol=1e-12)
    test = s1.features(ds.X, "test")
    assert np.all(test[:, -1] == 1.0)  # intercept column
    assert abs(test[:, :-1].mean()) > 1e-6  # test rows do not enter the statistics


def test_explicit_split_from_arrays():
    rng = np.random.default_rng(0)
    parts = {k: (rng.normal(size=(n, 3)), rng.integers(0, 2, n)) for k, n in
             [("labeled", 6), ("pool", 20), ("val", 10), ("test", 10)]}
    ds, split = split_from_arrays(parts)
    assert ds.n_classes == 2 and split.features(ds.X, "pool").shape == (20, 4)
    np.testing.assert_array_equal(split.rows["pool"], np.arange(6, 26))
    with pytest.raises(ValueError, match="keys"):
        split_from_arrays({"labeled": parts["labeled"]})
    bad = dict(parts, pool=(np.full((20, 3), np.nan), parts["pool"][1]))
    with pytest.raises(ValueError, match="pool"):
        split_from_arrays(bad)
