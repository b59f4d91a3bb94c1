"""The policy engine on real databases: actions, strikes, dry runs, time zones, duplicates,
image floods, policy changes between processes; and the `decide_action` seam."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from models.fusion import FusionResult
from models.labels import TEXT_LABELS
from serving.policies.engine import Case, PolicyEngine
from serving.policies.presets import PolicyError
from serving.policy import decide_action
from serving.schemas import Message
from serving.store import open_store
from tests.test_store_databases import DATABASES, database_url

DAY = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PolicyEngine]:
    with database_url(request.param, tmp_path) as url:
        store = open_store(tmp_path, url)
        yield PolicyEngine(store, default_preset="company", cache_s=0)
        store.close()


def case(labels: list[str] | None = None, **fields: Any) -> Case:
    values: dict[str, Any] = {
        "group_id": "g",
        "user_id": "u",
        "message_id": "m",
        "nickname": "张三",
        "event": "message",
        "text": "一条消息",
        "labels": labels or [],
        "sent_at": DAY,
    }
    values.update(fields)
    return Case(**values)


def summary(engine: PolicyEngine, item: Case, *, dry_run: bool = False) -> tuple[Any, ...]:
    action = engine.decide(item, dry_run=dry_run)
    return action.type, action.rule, action.strike


def test_default_policy_warns_then_removes_per_rule(engine: PolicyEngine) -> None:
    first = engine.decide(case(["ad"]))
    assert (first.type, first.rule, first.strike) == ("warn", "ad", 1)
    assert first.reply == "@张三 请勿在群内发布广告，这是第1次警告，再次违规将被移出群聊。"
    # The company rules count per rule: an insult after an ad is a first insult.
    assert summary(engine, case(["insult"])) == ("warn", "insult", 1)
    assert summary(engine, case(["ad"])) == ("remove", "ad", 2)
    assert summary(engine, case(["politics"], user_id="v")) == ("remove", "politics", 1)
    assert summary(engine, case([])) == ("none", None, None)
    assert engine.decide(case([])).reply is None


def test_community_counts_strikes_across_rules(engine: PolicyEngine) -> None:
    engine.set_policy("g", {"preset": "community"})
    assert summary(engine, case(["ad"])) == ("warn", "ad", 1)
    assert summary(engine, case(["insult"])) == ("remove", "insult", 2)


def test_admins_are_exempt_unless_the_policy_says_otherwise(engine: PolicyEngine) -> None:
    assert summary(engine, case(["ad"], is_admin=True)) == ("none", None, None)
    engine.set_policy("g", {"admins_exempt": False})
    assert summary(engine, case(["ad"], is_admin=True)) == ("warn", "ad", 1)


def test_dry_runs_decide_without_recording(engine: PolicyEngine) -> None:
    assert summary(engine, case(["ad"]), dry_run=True) == ("warn", "ad", 1)
    assert summary(engine, case(["ad"]), dry_run=True) == ("warn", "ad", 1)
    assert engine.ledger.count("g", "u", at=DAY, window=timedelta(days=30)) == 0
    assert summary(engine, case(["ad"])) == ("warn", "ad", 1)
    assert summary(engine, case(["ad"]), dry_run=True) == ("remove", "ad", 2)
    engine.set_policy("g", {"dry_run": True})  # the policy's own dry-run mode
    assert summary(engine, case(["ad"])) == ("remove", "ad", 2)
    assert summary(engine, case(["ad"])) == ("remove", "ad", 2)
    assert engine.ledger.count("g", "u", at=DAY, window=timedelta(days=30)) == 1


def test_quiet_hours_use_sent_at_in_the_groups_time_zone(engine: PolicyEngine) -> None:
    late = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
    assert summary(engine, case(sent_at=late)) == ("remind", "quiet_hours", None)
    assert summary(engine, case(sent_at=DAY)) == ("none", None, None)
    naive = datetime(2026, 11, 24, 23, 0)  # no offset: the group's local time
    assert summary(engine, case(sent_at=naive)) == ("remind", "quiet_hours", None)
    engine.set_policy("g", {"timezone": "Europe/Berlin"})  # 14:30 UTC is 15:30 in Berlin
    assert summary(engine, case(sent_at=late)) == ("none", None, None)


def test_without_sent_at_the_time_is_now(engine: PolicyEngine) -> None:
    assert summary(engine, case(["ad"], sent_at=None)) == ("warn", "ad", 1)
    now = datetime.now(UTC)
    (strike,) = engine.ledger.active("g", "u", at=now, window=timedelta(days=30))
    assert abs((now - strike.at).total_seconds()) < 60


def test_long_messages_get_a_reminder_without_a_strike(engine: PolicyEngine) -> None:
    action = engine.decide(case(text="长" * 201))
    assert (action.type, action.rule, action.strike) == ("remind", "max_length", None)
    assert action.reply == "@张三 消息请控制在200字以内，超过请使用链接分享。"
    assert summary(engine, case(text="长" * 200)) == ("none", None, None)
    assert engine.ledger.count("g", "u", at=DAY, window=timedelta(days=30)) == 0


def test_strikes_expire_after_the_window(engine: PolicyEngine) -> None:
    engine.set_policy("g", {"strike_window_days": 7})
    assert summary(engine, case(["ad"])) == ("warn", "ad", 1)
    assert summary(engine, case(["ad"], sent_at=DAY + timedelta(days=8))) == ("warn", "ad", 1)
    assert summary(engine, case(["ad"], sent_at=DAY + timedelta(days=9))) == ("remove", "ad", 2)


def test_the_trade_group_allows_each_ad_once(engine: PolicyEngine) -> None:
    engine.set_policy("g", {"preset": "trade_association"})
    ad = "本厂新到一批工业缝纫机配件，量大从优，电话13800138000"
    assert summary(engine, case(["ad"], text=ad, user_id="a")) == ("none", None, None)
    assert summary(engine, case(["ad"], text="另一款新品：包缝机", user_id="a")) == (
        "none",
        None,
        None,
    )
    # The same ad again, from anyone, with other spacing and full-width digits.
    again = "本厂新到一批工业缝纫机配件， 量大从优，电话１３８００１３８０００"
    repeat = engine.decide(case(["ad"], text=again, user_id="b", nickname="李四"))
    assert (repeat.type, repeat.rule, repeat.strike) == ("warn", "duplicates", 1)
    assert repeat.reply == "@李四 请勿重复发布相同内容，这是第1次警告，再次违规将被移出群聊。"
    assert summary(engine, case(["ad"], text=ad, user_id="b")) == ("remove", "duplicates", 2)
    # Clean text repeated is no ad: the rule only covers ads.
    for _ in range(2):
        assert summary(engine, case([], text="收到", user_id="c")) == ("none", None, None)


def test_a_dry_run_does_not_remember_the_ad(engine: PolicyEngine) -> None:
    engine.set_policy("g", {"preset": "trade_association"})
    ad = "出售二手平车，九成新"
    assert summary(engine, case(["ad"], text=ad), dry_run=True) == ("none", None, None)
    assert summary(engine, case(["ad"], text=ad)) == ("none", None, None)
    assert summary(engine, case(["ad"], text=ad), dry_run=True) == ("warn", "duplicates", 1)


def test_events_get_nickname_and_invitation_actions(engine: PolicyEngine) -> None:
    join = engine.decide(case(event="join", text=None, nickname="小明"))
    assert (join.type, join.rule) == ("remind", "nickname")
    assert join.reply == "@小明 请按群规修改群昵称，格式如：财务部+张三。"
    assert summary(engine, case(event="rename", text=None, nickname="技术部-小明")) == (
        "none",
        None,
        None,
    )
    invite = engine.decide(case(event="invite", text=None))
    assert (invite.type, invite.rule) == ("remind", "invitations")
    assert invite.reply == "@张三 未经群主或管理员同意，请勿拉人进群。"
    engine.set_policy("g", {"preset": "community"})
    assert summary(engine, case(event="invite", text=None)) == ("warn", "invitations", 1)
    assert summary(engine, case(event="rename", text=None, nickname="xx")) == (
        "remove",
        "nickname",
        2,
    )


def test_without_a_user_id_nothing_is_counted(engine: PolicyEngine) -> None:
    action = engine.decide(case(["ad"], user_id=None, nickname=None))
    assert (action.type, action.rule, action.strike) == ("warn", "ad", None)
    assert action.reply == "请勿在群内发布广告，累计2次将被移出群聊。"


def test_a_bad_policy_changes_nothing(engine: PolicyEngine) -> None:
    engine.set_policy("g", {"preset": "trade_association"})
    with pytest.raises(PolicyError):
        engine.set_policy("g", {"labels": {"ad": {"action": "explode"}}})
    assert engine.policy_for("g").policy.preset == "trade_association"
    assert engine.reset_policy("g").source == "default"
    assert engine.policy_for("g").policy.preset == "company"


def test_another_process_sees_a_policy_change_after_its_cache_time(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    one = PolicyEngine(store, default_preset="company", cache_s=0)
    two = PolicyEngine(store, default_preset="company", cache_s=3600)
    assert two.policy_for("g").source == "default"
    one.set_policy("g", {"preset": "trade_association"})
    assert one.policy_for("g").policy.preset == "trade_association"
    assert two.policy_for("g").source == "default"  # still cached
    assert PolicyEngine(store, default_preset="company").policy_for("g").source == "group"
    store.close()


def result(*labels: str) -> FusionResult:
    scores = {label: (0.9 if label in labels else 0.0) for label in TEXT_LABELS}
    return FusionResult(labels=list(labels), scores=scores, evidence=[], contacts=[])


def test_decide_action_needs_a_group_and_reads_image_labels_and_floods(
    engine: PolicyEngine,
) -> None:
    plain = Message(text="加我", user_id="u")
    assert decide_action(plain, result("ad"), dry_run=False, engine=engine) is None
    message = Message(text="看图", group_id="g", user_id="u", nickname="张三", sent_at=DAY)
    assert decide_action(message, result(), dry_run=False, engine=engine) == engine.decide(
        case([], text="看图")
    )
    picture = {"labels": ["nsfw"], "duplicate_count": 0}
    action = decide_action(message, result(), dry_run=False, engine=engine, image=picture)
    assert action is not None and (action.type, action.rule, action.strike) == ("warn", "nsfw", 1)
    assert action.reply == "@张三 请勿发布色情图片，这是第1次警告，再次违规将被移出群聊。"
    flood = {"labels": [], "duplicate_count": 5}
    action = decide_action(message, result(), dry_run=False, engine=engine, image=flood)
    assert action is not None and (action.type, action.rule) == ("remind", "image_flood")
    assert action.reply == "@张三 请勿刷屏发图。"
    no_count = {"labels": []}  # an image result without the field: no flood rule
    action = decide_action(message, result(), dry_run=False, engine=engine, image=no_count)
    assert action is not None and action.type == "none"


def test_a_stored_policy_that_no_longer_validates_gives_the_default(
    engine: PolicyEngine,
) -> None:
    engine.policies.put("g", {"labels": {"ad": {"action": "obliterate"}}}, DAY)
    found = engine.policy_for("g")
    assert found.source == "default" and found.policy == engine.default
    assert summary(engine, case(["ad"])) == ("warn", "ad", 1)
