"""Chinese names for the page (glossary: shared/brief/domain.md)."""

CATEGORIES = {
    "party_organization": "安置地党支部和党小组", "party_member": "党员", "mass_organization": "群团组织",
    "resident": "居民", "family": "家庭", "employed": "创业就业者", "community_cadre": "社区干部",
    "volunteer": "志愿者", "building_head": "楼栋长", "property_staff": "物业人员（保洁员）",
}
DIMENSIONS = {
    "political_quality": "政治思想素质", "leading_development": "带领发展能力", "duty_performance": "履职尽责素质",
    "service_to_people": "为民服务水平", "affairs_handling": "处理事务能力", "dispute_mediation": "矛盾纠纷调处",
    "training_employment": "组织培训就业成效", "community_building": "社区建设参与",
    "livelihood_employment": "生活工作就业", "law_abiding": "遵纪守法表现", "civility_hygiene": "文明卫生表现",
    "volunteer_service": "志愿服务参与", "family_tradition": "家风家教情况", "social_morality": "社会公德表现",
}
CHANNELS = {"wechat_official_account": "社区微信公众号", "party_wechat_group": "党员微信群",
            "bulletin_board": "小区公告栏"}
STATUS = {"submitted": "待审核", "verified": "审核通过", "returned": "退回修改", "rejected": "驳回",
          "carried": "转入下月审核",           "open": "待处理", "upheld": "已采纳", "dismissed": "不予采纳"}

ROLES = {"declarant": "申报人", "recorder": "记录员", "supervisor": "监督员", "leading_group": "领导小组成员",
         "secretary": "第一责任人", "clerk": "超市收银员", "auditor": "审计", "county_admin": "县管理员",
         "site": "社区站点"}


def zh(table: dict[str, str], code: str) -> str:
    return table.get(code, code)
