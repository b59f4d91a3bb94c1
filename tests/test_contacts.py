"""Contact extraction: types, canonical values, original spans, false positives, markers."""

import pytest

from models.text.contacts import CONTACT_TYPES, Contact, extract_contacts
from models.text.normalize import normalize
from models.text.pipeline import CONTACT_MARKERS, analyze, model_text


def found(text: str) -> list[tuple[str, str, str]]:
    """(type, value, the original text the span covers) for each contact."""
    return [(c.type, c.value, text[c.start : c.end]) for c in extract_contacts(text)]


# --- each type ---------------------------------------------------------------------------------


def test_wechat_needs_a_cue_and_reports_the_id() -> None:
    assert found("加V信 abc12345") == [("wechat", "abc12345", "abc12345")]
    assert found("微信号：Lili_888") == [("wechat", "lili_888", "Lili_888")]
    assert found("abc12345") == []


def test_wechat_pinyin_and_homophone_cues() -> None:
    assert found("jia wei xin: lili_888") == [("wechat", "lili_888", "lili_888")]
    assert found("维心 ab_1234") == [("wechat", "ab_1234", "ab_1234")]


def test_wechat_after_add_cue_needs_a_digit() -> None:
    assert found("加我 zhang123") == [("wechat", "zhang123", "zhang123")]
    assert found("加我 zhangsan") == []


def test_wechat_pure_letters_only_after_explicit_delimiter() -> None:
    assert found("微信：xiaomeimei") == [("wechat", "xiaomeimei", "xiaomeimei")]
    assert found("微信 update 之后就卡了") == []


def test_qq_with_cue() -> None:
    assert found("扣扣①②③④⑤⑥⑦⑧⑨") == [("qq", "123456789", "①②③④⑤⑥⑦⑧⑨")]
    assert found("QQ：10001") == [("qq", "10001", "10001")]
    assert found("q群 123 456 789") == [("qq", "123456789", "123 456 789")]
    assert found("进群596514054领福利") == [("qq", "596514054", "596514054")]
    assert found("扣 12345678") == [("qq", "12345678", "12345678")]


def test_qq_needs_a_cue() -> None:
    assert found("123456789") == []
    assert found("我在3群 12个人") == []


def test_phone_without_context() -> None:
    assert found("13800138000") == [("phone", "13800138000", "13800138000")]
    assert found("138-0013-8000") == [("phone", "13800138000", "138-0013-8000")]
    assert found("+86 139 1234 5678") == [("phone", "13912345678", "139 1234 5678")]


def test_phone_in_chinese_numerals_circled_digits_and_spaces() -> None:
    assert found("一三八零零一三八零零零") == [("phone", "13800138000", "一三八零零一三八零零零")]
    assert found("①③⑨①②③④⑤⑥⑦⑧") == [("phone", "13912345678", "①③⑨①②③④⑤⑥⑦⑧")]
    assert found("1 3 8 0 0 1 3 8 0 0 0") == [("phone", "13800138000", "1 3 8 0 0 1 3 8 0 0 0")]


def test_url_forms() -> None:
    assert found("访问 www.abc.com") == [("url", "www.abc.com", "www.abc.com")]
    assert found("abc点com") == [("url", "abc.com", "abc点com")]
    assert found("a b c . c o m") == [("url", "abc.com", "a b c . c o m")]
    assert found("戳 https://t.cn/AbC12") == [("url", "https://t.cn/abc12", "https://t.cn/AbC12")]


def test_email() -> None:
    assert found("发到 Test.User@QQ.com 谢谢") == [
        ("email", "test.user@qq.com", "Test.User@QQ.com")
    ]


# --- precedence --------------------------------------------------------------------------------


def test_email_wins_over_url_and_qq() -> None:
    assert found("qq邮箱 12345678@qq.com") == [("email", "12345678@qq.com", "12345678@qq.com")]


def test_qq_cue_wins_over_phone() -> None:
    assert found("qq 13800138000") == [("qq", "13800138000", "13800138000")]


def test_contacts_sorted_and_not_overlapping() -> None:
    text = "电话13800138000 微信abc_123 官网 abc.com"
    contacts = extract_contacts(text)
    assert [c.type for c in contacts] == ["phone", "wechat", "url"]
    assert all(a.end <= b.start for a, b in zip(contacts, contacts[1:], strict=False))


# --- false positives ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "订单号 13812345678",
        "订单号：202311250013",
        "取件码 6-2-3031",
        "金额 13800元",
        "13800138000元",
        "房号 3-1201",
        "明天 12:30 开会",
        "2023-11-25 13:45:20",
        "v1.3.8 版本",
        "价格 ¥138.00",
        "腾讯会议号 482-613-905",
        "跟1615726686一样",
        "加油 abc123",
        "文件名 report.pdf",
        "3.5元一斤",
        "扣款 123456元",
        "扣1的明天来",
    ],
)
def test_no_false_positive(text: str) -> None:
    assert extract_contacts(text) == []


def test_phone_cue_nearer_than_negative_cue() -> None:
    assert found("订单号123 电话 13812345678") == [("phone", "13812345678", "13812345678")]


# --- interface ---------------------------------------------------------------------------------


def test_given_normalized_is_used() -> None:
    text = "vx: abc_123"
    assert extract_contacts(text, normalize(text)) == extract_contacts(text)


def test_contact_types_and_dataclass() -> None:
    assert set(CONTACT_TYPES) == set(CONTACT_MARKERS)
    contact = Contact("qq", "12345", 0, 5)
    with pytest.raises(AttributeError):
        contact.value = "x"  # type: ignore[misc]


# --- model_text --------------------------------------------------------------------------------


def test_model_text_replaces_each_contact_with_its_marker() -> None:
    analysis = analyze("加V信 abc123，电话 138-0013-8000")
    assert model_text(analysis) == "加微信\ue001电话\ue003"


def test_model_text_without_contacts_is_the_normalized_text() -> None:
    analysis = analyze("你好，世界")
    assert model_text(analysis) == analysis.normalized.text == "你好世界"


def test_user_private_use_characters_cannot_fake_a_marker() -> None:
    analysis = analyze("\ue001\ue003你好")
    assert model_text(analysis) == "你好"


def test_markers_are_private_use() -> None:
    assert len(set(CONTACT_MARKERS.values())) == len(CONTACT_MARKERS)
    assert all(0xE000 <= ord(m) <= 0xF8FF for m in CONTACT_MARKERS.values())
