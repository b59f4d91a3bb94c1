"""The pinyin channel: sound units, their hashed n-grams, and models that read them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from models.release import PINYIN_INPUTS, ReleaseError, TextModel, read_manifest, sha256_file
from models.text.pinyin import sound_ids, split_pinyin
from models.text.tokenizer import CharTokenizer, VocabularyError
from tests.ml_fixtures import TINY_CONFIG, train_tiny, write_tiny_corpus
from training.classifier import TrainConfig


def _units(text: str) -> list[int]:
    return [u for u in sound_ids(text) if u]


def test_latin_words_split_into_pinyin_only_when_they_spell_it_wholly() -> None:
    assert split_pinyin("jiaweixin") == ["jia", "wei", "xin"]
    assert split_pinyin("shabi") == ["sha", "bi"]
    assert split_pinyin("caonima") == ["cao", "ni", "ma"]
    assert split_pinyin("xian") == ["xian"]  # the fewest syllables, not xi-an
    assert split_pinyin("hello") is None
    assert split_pinyin("nmsl") is None  # m and n alone are not syllables here
    assert split_pinyin("wechat") is None


def test_homophones_and_typed_pinyin_give_the_characters_sound_units() -> None:
    assert _units("沙比") == _units("傻逼") == _units("sha bi") == _units("shabi")
    assert _units("jia wei xin") == _units("加微信") == _units("佳薇信")
    assert _units("傻逼") != _units("沙发")


def test_sound_ids_align_with_characters() -> None:
    ids = sound_ids("sha bi hello")
    assert len(ids) == len("sha bi hello")
    assert ids[:3] == [0, 0, ids[2]] and ids[2] != 0  # the syllable sits on its last letter
    assert ids[3] == 0  # blanks carry no unit
    assert all(ids[7:])  # "hello" is no pinyin: one unit per letter


def test_pinyin_ngrams_match_across_spellings_at_the_unit_ends() -> None:
    texts = ["傻逼", "沙比", "sha bi", "沙发"]
    tokenizer = CharTokenizer.build(texts, min_freq=1, ngram_buckets=101, pinyin_buckets=503)
    batch = tokenizer.encode(texts)
    pairs = batch.pinyin_bigrams
    assert pairs[0, 2] == pairs[1, 2] == pairs[2, 6] != pairs[3, 2]
    assert batch.pinyin_trigrams[0, 2] == batch.pinyin_trigrams[2, 6]
    assert pairs[2, 1] == pairs[2, 2] == 0  # inside the syllable "sha"
    assert np.all(pairs[batch.mask == 0] == 0)
    assert batch.ids[0, 1] != batch.ids[1, 1]  # the characters themselves still differ


def test_a_vocabulary_keeps_its_pinyin_buckets_and_old_files_have_none(tmp_path: Path) -> None:
    path = tmp_path / "vocab.json"
    CharTokenizer.build(["你好"], min_freq=1, ngram_buckets=101, pinyin_buckets=53).save(path)
    assert CharTokenizer.load(path).pinyin_buckets == 53
    payload = json.loads(path.read_text(encoding="utf-8"))
    del payload["pinyin_buckets"]  # as written before the pinyin channel
    path.write_text(json.dumps(payload), encoding="utf-8")
    old = CharTokenizer.load(path)
    assert old.pinyin_buckets == 0
    assert not old.encode(["傻逼"]).pinyin_bigrams.any()
    payload["pinyin_buckets"] = "many"
    path.write_text(json.dumps(payload), encoding="utf-8")
    with pytest.raises(VocabularyError):
        CharTokenizer.load(path)
    with pytest.raises(VocabularyError):
        CharTokenizer(["x"], 101, "1", pinyin_buckets=1)


def test_a_training_configuration_refuses_bad_pinyin_buckets() -> None:
    with pytest.raises(ValueError, match="pinyin_buckets"):
        TrainConfig(pinyin_buckets=-5)


@pytest.fixture(scope="module")
def pinyin_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release trained by the real training command with the pinyin channel on."""
    root = tmp_path_factory.mktemp("pinyin")
    config = json.loads(TINY_CONFIG.read_text(encoding="utf-8"))
    config["train"]["pinyin_buckets"] = 211
    config_path = root / "tiny_pinyin.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    corpus = write_tiny_corpus(root / "corpus")
    return train_tiny(corpus, root / "out", "2026.01.03-1", "--config", str(config_path))


def test_a_model_with_the_pinyin_channel_exports_serves_and_records_it(
    pinyin_release: Path,
) -> None:
    manifest = read_manifest(pinyin_release)
    assert manifest.config["train"]["pinyin_buckets"] == 211
    session = ort.InferenceSession(str(pinyin_release / "model.onnx"))
    assert PINYIN_INPUTS <= {i.name for i in session.get_inputs()}
    model = TextModel.load(pinyin_release)
    assert model.tokenizer.pinyin_buckets == 211
    scores = model.predict_proba(["加微信领福利", "jia wei xin ling fu li", "明天开会"])
    assert scores.shape == (3, 8) and np.all((scores >= 0) & (scores <= 1))


def _with_vocabulary(release: Path, parent: Path, **changes: object) -> Path:
    """A copy of `release` whose vocab.json has `changes` (None: field removed), with the
    manifest's checksum updated: consistent, yet wrong."""
    import shutil

    folder = parent / release.name
    shutil.copytree(release, folder)
    vocab = folder / "vocab.json"
    payload = json.loads(vocab.read_text(encoding="utf-8"))
    for name, value in changes.items():
        if value is None:
            del payload[name]
        else:
            payload[name] = value
    vocab.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["sha256"]["vocab.json"] = sha256_file(vocab)
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return folder


def test_a_pinyin_model_with_a_vocabulary_lacking_the_channel_is_refused(
    pinyin_release: Path, tmp_path: Path
) -> None:
    folder = _with_vocabulary(pinyin_release, tmp_path, pinyin_buckets=None)
    with pytest.raises(ReleaseError, match="pinyin_buckets"):
        TextModel.load(folder)


def test_the_wide_syllable_weights_can_be_left_out() -> None:
    from training.neural import ModelConfig, build_model

    tokenizer = CharTokenizer.build(["傻逼"], min_freq=1, ngram_buckets=101, pinyin_buckets=53)
    both = build_model(ModelConfig(embed_dim=8, filters=4, hidden=4), tokenizer, 8)
    deep = build_model(
        ModelConfig(embed_dim=8, filters=4, hidden=4, pinyin_wide=False), tokenizer, 8
    )
    assert both.sounds is not None and both.wide_sounds is not None
    assert deep.sounds is not None and deep.wide_sounds is None
    plain = CharTokenizer.build(["傻逼"], min_freq=1, ngram_buckets=101)
    assert build_model(ModelConfig(embed_dim=8, filters=4, hidden=4), plain, 8).sounds is None


@pytest.mark.parametrize("field", ["pinyin_buckets", "ngram_buckets"])
def test_a_vocabulary_whose_buckets_outgrow_the_model_is_refused_not_crashed(
    pinyin_release: Path, tmp_path: Path, field: str
) -> None:
    # ids far beyond the model's embedding tables
    folder = _with_vocabulary(pinyin_release, tmp_path, **{field: 10**9})
    with pytest.raises(ReleaseError, match="cannot score with vocab.json"):
        TextModel.load(folder)


def test_pinyin_drop_reads_training_messages_without_their_syllables_only_in_training() -> None:
    import torch

    from training.neural import ModelConfig, build_model

    texts = ["加微信领福利", "jia wei xin"]
    tokenizer = CharTokenizer.build(texts, min_freq=1, ngram_buckets=101, pinyin_buckets=53)
    cfg = ModelConfig(embed_dim=8, filters=4, hidden=4, dropout=0.0, pinyin_drop=0.999999)
    model = build_model(cfg, tokenizer, 8)
    for table in (model.sounds, model.wide_sounds):
        torch.nn.init.normal_(table.weight)  # the wide tables start at zero
    batch = tokenizer.encode(texts)
    inputs = [torch.from_numpy(a) for a in (batch.ids, batch.bigrams, batch.trigrams, batch.mask)]
    sounds = [torch.from_numpy(batch.pinyin_bigrams), torch.from_numpy(batch.pinyin_trigrams)]
    silent = [torch.zeros_like(s) for s in sounds]
    model.train()
    assert torch.allclose(model.logits(*inputs, *sounds), model.logits(*inputs, *silent))
    model.eval()
    assert not torch.allclose(model.logits(*inputs, *sounds), model.logits(*inputs, *silent))
    with pytest.raises(ValueError, match="pinyin_drop"):
        ModelConfig(pinyin_drop=1.0)
