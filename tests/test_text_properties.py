"""Property-based tests: offsets, idempotence and robustness on any input."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.text.contacts import extract_contacts
from models.text.normalize import normalize
from models.text.pinyin import pinyin_view
from models.text.pipeline import CONTACT_MARKERS, analyze, model_text

# Any code point, lone surrogates and private use included.
ANY_CHAR = st.characters(exclude_categories=())
# The characters the rules care about, so generated text often hits them.
SPICY = st.sampled_from(
    list(
        "加微信薇威扣企鹅qQvVxXwW号群张一二三四五六七八九零幺两壹贰乾淨頭髮哈abc0123456789"
        " \u3000\t\n:：.。，,!！@+➕-_|·❤★😀🙏①②③⑴㈠\u200b\u200d\ufe0f\u20e3\ue001\x00"
    )
)
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=60),
    st.text(SPICY, max_size=40),
    st.lists(st.one_of(st.text(SPICY, max_size=5), st.text(ANY_CHAR, max_size=3))).map("".join),
)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(TEXT)
def test_offsets_map_inside_the_original(text: str) -> None:
    n = normalize(text)
    assert len(n.starts) == len(n.ends) == len(n.text)
    for start, end in zip(n.starts, n.ends, strict=True):
        assert 0 <= start < end <= len(text)
    assert list(n.starts) == sorted(n.starts)
    assert list(n.ends) == sorted(n.ends)
    if n.text:
        s, e = n.original_span(0, len(n.text))
        assert 0 <= s <= e <= len(text)


@SETTINGS
@given(TEXT)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text).text
    assert normalize(once).text == once


@SETTINGS
@given(TEXT)
def test_normalized_text_has_no_control_or_private_use(text: str) -> None:
    out = normalize(text).text
    assert not any(0xE000 <= ord(c) <= 0xF8FF or ord(c) < 0x20 or c == "\u200b" for c in out)
    assert "  " not in out and out == out.strip(" ")


@SETTINGS
@given(TEXT)
def test_contacts_and_hits_index_the_original(text: str) -> None:
    analysis = analyze(text)
    for item in [*analysis.contacts, *analysis.hits]:
        assert 0 <= item.start < item.end <= len(text)
    for contact in extract_contacts(text):
        assert contact.value and contact.type in CONTACT_MARKERS


@SETTINGS
@given(TEXT)
def test_model_text_has_one_marker_per_contact(text: str) -> None:
    analysis = analyze(text)
    out = model_text(analysis)
    markers = [c for c in out if c in CONTACT_MARKERS.values()]
    assert markers == [CONTACT_MARKERS[c.type] for c in analysis.contacts]


@SETTINGS
@given(TEXT)
def test_pinyin_view_maps_inside_the_normalized_text(text: str) -> None:
    n = normalize(text)
    view = pinyin_view(n)
    assert view.text.isascii()
    for i in range(len(view.text)):
        start, end = view.normalized_span(i, i + 1)
        assert 0 <= start < end <= len(n.text)


def test_never_raises_on_hostile_input() -> None:
    hostile = [
        "\ud800\udfff\ud83d",  # lone surrogates
        "😀" * 10_000,
        "".join(chr(c) for c in range(0, 0x20)) * 50,
        "\u202e\u2066加\u2069微\u200f信",  # bidi controls
        "a\u0301" * 2000,  # combining marks
        "一" * 5000,
        "哈" * 10_000,
        "\U000e0041\U000e007f" * 100,  # tag characters
    ]
    for text in hostile:
        analysis = analyze(text)
        model_text(analysis)
        assert normalize(analysis.normalized.text).text == analysis.normalized.text
