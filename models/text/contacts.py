"""Contact strings (WeChat IDs, QQ numbers, mobile numbers, URLs, e-mails) with original spans.

Extraction runs on the normalised text, where 加 V 信, 薇❤信 and 扣扣①②③ already read 加微信,
微信 and qq123, and Chinese or circled digits are digits; spans are mapped back to the
original. Order of precedence: e-mail, URL, QQ, WeChat, phone; a later kind never overlaps an
earlier one. Bare letters+digits are common (order numbers, models, usernames), so WeChat IDs
and QQ numbers need a cue before them; a mobile number is recognised without one, unless the
text right before it says it is something else (订单号, 取件码 ...).

Hand-written regular expressions: no library covers Chinese contact cues and evasions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from models.text.normalize import Normalized, normalize
from models.text.pinyin import to_pinyin

CONTACT_TYPES: tuple[str, ...] = ("wechat", "qq", "phone", "url", "email")


@dataclass(frozen=True, slots=True)
class Contact:
    type: str  # wechat | qq | phone | url | email
    value: str  # canonical: digits only for phone/qq, lower case for url/email/wechat
    start: int  # span in the ORIGINAL text
    end: int


_TLDS = (
    "com", "cn", "net", "org", "top", "xyz", "vip", "cc", "info", "club", "shop", "site",
    "online", "app", "tv", "ltd", "link", "live", "fun", "wang", "icu", "pro", "biz", "asia",
    "hk", "io", "me", "co", "xin", "ren", "store", "tech", "work",
)  # fmt: skip
# ". c o m", " 点 com", "dot com": a TLD may be spelt with single spaces between its letters.
_TLD = "(?:" + "|".join(" ?".join(t) for t in sorted(_TLDS, key=len, reverse=True)) + ")"
_DOT = r"(?: ?(?:\.|。|点|dot) ?)"
# Atomic groups: a label is taken whole, never re-tried shorter (no backtracking blow-up).
_LABEL = r"(?>[a-z0-9][a-z0-9-]{0,62})"
# "w w w . a b c . c o m": a label spelt as single characters with single spaces between.
_SPACED_LABEL = r"(?>[a-z0-9](?: [a-z0-9]){1,30})(?![a-z0-9])"
_HOST = rf"(?:(?:{_SPACED_LABEL}|{_LABEL}){_DOT})+{_TLD}(?![a-z0-9])"
_DOT_HINT = re.compile(r"[.。点]|dot|://")
_PATH = r"(?::[0-9]{1,5})?(?:/[a-z0-9\-._~%/?#=&+]*)?"

_EMAIL = re.compile(rf"(?<![a-z0-9._%+-])[a-z0-9][a-z0-9._%+-]{{0,63}} ?@ ?{_HOST}")
_URL = re.compile(
    rf"(?:https?|ftp)://[a-z0-9\-._~%/?#=&+:@]+"
    rf"|(?<![a-z0-9@._-])(?:www{_DOT})?{_HOST}{_PATH}"
)

# 5 to 11 digits for QQ, single spaces or hyphens allowed between them ("123 456 789").
_QQ_NUMBER = re.compile(r"(?<![0-9])(?<![0-9]-)[1-9](?:[ -]?[0-9]){4,10}(?![0-9])(?!-[0-9])")
_QQ_CUE = re.compile(r"(?:(?<![a-z])qq?|群号|扣|抠|蔻|寇)(?:群|号|码|是|为|:| )*$")
# A bare 群 right before the number (进群596514054, 售后群772373766) needs 6+ digits.
_QQ_GROUP_CUE = re.compile(r"群(?:是|为|:| )*$")
_QQ_GROUP_MIN_DIGITS = 6
_QQ_PINYIN_CUES = ("koukou",)  # 扣扣 抠抠 寇寇 叩叩 蔻蔻

# WeChat IDs: 6 to 20 characters, a letter first, then letters, digits, _ or -.
_WECHAT_ID = re.compile(r"(?<![a-z0-9_-])[a-z][a-z0-9_-]{5,19}(?![a-z0-9_-])")
_WECHAT_CUE = re.compile(
    r"(?:微信|薇|wechat|we chat|weixin|wei xin|vx|wx|(?<![a-z])v)(?:同号|号|码|id|是|为|:| )*$"
)  # fmt: skip
_WECHAT_ADD_CUE = re.compile(r"加(?:我|个|下|一下)?(?:好友)?(?:是|为|:| )*$")
_WECHAT_PINYIN_CUES = ("weixin",)  # 微信 威信 维信 薇心 危芯 ...
_EXPLICIT_DELIMITER = re.compile("[:：号是为=]")
_NOT_IDS = frozenset(("wechat", "weixin"))

# Mainland mobile numbers, +86 allowed, single spaces or hyphens allowed between digits.
_PHONE = re.compile(
    r"(?<![0-9])(?<![0-9]-)(?:\+?86[ -]?)?(1[ -]?[3-9](?:[ -]?[0-9]){9})(?![0-9])(?!-[0-9])"
)
# Numbers introduced as something else are not phone numbers (unless a phone cue is nearer).
_NOT_PHONE_CUE = re.compile(
    "订单|单号|取件|取货码|提货码|编号|工号|学号|卡号|账号|身份证|流水|会议号|会议id|房号|"
    "金额|价格|总价|合计|余额|条码|序列号|批号|快递|运单|验证码|尾号"
)
_PHONE_CUE = re.compile("电话|手机|tel|phone|联系|call|微信|qq|打我")
_NOT_PHONE_AFTER = re.compile(" ?(?:元|块|rmb|万|亿|%|¥|次)")

_ALNUM = re.compile("[a-z0-9]")
_DIGIT = re.compile("[0-9]")
_CUE_WINDOW = 12
_CUE_TAIL = re.compile(r"(?:号|码|是|为|:| )+$")
_DOT_WORD = re.compile(r"(?<![a-z0-9])dot(?![a-z0-9])")
_NON_DIGIT = re.compile("[^0-9]")


class _Found:
    """Contacts found so far (normalised spans), and which characters they already cover."""

    def __init__(self, length: int) -> None:
        self.items: list[tuple[int, int, str, str]] = []  # start, end, type, value
        self._taken = bytearray(length)

    def free(self, start: int, end: int) -> bool:
        return self._taken.find(1, start, end) == -1

    def add(self, type_: str, value: str, start: int, end: int) -> None:
        self.items.append((start, end, type_, value))
        self._taken[start:end] = b"\x01" * (end - start)


def extract_contacts(text: str, normalized: Normalized | None = None) -> list[Contact]:
    """Find contact strings in `text`; spans index `text` itself. Sorted by start."""
    norm = normalized if normalized is not None else normalize(text)
    ntext = norm.text
    if not _ALNUM.search(ntext):  # fast path: no letter or digit, no contact
        return []
    found = _Found(len(ntext))
    _find_emails(ntext, found)
    _find_urls(ntext, found)
    has_digit = _DIGIT.search(ntext) is not None
    if has_digit:
        _find_qq(ntext, found)
    _find_wechat(text, norm, found)
    if has_digit:
        _find_phones(ntext, found)
    contacts = []
    for start, end, type_, value in sorted(found.items):
        ostart, oend = norm.original_span(start, end)
        contacts.append(Contact(type_, value, ostart, oend))
    return contacts


def _clean_address(raw: str) -> str:
    """Spelled-out dots to dots: abc 点 c o m, abc dot com, abc。com -> abc.com."""
    value = _DOT_WORD.sub(".", raw).replace(" ", "").replace("点", ".").replace("。", ".")
    return value.rstrip(".-/?#&=")


def _find_emails(ntext: str, found: _Found) -> None:
    if "@" not in ntext:
        return
    for m in _EMAIL.finditer(ntext):
        found.add("email", _clean_address(m.group()), m.start(), m.end())


def _find_urls(ntext: str, found: _Found) -> None:
    if not _DOT_HINT.search(ntext):  # every URL form has a dot, 。, 点, "dot" or "://"
        return
    for m in _URL.finditer(ntext):
        raw = m.group()
        stripped = raw.rstrip(".-/?#&=:")
        end = m.start() + len(stripped)
        if found.free(m.start(), end):
            value = stripped if "://" in stripped else _clean_address(stripped)
            found.add("url", value, m.start(), end)


def _cue_window(ntext: str, start: int) -> str:
    return ntext[max(0, start - _CUE_WINDOW) : start]


def _pinyin_cue(window: str, cues: tuple[str, ...]) -> bool:
    """Homophone cues: the last characters before the number read "weixin" (威信, 维心 ...)."""
    tail = _CUE_TAIL.sub("", window)[-4:]
    reading = to_pinyin(tail)
    return any(reading.endswith(cue) for cue in cues)


def _find_qq(ntext: str, found: _Found) -> None:
    for m in _QQ_NUMBER.finditer(ntext):
        window = _cue_window(ntext, m.start())
        digits = _NON_DIGIT.sub("", m.group())
        cued = _QQ_CUE.search(window) or _pinyin_cue(window, _QQ_PINYIN_CUES)
        if not cued and not (len(digits) >= _QQ_GROUP_MIN_DIGITS and _QQ_GROUP_CUE.search(window)):
            continue
        if found.free(m.start(), m.end()):
            found.add("qq", digits, m.start(), m.end())


def _find_wechat(text: str, norm: Normalized, found: _Found) -> None:
    ntext = norm.text
    for m in _WECHAT_ID.finditer(ntext):
        value = m.group()
        if value in _NOT_IDS or not found.free(m.start(), m.end()):
            continue
        window = _cue_window(ntext, m.start())
        strong = bool(_WECHAT_CUE.search(window)) or _pinyin_cue(window, _WECHAT_PINYIN_CUES)
        has_mark = any(c.isdigit() or c in "_-" for c in value)
        if not strong and not (has_mark and _WECHAT_ADD_CUE.search(window)):
            continue
        if not has_mark:
            # Pure letters ("微信 update 之后") only after an explicit 号 / : / 是 in the original.
            orig_start, _ = norm.original_span(m.start(), m.end())
            if not _EXPLICIT_DELIMITER.search(text[max(0, orig_start - 3) : orig_start]):
                continue
        found.add("wechat", value, m.start(), m.end())


def _last_cue_is_phone(window: str) -> bool:
    negative = max(m.end() for m in _NOT_PHONE_CUE.finditer(window))
    return any(m.start() >= negative for m in _PHONE_CUE.finditer(window))


def _find_phones(ntext: str, found: _Found) -> None:
    for m in _PHONE.finditer(ntext):
        start, end = m.span(1)
        if not found.free(start, end):
            continue
        window = _cue_window(ntext, m.start())
        if _NOT_PHONE_CUE.search(window) and not _last_cue_is_phone(window):
            continue
        if _NOT_PHONE_AFTER.match(ntext, end):
            continue
        digits = _NON_DIGIT.sub("", m.group(1))
        found.add("phone", digits, start, end)
