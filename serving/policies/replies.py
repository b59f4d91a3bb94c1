"""The Chinese text a bot can post for an action, per rule and action, naming the user."""

from __future__ import annotations

from serving.policies.model import MaxLength, Nickname, QuietHours, Rule

# What the rule forbids, as it reads after 请勿 ("do not ...") and after 因 ("because of ...").
LABEL_DEEDS: dict[str, str] = {
    "ad": "在群内发布广告",
    "insult": "辱骂、攻击他人",
    "politics": "发布煽动性、过激或涉政敏感言论",
    "porn": "发布色情低俗内容",
    "gambling": "发布赌博信息",
    "fraud": "发布诈骗信息",
    "contraband": "发布违禁信息",
    "vote_bargain": "在群内拉票、集赞、砍价",
    "nsfw": "发布色情图片",
    "qrcode": "发布二维码",
    "image_ad": "发布广告图片",
}
RULE_DEEDS: dict[str, str] = {
    "duplicates": "重复发布相同内容",
    "image_flood": "刷屏发图",
    "invitations": "擅自拉人进群",
    "nickname": "使用不合群规的群昵称",
}


def deed(rule_name: str, rule: Rule) -> str:
    if isinstance(rule, QuietHours):
        return f"在休息时间（{rule.start:%H:%M}-{rule.end:%H:%M}）聊天"
    if isinstance(rule, MaxLength):
        return f"发布超过{rule.chars}字的长消息"
    return LABEL_DEEDS.get(rule_name) or RULE_DEEDS.get(rule_name, "违反群规")


def reply_text(
    rule_name: str,
    rule: Rule,
    action: str,
    *,
    name: str | None,
    strike: int | None,
) -> str | None:
    """The reply for `action` taken under `rule`; None for `none`."""
    if action == "none":
        return None
    limit = rule.remove_on_strike
    if rule.reply is not None:
        values = {"name": name or "", "strike": strike or "", "limit": limit or ""}
        return rule.reply.format_map(values)
    mention = f"@{name} " if name else ""
    what = deed(rule_name, rule)
    if action == "review":
        return f"{mention}你的消息已提交管理员审核。"
    if action == "remind":
        return mention + _reminder(rule_name, rule, what)
    if action == "remove":
        if strike is not None and strike > 1:
            return f"{mention}因多次违反群规（本次：{what}，第{strike}次），将被移出群聊。"
        return f"{mention}因{what}，将被移出群聊。"
    count = f"，这是第{strike}次警告" if strike is not None else ""
    if limit is not None and strike is not None and strike + 1 >= limit:
        consequence = "，再次违规将被移出群聊。"
    elif limit is not None:
        consequence = f"，累计{limit}次将被移出群聊。"
    else:
        consequence = "。"
    return f"{mention}请勿{what}{count}{consequence}"


def _reminder(rule_name: str, rule: Rule, what: str) -> str:
    if isinstance(rule, QuietHours):
        return f"现在是本群休息时间（{rule.start:%H:%M}-{rule.end:%H:%M}），请勿在群内聊天。"
    if isinstance(rule, MaxLength):
        return f"消息请控制在{rule.chars}字以内，超过请使用链接分享。"
    if isinstance(rule, Nickname):
        example = f"，格式如：{rule.example}" if rule.example else ""
        return f"请按群规修改群昵称{example}。"
    if rule_name == "invitations":
        return "未经群主或管理员同意，请勿拉人进群。"
    return f"请勿{what}。"
