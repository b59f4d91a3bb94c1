"""The label set of the HTTP contract (shared/API.md), in the model's output order."""

TEXT_LABELS: tuple[str, ...] = (
    "ad",
    "insult",
    "politics",
    "porn",
    "gambling",
    "fraud",
    "contraband",
    "vote_bargain",
)

TEXT_LABEL_DESCRIPTIONS: dict[str, str] = {
    "ad": "广告, 引流 (加微信/加QQ/私聊), 兼职刷单, 代购/微商, 推广链接, 卖号/代发/刷粉",
    "insult": "辱骂, 人身攻击, 地域/性别/群体攻击, 引战",
    "politics": "涉政敏感, 反动, 煽动性/过激言论",
    "porn": "色情, 低俗, 约炮/招嫖",
    "gambling": "赌博, 博彩, 六合彩, 网赌推广",
    "fraud": "诈骗, 冒充客服/公检法/熟人, 虚假中奖, 借钱骗局, 钓鱼链接",
    "contraband": "违禁: 毒品, 枪支, 暴恐, 代开发票/假证",
    "vote_bargain": "拉票, 投票求助, 集赞/点赞求助, 砍价/砍一刀, 助力, 帮忙关注",
}

IMAGE_LABELS: tuple[str, ...] = ("nsfw", "qrcode", "image_ad")

IMAGE_LABEL_DESCRIPTIONS: dict[str, str] = {
    "nsfw": "色情/裸露",
    "qrcode": "二维码/小程序码",
    "image_ad": "图片中的文字被判为文本标签 (如广告海报), 其文本标签一并报告",
}
