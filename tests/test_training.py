"""The real training path (data, fit, thresholds, export, release, evaluate) on tiny data."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models.labels import TEXT_LABELS
from models.paths import DATA_DIR
from models.release import TextModel, read_manifest
from training.classifier import (
    NeuralTextClassifier,
    TrainConfig,
    as_tensors,
    drop_chars,
    learning_rate_factor,
    prepare,
    repeats_for,
)
from training.data import Example, build_splits, datasets_dir, dedup_key
from training.export import export_checked
from training.metrics import best_f1, macro_best_f1, macro_f1, per_label, threshold_for_precision
from training.neural import CharCNNEnsemble, ModelConfig
from training.threshold_rule import choose_thresholds, clean_caps, label_value, threshold_for_fpr
from training.train import load_config
from training.train import main as train_main

TINY_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny.json"


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 lines of each of our corpus files: real data, tiny."""
    folder = tmp_path_factory.mktemp("corpus")
    for path in sorted((DATA_DIR / "corpus").glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()[:40]
        (folder / path.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_threshold_reaches_target_precision_with_most_recall() -> None:
    truth = np.array([1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.65, 0.6, 0.3, 0.2, 0.1])
    assert threshold_for_precision(truth, scores, 1.0) == pytest.approx(0.7)
    assert threshold_for_precision(truth, scores, 0.8) == pytest.approx(0.6)


def test_threshold_falls_back_to_best_f1_when_target_unreachable() -> None:
    truth = np.array([0, 1, 0, 1], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert threshold_for_precision(truth, scores, 0.99) == pytest.approx(0.6)


def test_clean_chat_cap_raises_a_threshold_only_where_chat_would_pass() -> None:
    truth = np.zeros((8, len(TEXT_LABELS)), dtype=bool)
    truth[:4] = True
    scores = np.tile(np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.2, 0.1, 0.1])[:, None], len(TEXT_LABELS))
    clean = np.zeros(8, dtype=bool)
    clean[4:] = True
    annotated = np.repeat(~clean[:, None], len(TEXT_LABELS), axis=1)  # precision rows
    # Clean chat scores 0.75 on the first label: with no flags allowed it must stay below.
    scores[4, 0] = 0.75
    capped = choose_thresholds(truth, scores, 0.95, annotated, clean, max_clean_fpr=0.01)
    assert capped[TEXT_LABELS[0]] == pytest.approx(0.7501)
    assert capped[TEXT_LABELS[1]] == pytest.approx(0.6)  # precision alone decides
    loose = choose_thresholds(truth, scores, 0.95, annotated, clean, max_clean_fpr=0.25)
    assert loose[TEXT_LABELS[0]] == pytest.approx(0.6)  # one of four clean rows may pass


def test_threshold_for_fpr_counts_ties_as_passing() -> None:
    clean = np.array([0.5, 0.5, 0.4, 0.1])
    assert threshold_for_fpr(clean, 0.0) == pytest.approx(0.5001)
    assert threshold_for_fpr(clean, 0.5) == pytest.approx(0.4001)
    assert threshold_for_fpr(clean, 1.0) == 0.0


def test_splits_never_share_a_text(tiny_corpus: Path) -> None:
    from training.data import load_corpus

    corpus = load_corpus(tiny_corpus)
    corpus.append(Example(corpus[0].text.upper() + " ", corpus[0].labels, "dup"))
    splits = build_splits(corpus, public=False)
    keys = [
        {dedup_key(e.text) for e in part} for part in (splits.train, splits.dev, splits.heldout)
    ]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert sum(map(len, keys)) == len({dedup_key(e.text) for e in corpus})


def test_reports_override_corpus_labels(tiny_corpus: Path) -> None:
    from training.data import load_corpus

    corpus = load_corpus(tiny_corpus)
    splits = build_splits(corpus, public=False)
    victim = splits.train[0]
    report = Example(victim.text, ("fraud",), "report/1")
    fixed = build_splits(corpus, reports=[report], public=False)
    labels = {dedup_key(e.text): e.labels for e in fixed.train}
    assert labels[dedup_key(victim.text)] == ("fraud",)


def test_tiny_training_writes_a_servable_release(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "releases"
    fit = NeuralTextClassifier.fit

    def fit_while_the_version_is_taken(
        self: NeuralTextClassifier, *args: Any, **kwargs: Any
    ) -> NeuralTextClassifier:
        (out / "2026.01.02-1").mkdir(parents=True)  # as a tuned copy would, mid-run
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(NeuralTextClassifier, "fit", fit_while_the_version_is_taken)
    code = train_main(
        [
            "--config",
            str(TINY_CONFIG),
            "--corpus",
            str(tiny_corpus),
            "--corpus-only",
            "--out",
            str(out),
            "--version",
            "2026.01.02-1",
            "--quiet",
        ]
    )
    assert code == 0
    folder = out / "2026.01.02-2"  # -1 was taken while it trained: the next free version
    manifest = read_manifest(folder)
    assert manifest.version == "2026.01.02-2"
    assert manifest.labels == list(TEXT_LABELS)
    assert set(manifest.thresholds) == set(TEXT_LABELS)
    assert manifest.data["files"] and manifest.data["sizes"]["train"] > 0
    assert "evaluation" in manifest.metrics
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "heldout (ours)" in card and "Split sizes when\ntrained" in card
    model = TextModel.load(folder)
    scores = model.predict_proba(["加我微信领福利", "明天开会"])
    assert scores.shape == (2, len(TEXT_LABELS))
    assert np.all((scores >= 0) & (scores <= 1))


def test_the_manifest_hashes_the_corpus_as_it_was_read(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corpus file written while a (long) run trains is not in that run's provenance."""
    import hashlib
    import shutil

    import training.train as train_module

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    first = sorted(corpus.glob("*.jsonl"))[0]
    read_hash = hashlib.sha256(first.read_bytes()).hexdigest()
    real_repeats_for = train_module.repeats_for

    def edit_corpus_then_repeat(*args, **kwargs):  # runs after the data is loaded
        (corpus / "added_later.jsonl").write_text(
            '{"text": "后来加的一行", "labels": [], "source": "hand/x/y"}\n', encoding="utf-8"
        )
        with first.open("a", encoding="utf-8") as file:
            file.write('{"text": "也是后来加的", "labels": [], "source": "hand/x/y"}\n')
        return real_repeats_for(*args, **kwargs)

    monkeypatch.setattr(train_module, "repeats_for", edit_corpus_then_repeat)
    out = tmp_path / "releases"
    argv = ["--config", str(TINY_CONFIG), "--corpus", str(corpus), "--corpus-only"]
    assert train_main([*argv, "--out", str(out), "--version", "2026.01.02-1", "--quiet"]) == 0
    files = read_manifest(out / "2026.01.02-1").data["files"]
    assert "data/corpus/added_later.jsonl" not in files
    assert files[f"data/corpus/{first.name}"] == read_hash


def test_init_from_a_local_pretrained_checkpoint(tiny_corpus: Path, tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    checkpoint = tmp_path / "tiny-bert"
    chars = sorted(
        {
            c
            for p in tiny_corpus.glob("*.jsonl")
            for c in p.read_text("utf-8")
            if c.isprintable() and not c.isspace()
        }
    )[:300]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertModel(config).save_pretrained(checkpoint)
    (checkpoint / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")

    out = tmp_path / "releases"
    code = train_main(
        [
            "--config",
            str(TINY_CONFIG),
            "--corpus",
            str(tiny_corpus),
            "--corpus-only",
            "--out",
            str(out),
            "--version",
            "2026.01.03-1",
            "--init-from",
            str(checkpoint),
            "--no-evaluate",
            "--no-quantize",
            "--quiet",
        ]
    )
    assert code == 0
    manifest = json.loads((out / "2026.01.03-1" / "manifest.json").read_text("utf-8"))
    assert manifest["architecture"] == "transformer"
    assert manifest["config"]["train"]["init_from"] == str(checkpoint)
    assert TextModel.load(out / "2026.01.03-1").predict_proba(["你好"]).shape == (1, 8)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "加我微信", "labels": ["adx"]}', "unknown labels"),
        ("{broken", "not JSON"),
        ('["not", "an", "object"]', "needs an object"),
    ],
)
def test_training_refuses_a_bad_corpus_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    (tmp_path / "ad.jsonl").write_text(line + "\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--config", str(TINY_CONFIG), "--corpus", str(tmp_path), "--corpus-only"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'ad.jsonl'}:1" in error and message in error


def test_training_refuses_missing_corpus_and_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        train_main(["--config", str(TINY_CONFIG), "--corpus", str(tmp_path), "--corpus-only"])
    assert "no corpus files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--config", str(tmp_path / "absent.json"), "--corpus-only"])
    assert "cannot use the configuration" in capsys.readouterr().err


def test_a_configuration_with_a_bad_repeat_is_refused(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.json"
    config.write_text('{"train": {"clean_chat_repeat": -1}}', encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--config", str(config), "--corpus", str(tiny_corpus)])
    assert exit_info.value.code == 2
    assert "clean_chat_repeat must be a whole number of 1 or more" in capsys.readouterr().err


def test_training_refuses_a_version_that_exists_before_training(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "2026.01.02-1").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        train_main(
            ["--config", str(TINY_CONFIG), "--corpus", str(tiny_corpus), "--out", str(tmp_path),
             "--version", "2026.01.02-1"]
        )  # fmt: skip
    assert exit_info.value.code == 2
    assert "--version 2026.01.02-1 exists already" in capsys.readouterr().err


def test_training_refuses_to_fine_tune_an_ensemble(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pair.json"
    config.write_text(
        json.dumps({"extends": str(TINY_CONFIG), "model": {"members": 2}}), encoding="utf-8"
    )
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--config", str(config), "--corpus", str(tiny_corpus), "--init-from", "ckpt"])
    assert exit_info.value.code == 2
    assert "--init-from fine-tunes one transformer;" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--version", "exp-a"], "--version must look like"),
        (["--lccc-limit", "-5"], "--lccc-limit must be 0 or more"),
        (["--epochs", "0"], "--epochs must be 1 or more"),
    ],
)
def test_training_refuses_a_bad_argument_before_training(
    tiny_corpus: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--config", str(TINY_CONFIG), "--corpus", str(tiny_corpus), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_drop_chars_deletes_about_the_rate_and_keeps_short_texts() -> None:
    random.seed(0)
    text = "今天下午三点在二楼会议室开会请大家准时参加不要迟到" * 20
    kept = [len(drop_chars(text, 0.1)) / len(text) for _ in range(50)]
    assert 0.85 < sum(kept) / len(kept) < 0.95
    assert drop_chars("好的", 0.9) == "好的"
    assert drop_chars("abcd", 1.0) == "abcd"  # never empties a text


def test_rows_repeat_by_source() -> None:
    cfg = TrainConfig(corpus_repeat=4, group_chat_repeat=3, clean_chat_repeat=2)
    sources = ["hand/ad/yinliu", "report/17", "mc_qq/train", "mc_qq/ads.txt", "cold/train", "lccc"]
    assert repeats_for(sources, cfg) == [4, 4, 3, 3, 1, 2]
    assert repeats_for(sources, TrainConfig(corpus_repeat=1)) == [1] * 6
    reports_apart = TrainConfig(corpus_repeat=4, report_repeat=8)
    assert repeats_for(sources[:2], reports_apart) == [4, 8]
    with pytest.raises(ValueError, match="report_repeat"):
        TrainConfig(report_repeat=0)


@pytest.mark.skipif(not datasets_dir().is_dir(), reason="../shared/datasets is not beside the repo")
def test_dev_holds_clean_chat_that_training_and_the_fpr_set_never_see() -> None:
    splits = build_splits()
    dev_chat = {dedup_key(e.text) for e in splits.dev if e.source.startswith("lccc")}
    assert len(dev_chat) > 10_000  # 15% of LCCC: caps of 0.1-0.3% need thousands of lines
    assert not dev_chat & {dedup_key(e.text) for e in splits.train}
    assert not dev_chat & {dedup_key(e.text) for e in splits.clean_unseen}


def test_one_label_can_get_its_own_clean_chat_cap() -> None:
    truth = np.zeros((8, len(TEXT_LABELS)), dtype=bool)
    truth[:4] = True
    scores = np.tile(np.array([0.9, 0.8, 0.7, 0.6, 0.75, 0.2, 0.1, 0.1])[:, None], len(TEXT_LABELS))
    clean = np.r_[np.zeros(4, dtype=bool), np.ones(4, dtype=bool)]
    annotated = np.repeat(~clean[:, None], len(TEXT_LABELS), axis=1)
    caps = clean_caps(0.01, [label_value("insult=0.25")])
    chosen = choose_thresholds(truth, scores, 0.95, annotated, clean, caps)
    assert chosen["insult"] == pytest.approx(0.6)  # one of four clean rows may pass
    assert chosen["ad"] == pytest.approx(0.7501)  # none may
    with pytest.raises(argparse.ArgumentTypeError):
        label_value("insults=0.1")


CONFIGS = TINY_CONFIG.parent


def test_a_variant_config_changes_only_what_it_names() -> None:
    base_model, base_train = load_config(CONFIGS / "cnn_large.json")
    model, train = load_config(CONFIGS / "cnn_large_chat2.json")
    assert model == base_model
    assert (train.clean_chat_repeat, train.epochs) == (2, 6)
    assert train.group_chat_repeat == base_train.group_chat_repeat == 4
    assert train.learning_rate == base_train.learning_rate


@pytest.mark.parametrize(
    "config, message",
    [
        ({"extends": "self.json"}, "extends itself"),
        ({"train": {"seed": "13"}}, "seed: Input should be a valid integer"),
        ({"train": {"epochs": 2.5}}, "epochs: Input should be a valid integer"),
        ({"train": {"batch_sise": 64}}, "batch_sise: Unexpected keyword argument"),
        ({"train": {"batch_size": 0}}, "batch_size must be a whole number of 1 or more"),
        ({"train": {"char_drop": 1.5}}, "char_drop must be at least 0 and below 1"),
        ({"model": {"architecture": "rnn"}}, "architecture must be one of"),
        ({"model": {"kernel_sizes": []}}, "kernel_sizes must be widths of 1 or more"),
    ],
)
def test_a_bad_config_is_refused_naming_the_setting(
    tmp_path: Path, config: dict[str, object], message: str
) -> None:
    path = tmp_path / "self.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_config(path)


def _ads_and_chat() -> tuple[list[str], np.ndarray]:
    """Thirty ads and thirty meeting reminders: learnt in a few steps."""
    texts = [f"加我微信{i}号领红包" for i in range(30)]
    texts += [f"今天{i}点开会别迟到" for i in range(30)]
    targets = np.zeros((len(texts), len(TEXT_LABELS)))
    targets[:30, TEXT_LABELS.index("ad")] = 1
    return texts, targets


def _fit_small(
    ema_decay: float, with_dev: bool, epoch_metric: str = "f1_at_half", members: int = 1
) -> NeuralTextClassifier:
    texts, targets = _ads_and_chat()
    model_config = ModelConfig(
        architecture="cnn", embed_dim=16, kernel_sizes=[1, 2], filters=8, hidden=8, max_len=32,
        members=members,
    )  # fmt: skip
    train_config = TrainConfig(
        epochs=3, batch_size=8, learning_rate=0.02, warmup_steps=2, ngram_buckets=97,
        min_char_freq=1, progress=False, ema_decay=ema_decay, seed=3, epoch_metric=epoch_metric,
    )  # fmt: skip
    dev = (texts, targets) if with_dev else ((), None)
    return NeuralTextClassifier(model_config, train_config).fit(texts, targets, *dev)


def test_weight_averaging_keeps_the_averaged_weights_and_leaves_training_alone() -> None:
    live = _fit_small(0.0, with_dev=False)
    averaged = _fit_small(0.9, with_dev=False)
    # the same steps were taken: averaging only reads the weights
    assert [r["loss"] for r in averaged.history] == [r["loss"] for r in live.history]
    live_state, kept_state = live.model.state_dict(), averaged.model.state_dict()
    assert live_state.keys() == kept_state.keys()
    assert any(not torch.equal(live_state[k], kept_state[k]) for k in live_state)
    # with a dev split, what is kept is what was scored best
    scored = _fit_small(0.9, with_dev=True)
    best = max(r["dev_macro_f1"] for r in scored.history)
    texts, targets = _ads_and_chat()
    rescored = macro_f1(
        per_label(targets, scored.predict_proba(texts), [0.5] * len(TEXT_LABELS), TEXT_LABELS)
    )
    assert best > 0 and rescored == pytest.approx(best)
    unaveraged = _fit_small(0.0, with_dev=True).model.state_dict()
    kept_state = scored.model.state_dict()
    assert any(not torch.equal(unaveraged[k], kept_state[k]) for k in kept_state)
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_an_ensemble_scores_with_the_mean_of_members_trained_alike(tmp_path: Path) -> None:
    ensemble = _fit_small(0.0, with_dev=False, members=2)
    assert isinstance(ensemble.model, CharCNNEnsemble)
    first, second = ensemble.model.members
    assert not torch.equal(first.head[0].weight, second.head[0].weight)  # own random starts
    texts, targets = _ads_and_chat()
    scores = ensemble.predict_proba(texts)
    enc = ensemble.tokenizer.encode(prepare(texts), 32)
    with torch.no_grad():
        alone = [torch.sigmoid(m.logits(*as_tensors(enc))).numpy() for m in (first, second)]
    assert np.allclose(scores, (alone[0] + alone[1]) / 2, atol=1e-6)
    for member_scores in alone:  # each member learnt the task by itself
        ad = TEXT_LABELS.index("ad")
        assert member_scores[:30, ad].min() > member_scores[30:, ad].max()
    # one graph with the usual inputs and output: the release format does not change
    onnx_file = tmp_path / "m.onnx"
    gap = export_checked(ensemble.model, ensemble.tokenizer, prepare(texts), onnx_file, 32)
    assert gap < 1e-4
    with pytest.raises(ValueError, match="members"):
        ModelConfig(architecture="transformer", members=2)
    with pytest.raises(ValueError, match="members"):
        ModelConfig(members=0)


def test_best_f1_takes_the_best_cut_and_keeps_ties_together() -> None:
    truth = np.array([1, 1, 0, 0])
    # cuts at 0.9, 0.5, 0.2, 0.1 give F1 0.667, 0.5, 0.8, 0.667
    assert best_f1(truth, np.array([0.9, 0.2, 0.5, 0.1])) == pytest.approx(0.8)
    # a tie cannot be split: both rows pass or neither does
    assert best_f1(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(2 / 3)
    assert best_f1(np.array([0, 0]), np.array([0.5, 0.1])) == 0.0
    # only annotated rows count, and labels without positives are left out of the mean
    two = np.array([[1, 0], [0, 0], [1, 0]])
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.3]])
    assert macro_best_f1(two, scores) == pytest.approx(0.8)  # cut at 0.1: P 2/3, R 1
    assert macro_best_f1(two, scores, np.array([[1, 1], [0, 1], [1, 1]])) == pytest.approx(1.0)


def test_the_kept_epoch_can_be_chosen_by_best_f1(monkeypatch: pytest.MonkeyPatch) -> None:
    import training.classifier

    def scripted(values: list[float]):  # the dev scores of epochs 1, 2 and 3, in turn
        returned = iter(values)
        return lambda *args: next(returned)

    final = _fit_small(0.0, with_dev=False).model.state_dict()  # no dev: the last epoch's
    kept = {}
    for metric in ("best_f1", "f1_at_half"):
        monkeypatch.setattr(training.classifier, "macro_f1", scripted([0.9, 0.5, 0.4]))
        monkeypatch.setattr(training.classifier, "macro_best_f1", scripted([0.1, 0.2, 0.8]))
        chosen = _fit_small(0.0, with_dev=True, epoch_metric=metric)
        assert [r["dev_best_f1"] for r in chosen.history] == [0.1, 0.2, 0.8]
        kept[metric] = chosen.model.state_dict()
    assert all(torch.equal(final[k], kept["best_f1"][k]) for k in final)  # epoch 3
    assert any(not torch.equal(final[k], kept["f1_at_half"][k]) for k in final)  # epoch 1
    with pytest.raises(ValueError, match="epoch_metric"):
        TrainConfig(epoch_metric="loss")


def test_the_learning_rate_decays_by_time_only_when_the_budget_runs_out_first() -> None:
    # Warm-up, where time does not count, then the planned linear decay while steps lead time.
    assert learning_rate_factor(0, 1000, 10, 0.0) == pytest.approx(0.1)
    assert learning_rate_factor(0, 1000, 10, 0.01) == pytest.approx(0.1)
    assert learning_rate_factor(500, 1000, 10, 0.3) == pytest.approx(0.5)
    # A slow machine: half the budget gone at a fifth of the steps decays as by half.
    assert learning_rate_factor(200, 1000, 10, 0.5) == pytest.approx(0.5)
    # At or past the budget the rate is at its floor, whatever step it is.
    assert learning_rate_factor(300, 1000, 10, 1.0) == pytest.approx(0.05)
    assert learning_rate_factor(300, 1000, 10, 1.7) == pytest.approx(0.05)
