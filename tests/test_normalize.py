"""Unit tests for each normalisation step, the variant map and the offset map."""

from pathlib import Path

import pytest

from models.text.normalize import (
    VARIANTS_PATH,
    Normalized,
    load_variants,
    normalize,
)


def norm(text: str) -> str:
    return normalize(text).text


# --- step 1: per character ---------------------------------------------------------------------


def test_nfkc_full_width_to_half_width() -> None:
    assert norm("ＡＢＣ１２３") == "abc123"
    assert norm("Ｈｅｌｌｏ，ｗｏｒｌｄ！") == "hello,world!"


def test_case_folding() -> None:
    assert norm("HeLLo WORLD") == "hello world"
    assert norm("STRASSE Straße") == "strasse strasse"


def test_zero_width_control_and_private_use_removed() -> None:
    assert norm("加\u200b微\u200c信\u200d") == "加微信"
    assert norm("ab\x00c\x07d\ufeff") == "abcd"
    assert norm("你\ue001好\U000f0000") == "你好"


def test_combining_marks_and_invisible_fillers_removed() -> None:
    assert norm("加\u0336微\u0336信") == "加微信"
    assert norm("你\u3164好") == "你好"


def test_digit_variants() -> None:
    assert norm("①②③④⑤") == "12345"
    assert norm("⑴⑵⑶") == "123"
    assert norm("㈠㈡㈢") == "123"
    assert norm("❶➋⓪") == "120"
    assert norm("٣٤٥") == "345"
    assert norm("𝟏𝟐𝟑") == "123"
    assert norm("1\ufe0f\u20e3") == "1"  # keycap emoji


def test_styled_letters() -> None:
    assert norm("ⓗⓔⓛⓛⓞ") == "hello"
    assert norm("𝐡𝐞𝐥𝐥𝐨") == "hello"


def test_whitespace_kinds_become_one_space() -> None:
    assert norm("hello\u3000\t\nworld") == "hello world"


# --- step 2: separators ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["加 V 信", "加V信", "加·V·信", "加_V_信", "加|V|信", "加❤V★信", "加😀V🙏信", "加，V。信"],
)
def test_separators_between_chinese_removed(text: str) -> None:
    assert norm(text) == "加微信"


def test_latin_words_keep_one_space() -> None:
    assert norm("jia wei xin") == "jia wei xin"
    assert norm("hello    world") == "hello world"


def test_punctuation_between_latin_kept_symbols_dropped() -> None:
    assert norm("www.abc.com") == "www.abc.com"
    assert norm("hello, world") == "hello, world"
    assert norm("a❤b") == "ab"
    assert norm("a 😀 b") == "a b"


def test_edges() -> None:
    assert norm("  你好  ") == "你好"
    assert norm("你好！！") == "你好!!"
    assert norm("好的 🙏") == "好的🙏"
    assert norm("@李姐 收到") == "@李姐收到"


def test_plus_is_kept() -> None:
    assert norm("1 + 1 = 2") == "1 + 1 = 2"
    assert norm("+86 138") == "+86 138"


# --- step 3: traditional to simplified ---------------------------------------------------------


def test_traditional_to_simplified_phrase_aware() -> None:
    assert norm("頭髮") == "头发"
    assert norm("乾淨") == "干净"
    assert norm("乾隆") == "乾隆"
    assert norm("網上賭博") == "网上赌博"


# --- step 4: Chinese numerals ------------------------------------------------------------------


def test_numeral_runs_become_digits() -> None:
    assert norm("幺三八一二三四五六七八") == "13812345678"
    assert norm("壹叁玖贰叁肆伍陆柒捌玖") == "13923456789"
    assert norm("幺三八 1234 5678") == "1381234 5678"


def test_short_or_mixed_numeral_runs_stay() -> None:
    assert norm("一三八") == "一三八"
    assert norm("跟1615726686一样") == "跟1615726686一样"
    assert norm("一五一十") == "一五一十"


# --- step 5: repeats ---------------------------------------------------------------------------


def test_long_repeats_collapse_to_three() -> None:
    assert norm("哈哈哈哈哈哈哈") == "哈哈哈"
    assert norm("好!!!!!!") == "好!!!"
    assert norm("哈哈哈") == "哈哈哈"


def test_digit_repeats_kept() -> None:
    assert norm("13888888888") == "13888888888"


def test_collapsed_char_spans_the_whole_run() -> None:
    n = normalize("哈哈哈哈哈好")
    assert n.text == "哈哈哈好"
    assert n.original_span(0, 3) == (0, 5)


# --- step 6: variants --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("薇❤信", "微信"),
        ("威芯", "微信"),
        ("v信", "微信"),
        ("加vx", "加微信"),
        ("wx abc123", "微信abc123"),
        ("加v", "加微信"),
        ("加薇", "加微信"),
        ("➕V", "+微信"),
        ("扣扣123456", "qq123456"),
        ("加扣扣", "加qq"),
        ("q群 123456", "qq群123456"),
        ("企鹅12345678", "qq12345678"),
    ],
)
def test_variants_applied(text: str, expected: str) -> None:
    assert norm(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "张薇明天来",
        "他在单位很有威信",
        "微博",
        "v我50",
        "vip会员",
        "i love you",
        "扣1",
        "这人扣扣搜搜的",
        "企鹅馆",
        "q1财报",
    ],
)
def test_variants_leave_innocent_text(text: str) -> None:
    assert norm(text) == normalize(text).text
    assert "微信" not in norm(text) and "qq" not in norm(text)


def test_variant_file_parses_and_covers_the_vocabulary() -> None:
    rules = load_variants()
    by_variant = {r.variant: r for r in rules}
    for variant in ("薇信", "威信", "vx", "wx", "v", "扣扣", "企鹅", "q"):
        assert variant in by_variant
    assert by_variant["威信"].context == "cue"
    assert by_variant["薇信"].canonical == "微信"
    assert by_variant["扣扣"].canonical == "qq"
    assert VARIANTS_PATH.read_text(encoding="utf-8").startswith("#")


def test_variant_file_rejects_unknown_context(tmp_path: Path) -> None:
    path = tmp_path / "variants.tsv"
    path.write_text("薇信\t微信\tsometimes\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown context"):
        load_variants(path)


# --- offsets -----------------------------------------------------------------------------------


def test_offsets_map_back_to_the_original() -> None:
    original = "加 V 信：ＡＢＣ123"
    n = normalize(original)
    assert n.text == "加微信abc123"
    start = n.text.index("abc123")
    s, e = n.original_span(start, start + 6)
    assert original[s:e] == "ＡＢＣ123"
    s, e = n.original_span(1, 2)  # 微 comes from the V of "V 信", character for character
    assert original[s:e] == "V"
    s, e = n.original_span(1, 3)
    assert original[s:e] == "V 信"


def test_offsets_of_removed_and_expanded_characters() -> None:
    n = normalize("a\u200bb㍱")  # ㍱ expands to "hpa"
    assert n.text == "abhpa"
    assert n.starts == (0, 2, 3, 3, 3)
    assert n.ends == (1, 3, 4, 4, 4)


def test_original_span_empty_and_out_of_range() -> None:
    n = normalize("你好")
    assert n.original_span(1, 1) == (1, 1)
    assert n.original_span(2, 2) == (2, 2)
    assert n.original_span(0, 99) == (0, 2)
    assert Normalized("", (), ()).original_span(0, 0) == (0, 0)


def test_empty_input() -> None:
    assert normalize("") == Normalized("", (), ())
