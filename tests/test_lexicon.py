"""Lexicon matching on both views, per-group overrides, the curated files, the pinyin view."""

from pathlib import Path

import pytest

from models.labels import TEXT_LABELS
from models.text.lexicon import LEXICON_DIR, GroupOverrides, Lexicon, joins_words, read_terms
from models.text.normalize import normalize
from models.text.pinyin import pinyin_view, syllable, to_pinyin
from models.text.pipeline import analyze, default_lexicon


@pytest.fixture(scope="module")
def small() -> Lexicon:
    return Lexicon(
        {
            "insult": ["傻逼", "sb", "caonima", "latin:shabi", "傻b"],
            "porn": ["约炮", "latin:yuepao"],
            "gambling": ["百家乐", "菠菜平台"],
        }
    )


def hits(lexicon: Lexicon, text: str, overrides: GroupOverrides | None = None) -> list[tuple]:
    n = normalize(text)
    return [
        (h.label, h.term, text[h.start : h.end], h.view)
        for h in lexicon.match(n, pinyin_view(n), overrides)
    ]


# --- pinyin view -------------------------------------------------------------------------------


def test_pinyin_view_text_and_map_back() -> None:
    n = normalize("草泥马 ok")
    view = pinyin_view(n)
    assert view.text == "caonimaok"
    assert view.normalized_span(3, 5) == (1, 2)  # "ni" is 泥
    assert view.normalized_span(0, 7) == (0, 3)


def test_pinyin_view_boundaries() -> None:
    view = pinyin_view(normalize("lisbon 傻逼"))
    assert view.text == "lisbonshabi"
    assert not view.is_aligned(2, 4)  # "sb" inside "lisbon"
    assert view.is_aligned(0, 6)
    assert view.is_aligned(6, 11)
    assert not view.is_aligned(7, 11)  # inside the syllable "sha"
    assert not view.is_typed(6, 11)
    assert view.is_typed(0, 6)


def test_syllable_cache_and_to_pinyin() -> None:
    assert syllable("威") == syllable("薇") == "wei"
    assert syllable("a") == ""
    assert to_pinyin("加威信ab1") == "jiaweixinab1"


def test_pinyin_view_of_text_without_letters() -> None:
    assert pinyin_view(normalize("😀!!")).text == ""


# --- matching ----------------------------------------------------------------------------------


def test_text_view_match_with_original_span(small: Lexicon) -> None:
    assert hits(small, "你就是个傻❤逼") == [("insult", "傻逼", "傻❤逼", "text")]


def test_traditional_and_full_width_terms_match(small: Lexicon) -> None:
    assert hits(small, "百家樂") == [("gambling", "百家乐", "百家樂", "text")]
    assert hits(small, "傻Ｂ") == [("insult", "傻b", "傻Ｂ", "text")]


def test_text_terms_with_latin_edges_need_word_boundaries(small: Lexicon) -> None:
    assert hits(small, "傻boy") == []


def test_pinyin_view_matches_homophones_and_spellings(small: Lexicon) -> None:
    assert hits(small, "操你妈") == [("insult", "caonima", "操你妈", "pinyin")]
    assert hits(small, "cao ni ma") == [("insult", "caonima", "cao ni ma", "pinyin")]
    assert hits(small, "s b") == [("insult", "sb", "s b", "pinyin")]
    assert hits(small, "lisbon") == []


def test_latin_only_terms_skip_chinese_readings(small: Lexicon) -> None:
    assert hits(small, "这是啥比赛") == []
    assert hits(small, "周末约跑吗") == []
    assert hits(small, "sha bi") == [("insult", "shabi", "sha bi", "pinyin")]
    assert hits(small, "yue pao") == [("porn", "yuepao", "yue pao", "pinyin")]


def test_latin_word_joined_by_underscore_is_one_word(small: Lexicon) -> None:
    assert hits(small, "sb_zhuce") == []
    assert hits(small, "s.b") == [("insult", "sb", "s.b", "pinyin")]


def test_pinyin_hit_dropped_where_text_hit_of_same_label(small: Lexicon) -> None:
    # 傻逼 also reads "shabi"; it is reported once, on the text view.
    assert [h[3] for h in hits(small, "傻逼")] == ["text"]


def test_empty_text(small: Lexicon) -> None:
    assert small.match(normalize("")) == []


def test_match_builds_the_pinyin_view_when_not_given(small: Lexicon) -> None:
    assert [h.term for h in small.match(normalize("nmsl sb"))] == ["sb"]


def test_hit_across_two_words_dropped_when_the_original_is_given() -> None:
    lexicon = Lexicon({"gambling": ["下注"], "porn": ["约炮"]})
    text = "都下载注册一下 注册就送"  # 一下 注册 reads 一下注册
    n = normalize(text)
    assert [h.term for h in lexicon.match(n)] == ["下注"]
    assert lexicon.match(n, original=text) == []
    assert [h.term for h in analyze(text, lexicon).hits] == []


@pytest.mark.parametrize(
    ("text", "joined"),
    [("一下 注册", True), ("搞笑，气急", True), ("约 炮", False), ("快来约❤炮吧", False)],
)
def test_joins_words(text: str, joined: bool) -> None:
    n = normalize(text)
    term = {"一下 注册": "下注", "搞笑，气急": "笑气"}.get(text, "约炮")
    start = n.text.index(term)
    assert joins_words(n, text, start, start + len(term)) is joined


# --- per-group overrides -----------------------------------------------------------------------


def test_allow_suppresses_term(small: Lexicon) -> None:
    allow = GroupOverrides(allow=frozenset({"约炮"}))
    assert hits(small, "约炮", allow) == []
    assert hits(small, "约炮") != []


def test_deny_adds_terms_on_both_views(small: Lexicon) -> None:
    deny = GroupOverrides(deny={"ad": frozenset({"代刷", "daishua"})})
    assert hits(small, "专业代刷", deny) == [("ad", "代刷", "代刷", "text")]
    assert hits(small, "dai shua", deny) == [("ad", "daishua", "dai shua", "pinyin")]
    assert hits(small, "专业代刷") == []


def test_allow_wins_over_deny(small: Lexicon) -> None:
    both = GroupOverrides(allow=frozenset({"代刷"}), deny={"ad": frozenset({"代刷"})})
    assert hits(small, "代刷", both) == []


def test_overrides_compiled_once_per_value(small: Lexicon) -> None:
    first = GroupOverrides(deny={"ad": {"代刷"}})  # type: ignore[arg-type]
    second = GroupOverrides(deny={"ad": frozenset({"代刷"})})
    assert first == second and hash(first) == hash(second)
    base = small._base
    small.match(normalize("代刷"), overrides=first)
    compiled = small._overrides[first]
    small.match(normalize("代刷"), overrides=second)
    assert small._overrides[second] is compiled
    assert small._base is base
    other = GroupOverrides(deny={"ad": frozenset({"代练"})})
    assert other != first
    small.match(normalize("代练"), overrides=other)
    assert small._overrides[other] is not compiled


def test_empty_overrides_are_the_base(small: Lexicon) -> None:
    assert hits(small, "约炮", GroupOverrides()) == hits(small, "约炮")


def test_analyze_applies_overrides(small: Lexicon) -> None:
    deny = GroupOverrides(deny={"ad": frozenset({"代刷"})})
    assert [(h.label, h.term) for h in analyze("专业代刷", small, deny).hits] == [("ad", "代刷")]
    assert analyze("约炮", small, GroupOverrides(allow=frozenset({"约炮"}))).hits == []


# --- loading and the curated files --------------------------------------------------------------


def test_load_reads_one_file_per_label(tmp_path: Path) -> None:
    (tmp_path / "porn.txt").write_text("# header\n约炮\n\n裸聊\n", encoding="utf-8")
    lexicon = Lexicon.load(tmp_path)
    assert lexicon.terms == {"porn": ("约炮", "裸聊")}
    assert lexicon.size == 2


def test_load_of_an_empty_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Lexicon.load(tmp_path)


def test_latin_prefix_only_for_latin_terms() -> None:
    with pytest.raises(ValueError, match="only Latin"):
        Lexicon({"insult": ["latin:傻逼"]})


def test_every_label_has_a_curated_file() -> None:
    files = {p.stem for p in LEXICON_DIR.glob("*.txt")}
    assert files == set(TEXT_LABELS)


@pytest.mark.parametrize("label", TEXT_LABELS)
def test_curated_file_is_short_documented_and_clean(label: str) -> None:
    path = LEXICON_DIR / f"{label}.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith(f"# {label}:")
    assert any("Built" in line or "Written" in line for line in lines if line.startswith("#"))
    terms = read_terms(path)
    assert 20 <= len(terms) <= 300
    assert len(terms) == len(set(terms)), "duplicate terms"
    # The noisy generic words of the public lists must not come back.
    for word in ("网络", "招聘", "qq", "淘宝", "下台", "兼职", "客服", "微信", "发票", "菠菜"):
        assert word not in {t.lower() for t in terms}


def test_default_lexicon_loaded_once() -> None:
    assert default_lexicon() is default_lexicon()
    assert default_lexicon().size > 400
