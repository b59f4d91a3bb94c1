"""Policy documents: the presets written from the seed's rule sets, merging, clear refusals,
the rule checks and the Chinese replies (no database here)."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from models.labels import IMAGE_LABELS, TEXT_LABELS
from serving.policies.model import Policy, QuietHours, Rule
from serving.policies.presets import (
    MalformedDocument,
    PolicyError,
    load_preset,
    parse_document,
    preset_names,
    resolve,
)
from serving.policies.replies import reply_text
from serving.policies.rules import Subject, Violation, most_severe, violations

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=SHANGHAI)


def subject(**fields: object) -> Subject:
    values: dict[str, object] = {"event": "message", "text": "你好", "labels": []}
    values["local_time"] = NOON
    values.update(fields)
    return Subject(**values)  # type: ignore[arg-type]


def test_the_presets_of_the_seed_exist_and_are_valid() -> None:
    assert set(preset_names()) == {"company", "community", "trade_association"}
    for name in preset_names():
        policy = load_preset(name)
        assert policy.preset == name and policy.name and policy.description
        assert set(policy.labels) == set(TEXT_LABELS + IMAGE_LABELS)


def test_the_default_is_the_seeds_first_rule_set() -> None:
    policy = load_preset("company")
    for label in ("ad", "vote_bargain", "insult", "porn", "gambling", "fraud", "contraband"):
        assert policy.labels[label] == Rule(action="warn", remove_on_strike=2), label
    assert policy.labels["politics"].action == "remove"
    assert policy.quiet_hours is not None
    assert (policy.quiet_hours.start, policy.quiet_hours.end) == (time(22), time(7, 30))
    assert policy.quiet_hours.action == "remind"
    assert policy.max_length is not None
    assert (policy.max_length.chars, policy.max_length.action) == (200, "remind")
    assert policy.admins_exempt and policy.timezone == "Asia/Shanghai" and not policy.dry_run
    assert policy.nickname is not None and policy.nickname.example == "财务部+张三"
    assert policy.invitations is not None and policy.duplicates is None


def test_the_community_preset_counts_any_rule_and_warns_on_nicknames_and_invites() -> None:
    policy = load_preset("community")
    assert policy.strikes_per_rule is False  # 违反以上群规中的任意一条
    assert policy.quiet_hours is None and policy.max_length is None
    assert policy.nickname is not None and policy.nickname.action == "warn"
    assert policy.invitations is not None
    assert (policy.invitations.action, policy.invitations.remove_on_strike) == ("warn", 2)
    assert policy.labels["vote_bargain"].action == "warn"


def test_the_trade_association_allows_each_ad_once() -> None:
    policy = load_preset("trade_association")
    assert policy.labels["ad"].action == "none"
    assert policy.duplicates is not None and policy.duplicates.labels == ["ad"]
    assert policy.duplicates.action == "warn" and policy.duplicates.remove_on_strike == 2
    assert policy.quiet_hours is not None and policy.quiet_hours.start == time(23, 30)
    assert policy.strikes_per_rule is True and policy.nickname is None


@pytest.mark.parametrize(
    ("nickname", "accepted"),
    [
        ("财务部+张三", True),
        ("销售部-张三", True),
        ("人事行政部 + 欧阳娜娜", True),
        ("张三", False),
        ("Tom", False),
        ("财务部+", False),
        ("", False),
    ],
)
def test_company_nickname_rule_is_department_plus_name(nickname: str, accepted: bool) -> None:
    rule = load_preset("company").nickname
    assert rule is not None and rule.accepts(nickname) is accepted


def test_a_document_changes_its_preset_key_by_key_and_labels_label_by_label() -> None:
    policy = resolve(
        {
            "preset": "trade_association",
            "labels": {"insult": {"action": "remove"}},
            "quiet_hours": None,
            "timezone": "Asia/Urumqi",
        },
        default_preset="company",
    )
    assert policy.preset == "trade_association"
    assert policy.labels["insult"].action == "remove"
    assert policy.labels["ad"].action == "none"  # kept from the preset
    assert policy.quiet_hours is None and policy.timezone == "Asia/Urumqi"
    assert resolve({}, default_preset="company") == load_preset("company")
    # A stored (resolved) policy read back gives the same policy.
    assert resolve(policy.model_dump(mode="json"), default_preset="company") == policy


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "must be a mapping"),
        ({"preset": "nope"}, "unknown preset 'nope'"),
        ({"preset": 3}, "preset must be the name"),
        ({"labels": {"spam": {"action": "warn"}}}, "labels.spam.[key]"),
        ({"labels": {"ad": {"action": "ban"}}}, "labels.ad.action"),
        ({"labels": {"ad": {"action": "remind", "remove_on_strike": 2}}}, "only goes with action"),
        ({"labels": {"ad": {"action": "warn", "remove_on_strike": 0}}}, "remove_on_strike"),
        ({"labels": {"ad": {"action": "warn", "reply": "{name.__class__}"}}}, "unknown fields"),
        ({"labels": {"ad": {"action": "warn", "reply": "{name"}}}, "not a valid template"),
        ({"labels": {"ad": {"action": "warn", "reply": "{strike:>99999999}"}}}, "no format"),
        ({"labels": {"ad": {"action": "warn", "reply": "{name!r}"}}}, "no format"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"timezone": "../../etc/passwd"}, "unknown time zone"),
        ({"quiet_hours": {"start": 1320, "end": "07:30"}}, 'write times as text, e.g. "22:00"'),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "must differ"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"max_length": {"chars": 0}}, "max_length.chars"),
        ({"nickname": {"pattern": "([a-z"}}, "not a valid regular expression"),
        ({"strike_window_days": -1}, "strike_window_days"),
        ({"kick_after": 3}, "kick_after: Extra inputs are not permitted"),
    ],
)
def test_bad_documents_are_refused_saying_where_and_why(document: object, message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        resolve(document, default_preset="company")
    assert message in str(refused.value)


def test_documents_parse_as_json_or_yaml() -> None:
    yaml_body = b'preset: company\nquiet_hours:\n  start: "23:00"\n  end: "06:00"\n'
    document = parse_document(yaml_body, "application/yaml")
    assert document == {"preset": "company", "quiet_hours": {"start": "23:00", "end": "06:00"}}
    assert parse_document(b'{"dry_run": true}', "application/json") == {"dry_run": True}
    for body, content_type in [(b"{oops", "application/json"), (b"a: [b", "text/yaml")]:
        with pytest.raises(MalformedDocument):
            parse_document(body, content_type)
    with pytest.raises(MalformedDocument):
        parse_document(b"\xff\xfe", "application/json")


@pytest.mark.parametrize(
    ("moment", "quiet"),
    [
        (time(21, 59), False),
        (time(22, 0), True),
        (time(3, 0), True),
        (time(7, 29), True),
        (time(7, 30), False),
        (time(12, 0), False),
    ],
)
def test_quiet_hours_span_midnight(moment: time, quiet: bool) -> None:
    rule = QuietHours(start=time(22), end=time(7, 30))
    assert rule.contains(moment) is quiet
    daytime = QuietHours(start=time(12), end=time(14))
    assert daytime.contains(time(13)) and not daytime.contains(time(14))


def test_a_pathological_nickname_pattern_cannot_hold_a_thread() -> None:
    policy = resolve({"nickname": {"pattern": "(a|aa)+c"}}, default_preset="company")
    assert policy.nickname is not None
    assert policy.nickname.accepts("a" * 60 + "b") is True  # timed out: counted as a match
    assert policy.nickname.accepts("aac") is True and policy.nickname.accepts("b") is False


def test_labels_rules_and_events_give_the_violations_in_precedence_order() -> None:
    policy = load_preset("company")
    night = datetime(2026, 11, 24, 23, 0, tzinfo=SHANGHAI)
    found = violations(
        policy, subject(text="广" * 201, labels=["insult", "ad", "insult"], local_time=night)
    )
    assert [v.rule_name for v in found] == ["insult", "ad", "quiet_hours", "max_length"]
    chosen = most_severe(found)
    assert chosen is not None and chosen.rule_name == "insult"  # warn beats remind; first wins
    politics = most_severe(violations(policy, subject(labels=["ad", "politics"])))
    assert politics is not None and politics.rule_name == "politics"
    assert violations(policy, subject(text="好的")) == []


def test_allowed_labels_and_missing_rules_give_nothing() -> None:
    trade = load_preset("trade_association")
    assert violations(trade, subject(labels=["ad", "qrcode"])) == []
    bare = Policy()
    assert violations(bare, subject(labels=["porn"], text="x" * 5000)) == []


def test_events_check_nicknames_and_invitations() -> None:
    policy = load_preset("company")
    bad = violations(policy, subject(event="join", text=None, nickname="小明"))
    assert [v.rule_name for v in bad] == ["nickname"]
    assert violations(policy, subject(event="rename", text=None, nickname="财务部+小明")) == []
    assert violations(policy, subject(event="join", text=None, nickname=None)) == []
    invite = violations(policy, subject(event="invite", text=None))
    assert [v.rule_name for v in invite] == ["invitations"]
    assert violations(policy, subject(event="invite", text=None, is_admin=True)) == []
    # Events are not messages: no quiet hours or length rule at night.
    night = datetime(2026, 11, 24, 23, 0, tzinfo=SHANGHAI)
    assert violations(policy, subject(event="join", nickname="财务部+张三", local_time=night)) == []


def test_image_flood_reads_the_duplicate_count() -> None:
    policy = load_preset("company")
    assert policy.image_flood is not None and policy.image_flood.max_copies == 3
    assert violations(policy, subject(duplicate_count=2)) == []
    flood = violations(policy, subject(duplicate_count=3))
    assert [v.rule_name for v in flood] == ["image_flood"]
    assert violations(policy, subject(duplicate_count=None)) == []


def test_replies_name_the_user_the_strike_and_what_comes_next() -> None:
    ad = Rule(action="warn", remove_on_strike=2)
    assert (
        reply_text("ad", ad, "warn", name="张三", strike=1)
        == "@张三 请勿在群内发布广告，这是第1次警告，再次违规将被移出群聊。"
    )
    three = Rule(action="warn", remove_on_strike=3)
    assert reply_text("insult", three, "warn", name="李四", strike=1) == (
        "@李四 请勿辱骂、攻击他人，这是第1次警告，累计3次将被移出群聊。"
    )
    assert reply_text("ad", ad, "remove", name="张三", strike=2) == (
        "@张三 因多次违反群规（本次：在群内发布广告，第2次），将被移出群聊。"
    )
    assert reply_text("politics", Rule(action="remove"), "remove", name="王五", strike=1) == (
        "@王五 因发布煽动性、过激或涉政敏感言论，将被移出群聊。"
    )
    quiet = QuietHours(start=time(22), end=time(7, 30))
    assert reply_text("quiet_hours", quiet, "remind", name="赵六", strike=None) == (
        "@赵六 现在是本群休息时间（22:00-07:30），请勿在群内聊天。"
    )
    assert reply_text("ad", ad, "none", name="张三", strike=None) is None
    assert reply_text("ad", Rule(action="warn"), "warn", name=None, strike=None) == (
        "请勿在群内发布广告。"
    )


def test_a_policys_own_reply_text_is_used() -> None:
    rule = Rule(
        action="warn", remove_on_strike=3, reply="{name}，广告第{strike}次，满{limit}次踢出"
    )
    assert reply_text("ad", rule, "warn", name="张三", strike=2) == "张三，广告第2次，满3次踢出"


def test_most_severe_prefers_the_stronger_action() -> None:
    remind = Violation("quiet_hours", Rule(action="remind"))
    review = Violation("qrcode", Rule(action="review"))
    remove = Violation("politics", Rule(action="remove"))
    assert most_severe([remind, review, remove]) == remove
    assert most_severe([remind, review]) == review
    assert most_severe([]) is None
