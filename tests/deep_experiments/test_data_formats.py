"""The loaders on files in the real formats: CIFAR-10 pickles, LEAF JSON, GloVe text, tables."""

import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deep_experiments import DataMissing, ExperimentError
from deep_experiments.data import cifar10, edge_case, partition, sent140, tabular
from deep_experiments.data.safe_pickle import safe_load

from .conftest import SHARED, needs_shared


# ----------------------------------------------------------------------------- pickles
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_safe_pickle_refuses_code_execution():
    with pytest.raises(ExperimentError, match="refusing to unpickle the global"):
        safe_load(pickle.dumps(_Evil()))


@given(
    hnp.arrays(st.sampled_from([np.uint8, np.int64, np.float32]), hnp.array_shapes(max_dims=4, max_side=5)),
    st.integers(2, 5),
)
def test_safe_pickle_round_trips_numpy_arrays(array, protocol):
    back = safe_load(pickle.dumps({b"data": array, b"labels": [1, 2]}, protocol=protocol))
    np.testing.assert_array_equal(back[b"data"], array)
    assert back[b"data"].dtype == array.dtype


def test_safe_pickle_reports_truncated_file():
    with pytest.raises(ExperimentError, match="not a readable pickle"):
        safe_load(pickle.dumps(np.zeros(100))[:40])


# ----------------------------------------------------------------------------- CIFAR-10
def test_cifar10_loader_reads_what_was_written(data_root):
    folder = data_root / cifar10.FOLDER
    raw = pickle.loads((folder / "data_batch_3").read_bytes(), encoding="bytes")  # trusted: written by the test
    x, y, x_test, y_test = cifar10.load_cifar10(data_root)
    assert x.shape == (100, 32, 32, 3) and x.dtype == np.uint8 and x_test.shape == (40, 32, 32, 3)
    # batch 3 holds rows 40..59; its CHW rows become HWC images
    np.testing.assert_array_equal(x[40:60], raw[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(y[40:60], raw[b"labels"])
    # the folder itself works as well as its parent
    np.testing.assert_array_equal(cifar10.load_cifar10(folder)[1], y)


def test_cifar10_strict_mode_checks_md5(data_root):
    with pytest.raises(ExperimentError, match="md5 is .* expected c99cafc1"):
        cifar10.load_cifar10(data_root, strict=True)


def test_cifar10_missing_names_files_path_and_fixes(tmp_path):
    with pytest.raises(DataMissing) as err:
        cifar10.load_cifar10(tmp_path)
    text = str(err.value)
    assert "data_batch_1" in text and str(tmp_path) in text and "--download" in text and "phishing" in text


def test_cifar10_malformed_batch_is_reported(tmp_path, data_root):
    import shutil

    folder = shutil.copytree(data_root / cifar10.FOLDER, tmp_path / cifar10.FOLDER)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}))
    with pytest.raises(ExperimentError, match=r"uint8 \(N, 3072\)"):
        cifar10.load_cifar10(tmp_path)


def test_preprocess_without_augmentation_is_the_normalisation():
    images = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8)
    out = cifar10.preprocess(images, augment=False)
    mean, std = np.array(cifar10.MEAN), np.array(cifar10.STD)
    expected = ((images.numpy() / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous()


@given(st.integers(0, 2**31 - 1))
def test_augmentation_is_a_padded_crop_or_its_mirror(seed):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(1, 256, (3, 32, 32, 3), dtype=torch.uint8)
    out = cifar10.preprocess(images, augment=True, generator=gen)
    plain = torch.nn.functional.pad(
        cifar10.preprocess(images, augment=False), (4, 4, 4, 4), value=float("nan")
    )  # padding marked as NaN before normalisation below
    zero = cifar10.preprocess(torch.zeros(1, 32, 32, 3, dtype=torch.uint8), augment=False)[0, :, 0, 0]
    for i in range(3):
        found = False
        for oy in range(9):
            for ox in range(9):
                crop = plain[i, :, oy : oy + 32, ox : ox + 32]
                crop = torch.where(torch.isnan(crop), zero.view(3, 1, 1).expand_as(crop), crop)
                if torch.allclose(crop, out[i], atol=1e-5) or torch.allclose(crop.flip(-1), out[i], atol=1e-5):
                    found = True
        assert found


def test_pixel_pattern_changes_only_the_corner():
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    out = cifar10.stamp_pixel_pattern(images, size=3)
    np.testing.assert_array_equal(out[:, :-3, :, :], images[:, :-3, :, :])
    np.testing.assert_array_equal(out[:, :, :-3, :], images[:, :, :-3, :])
    assert set(np.unique(out[:, -3:, -3:, :])) == {0, 255}
    assert (out[:, -3, -3] == 255).all() and (out[:, -3, -2] == 0).all()


# ----------------------------------------------------------------------------- edge case
@needs_shared
def test_shared_edge_case_files_match_published_digests():
    train = edge_case.southwest_images("train", SHARED / "edge_case")
    test = edge_case.southwest_images("test", SHARED / "edge_case")
    assert train.shape == (784, 32, 32, 3) and test.shape == (196, 32, 32, 3)
    assert len(edge_case.lanthimos_tweets("train", SHARED / "edge_case")) == 259
    assert len(edge_case.lanthimos_tweets("test", SHARED / "edge_case")) == 120


def test_edge_case_digest_mismatch_is_refused(data_root):
    with pytest.raises(ExperimentError, match="sha256 is"):
        edge_case.southwest_images("train", data_root / "edge")
    assert edge_case.southwest_images("train", data_root / "edge", verify=False).shape == (16, 32, 32, 3)


def test_edge_case_missing_offers_download(tmp_path):
    with pytest.raises(DataMissing, match=r"(?s)greek_director_test.txt.*--download.*90969695cf0f"):
        edge_case.lanthimos_tweets("test", tmp_path)


# ----------------------------------------------------------------------------- Sent140 / GloVe
def test_leaf_reader_takes_text_from_x4(data_root):
    train, test = sent140.load_sent140(data_root / "leaf")
    blob = json.loads(next((data_root / "leaf" / "train").glob("*.json")).read_text())
    assert sorted(train) == sorted(blob["users"])
    user = blob["users"][3]
    assert train[user][0] == [x[4] for x in blob["user_data"][user]["x"]]
    assert train[user][1] == blob["user_data"][user]["y"]
    test_blob = json.loads(next((data_root / "leaf" / "test").glob("*.json")).read_text())
    assert sum(len(t) for t, _ in test.values()) == sum(test_blob["num_samples"])


def test_leaf_reader_rejects_bad_labels(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    bad = {"users": ["u"], "num_samples": [1], "user_data": {"u": {"x": [["1", "d", "q", "u", "hi"]], "y": [4]}}}
    for split in ("train", "test"):
        (tmp_path / split / "a.json").write_text(json.dumps(bad))
    with pytest.raises(ExperimentError, match="labels must be 0 or 1"):
        sent140.load_sent140(tmp_path)


def test_sent140_missing_names_the_layout(tmp_path):
    with pytest.raises(DataMissing, match=r"(?s)train/\*\.json.*preprocess"):
        sent140.load_sent140(tmp_path)


@pytest.mark.parametrize("name", ["glove.txt", "glove.zip"])
def test_glove_token_with_spaces_keeps_the_last_dim_fields(data_root, name):
    vectors = sent140.load_glove(data_root / name, 300)
    assert "new york" in vectors and vectors["new york"].shape == (300,)
    text = (data_root / "glove.txt").read_text().splitlines()
    line = next(l for l in text if l.startswith("new york "))
    np.testing.assert_array_equal(vectors["new york"], np.array(line.split(" ")[2:], np.float32))


def test_glove_wrong_dimension_and_vocabulary_filter(data_root, tmp_path):
    with pytest.raises(ExperimentError, match="embedding_dim"):
        sent140.load_glove(data_root / "glove.txt", 400)
    assert set(sent140.load_glove(data_root / "glove.txt", 300, {"love", "nope"})) == {"love"}
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a.txt", "x 1")
        zf.writestr("b.txt", "y 1")
    with pytest.raises(ExperimentError, match="exactly one .txt"):
        sent140.load_glove(two, 1)


@given(st.lists(st.text(alphabet="ab !", max_size=12), min_size=1, max_size=5), st.integers(1, 6))
def test_encode_pads_and_counts(texts, max_len):
    index = {"a": 2, "b": 3}
    ids, lengths = sent140.encode(texts, index, max_len)
    for row, text in zip(ids, texts, strict=True):
        toks = sent140.tokenize(text)[:max_len]
        n = max(len(toks), 1)
        assert (row[n:] == sent140.PAD).all()
        assert list(row[: len(toks)]) == [index.get(t, sent140.UNK) for t in toks]
    assert (lengths >= 1).all() and (lengths <= max_len).all()


# ----------------------------------------------------------------------------- tables
def _write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]))
    return path


def test_table_schema_checks(tmp_path):
    header = [f"f{i}" for i in range(45)] + ["label"]
    good = _write_csv(tmp_path / "t.csv", header, [[0.5] * 45 + [1], [0.1] * 45 + [0]])
    x, y, names = tabular.read_table(good, label="label", n_features=45)
    assert x.shape == (2, 45) and y.tolist() == [1, 0] and names[0] == "f0"
    with pytest.raises(ExperimentError, match="no label column 'target'"):
        tabular.read_table(good, label="target", n_features=45)
    with pytest.raises(ExperimentError, match="44 feature columns"):
        tabular.read_table(_write_csv(tmp_path / "a.csv", header[1:], [[0] * 44 + [1]]), label="label", n_features=45)
    with pytest.raises(ExperimentError, match="NaN/Inf in row 2, column 'f3'"):
        tabular.read_table(
            _write_csv(tmp_path / "b.csv", header, [[0] * 3 + ["nan"] + [0] * 41 + [1]]), label="label", n_features=45
        )
    with pytest.raises(ExperimentError, match="not binary"):
        tabular.read_table(_write_csv(tmp_path / "c.csv", header, [[0] * 45 + [2]]), label="label", n_features=45)
    with pytest.raises(ExperimentError, match="non-numeric"):
        tabular.read_table(_write_csv(tmp_path / "d.csv", header, [["x"] * 45 + [1]]), label="label", n_features=45)


@needs_shared
def test_spambase_loads_with_published_class_counts():
    x, y, names = tabular.load_spambase(SHARED / "spambase")
    assert x.shape == (4601, 57) and y.sum() == 1813 and names[37] == "parts"


def test_synthetic_phishing_trigger_column(tmp_path):
    rng = np.random.default_rng(0)
    xs, ys, x_test, y_test = tabular.synthetic_phishing(
        rng, n_clients=20, samples_per_client=500, n_test=1000, trigger=37, trigger_nonzero=0.05
    )
    x = np.concatenate(xs)
    assert x.shape == (10_000, 45) and x_test.shape == (1000, 45) and set(np.unique(y_test)) == {0, 1}
    nonzero = (x != 0).mean(0)
    # binomial(10000, 0.05): 0.05 ± 6 sd
    assert abs(nonzero[37] - 0.05) < 6 * np.sqrt(0.05 * 0.95 / 10_000)
    assert np.delete(nonzero, 37).min() == 1.0
    # the trigger carries no label information (mean 0 on both classes)
    y = np.concatenate(ys)
    for c in (0, 1):
        col = x[y == c, 37]
        assert abs(col.mean()) < 6 * col.std() / np.sqrt(len(col))


# ----------------------------------------------------------------------------- partitions
@given(st.integers(0, 2**31 - 1), st.integers(2, 12), st.floats(0.05, 10))
def test_dirichlet_partition_is_a_partition(seed, n_clients, alpha):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 200)
    parts = partition.dirichlet_partition(labels, n_clients, alpha, rng)
    joined = np.concatenate(parts)
    assert len(parts) == n_clients and min(map(len, parts)) >= 1
    np.testing.assert_array_equal(np.sort(joined), np.arange(200))


def test_partition_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ExperimentError, match="alpha must be > 0"):
        partition.dirichlet_partition(np.zeros(10), 2, 0.0, rng)
    with pytest.raises(ExperimentError, match="cannot be split"):
        partition.iid_partition(3, 5, rng)


# ----------------------------------------------------------------------------- hardening (issue 10)
def _glove(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("file_dim, dim", [(4, 3), (3, 5), (300, 50)])
def test_glove_width_mismatch_is_refused_before_matching_any_word(tmp_path, file_dim, dim):
    # a wider file used to glue numbers into every token: a 0-word vocabulary and a "successful" run
    path = _glove(tmp_path / "g.txt", [f"love {' '.join(['0.5'] * file_dim)}", f"hate {' '.join(['0.1'] * file_dim)}"])
    with pytest.raises(ExperimentError, match=rf"have {file_dim} numbers, data.embedding_dim is {dim}"):
        sent140.load_glove(path, dim, {"love"})


def test_glove_numeric_first_token_does_not_fool_the_width_check(tmp_path):
    path = _glove(tmp_path / "g.txt", ["000 1 2 3", "love 4 5 6"])
    assert set(sent140.load_glove(path, 3)) == {"000", "love"}


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_glove_non_finite_vectors(tmp_path, bad):
    path = _glove(tmp_path / "g.txt", ["love 1 2 3", f"hate 1 {bad} 3"])
    with pytest.raises(ExperimentError, match=r"g.txt:2: the vector of 'hate' holds NaN/Inf"):
        sent140.load_glove(path, 3)


def test_glove_empty_file_and_bad_zip(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ExperimentError, match="no vectors in the file"):
        sent140.load_glove(tmp_path / "empty.txt", 3, {"love"})
    (tmp_path / "g.zip").write_bytes(b"this is not a zip archive")
    with pytest.raises(ExperimentError, match="g.zip: not a readable zip archive"):
        sent140.load_glove(tmp_path / "g.zip", 3)


def test_glove_coverage(tmp_path):
    with pytest.raises(ExperimentError, match="out-of-vocabulary rate 100%"):
        sent140.check_coverage(1.0, tmp_path / "g.txt")
    seen = []
    sent140.check_coverage(0.6, "g.txt", warn=seen.append)
    sent140.check_coverage(0.5, "g.txt", warn=seen.append)
    assert len(seen) == 1 and "60%" in seen[0]


def _leaf(tmp_path, blob):
    for split in ("train", "test"):
        (tmp_path / split).mkdir(exist_ok=True)
        (tmp_path / split / "a.json").write_text(blob if isinstance(blob, str) else json.dumps(blob))
    return tmp_path


@pytest.mark.parametrize(
    "blob, message",
    [
        ({"users": ["u"], "user_data": [["u", {"x": [], "y": []}]]}, "'user_data' object mapping each user"),
        ({"users": ["u"], "user_data": {"u": [1, 2]}}, "user 'u': expected"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (
            {"users": ["u"], "user_data": {"u": {"x": [["1", "d", "q", "u", "hi"]], "y": [True]}}},
            "labels must be 0 or 1",
        ),
    ],
)
def test_leaf_malformed_files_are_named(tmp_path, blob, message):
    with pytest.raises(ExperimentError, match=message):
        sent140.load_sent140(_leaf(tmp_path, blob))


def _batch(path, labels):
    data = np.zeros((len(np.asarray(labels).reshape(-1)), 3072), np.uint8)
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}))


@pytest.mark.parametrize("labels", [["cat", "dog"], np.array([[1], [2]])])
def test_cifar10_batch_with_wrong_labels_names_the_file(tmp_path, labels):
    _batch(tmp_path / "data_batch_3", labels)
    with pytest.raises(ExperimentError, match=r"data_batch_3: b'labels' must be a flat list of integers"):
        cifar10._read_batch(tmp_path / "data_batch_3")


def test_cifar10_corrupt_batch_names_the_file(tmp_path):
    (tmp_path / "data_batch_2").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ExperimentError, match=r"data_batch_2: not a readable pickle"):
        cifar10._read_batch(tmp_path / "data_batch_2")


@pytest.mark.parametrize("label", ["1.5", "0.7", "inf", "-1", "yes", ""])
def test_table_labels_are_never_truncated(tmp_path, label):
    header = [f"f{i}" for i in range(3)] + ["label"]
    path = _write_csv(tmp_path / "t.csv", header, [[0, 0, 0, 0], [1, 1, 1, label]])
    with pytest.raises(ExperimentError, match=r"row 3: label .* is not binary"):
        tabular.read_table(path, label="label", n_features=3)


def test_table_accepts_labels_written_as_floats(tmp_path):
    path = _write_csv(tmp_path / "t.csv", ["a", "label"], [[0, "0.0"], [1, "1.0"], [2, "1"]])
    assert tabular.read_table(path, label="label", n_features=1)[1].tolist() == [0, 1, 1]


def test_table_with_two_label_columns_is_refused(tmp_path):
    # the second 'label' used to be read as a feature: the label leaked into the inputs
    path = _write_csv(tmp_path / "t.csv", ["a", "label", "label"], [[0, 0, 0], [1, 1, 1]])
    with pytest.raises(ExperimentError, match="2 columns are named 'label'"):
        tabular.read_table(path, label="label", n_features=None)


def test_single_class_table_is_refused(tmp_path):
    path = _write_csv(tmp_path / "t.csv", ["a", "label"], [[0, 1], [1, 1], [2, 1]])
    with pytest.raises(ExperimentError, match="every row has label 1; a classifier needs both classes"):
        tabular.read_table(path, label="label", n_features=1)


@pytest.mark.parametrize("content", ["a,label\n0,1\ncafé,0\n".encode("latin-1"), bytes(range(256)) * 4])
def test_non_utf8_and_binary_tables(tmp_path, content):
    (tmp_path / "t.csv").write_bytes(content)
    with pytest.raises(ExperimentError, match="t.csv: not UTF-8 text"):
        tabular.read_table(tmp_path / "t.csv", label="label", n_features=1)


def _uci_lines(x, y):
    lines = (",".join([*(f"{v:g}" for v in row), str(int(label))]) for row, label in zip(x, y, strict=True))
    return "\n".join(lines) + "\n"


def test_official_uci_spambase_format(tmp_path):
    rng = np.random.default_rng(0)
    x = np.round(rng.random((6, 57)) * 3, 2).astype(np.float32)
    y = np.array([1, 0, 1, 0, 0, 1])
    (tmp_path / "spambase.data").write_text(_uci_lines(x, y))
    gx, gy, names = tabular.load_spambase(tmp_path)
    np.testing.assert_array_equal(gx, x)
    assert gy.tolist() == y.tolist() and names[37] == "word_freq_parts" and len(names) == 57
    (tmp_path / "bad.data").write_text("1,2,3\n")
    with pytest.raises(ExperimentError, match="line 1 has 3 fields"):
        tabular.load_spambase(tmp_path / "bad.data")


def test_spambase_missing_says_where_to_get_it(tmp_path):
    with pytest.raises(DataMissing, match=r"(?s)spambase\.data.*archive\.ics\.uci\.edu.*--download"):
        tabular.load_spambase(tmp_path / "nowhere")


def _uci_zip(path, text):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("spambase.data", text)
        zf.writestr("spambase.names", "| the names file")
    return path


def test_spambase_download_refuses_another_table(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    archive = _uci_zip(tmp_path / "spambase.zip", _uci_lines(rng.random((4, 57)), [1, 0, 1, 0]))
    monkeypatch.setattr(tabular, "SPAMBASE_URL", archive.as_uri())
    with pytest.raises(ExperimentError, match="content checksum"):
        tabular.load_spambase(tmp_path / "dest", download_to=tmp_path / "dest")
    assert not any((tmp_path / "dest").iterdir())  # nothing half-written is left


@needs_shared
def test_spambase_download_accepts_the_published_table(tmp_path, monkeypatch):
    # the real table, written in UCI's format and served from a file:// URL (no network here)
    x, y, _ = tabular.load_spambase(SHARED / "spambase")
    archive = _uci_zip(tmp_path / "spambase.zip", _uci_lines(x, y))
    monkeypatch.setattr(tabular, "SPAMBASE_URL", archive.as_uri())
    gx, gy, _ = tabular.load_spambase(tmp_path / "dest", download_to=tmp_path / "dest")
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    assert (tmp_path / "dest" / "spambase.data").is_file()


def test_dirichlet_failure_names_the_settings():
    rng = np.random.default_rng(0)
    with pytest.raises(ExperimentError, match=r"(?s)federation.n_clients = 100.*data.dirichlet_alpha"):
        partition.dirichlet_partition(np.r_[np.zeros(150), np.ones(3)], 100, 0.01, rng)
    with pytest.raises(ExperimentError, match="federation.n_clients = 100"):
        partition.dirichlet_partition(np.zeros(50), 100, 0.5, rng)
