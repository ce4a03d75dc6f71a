"""Every UI string, Chinese first, English on request (``--lang en`` or ``CQGOV_LANG=en``)."""

from __future__ import annotations

import os
import re

_STRINGS: dict[str, tuple[str, str]] = {
    "app.title": ("重庆市数字化城市运行和治理中心", "Chongqing City Operations Centre"),
    "pane.events": ("事件", "Events"),
    "pane.map": ("地图", "Map"),
    "pane.runways": ("跑道", "Runways"),
    "pane.directives": ("政令", "Directives"),
    "col.colour": ("色", "Col"),
    "col.number": ("编号", "Number"),
    "col.status": ("状态", "Status"),
    "col.title": ("标题", "Title"),
    "col.category": ("类别", "Category"),
    "col.place": ("位置", "Place"),
    "col.left": ("剩余", "Left"),
    "col.flags": ("标记", "Flags"),
    "flag.overdue": ("超时", "LATE"),
    "flag.supervised": ("督办", "SUPV"),
    "flag.duplicate": ("疑重", "DUP?"),
    "events.count": ("{n} 条", "{n} rows"),
    "events.filter": ("筛选", "filter"),
    "events.filter_hint": ("/ 筛选: 文本 区县 状态 颜色 类别 (如 red 南岸区 reported)",
                           "/ filter: text district status colour category (e.g. red 南岸区 reported)"),
    "events.empty": ("暂无事件", "No events"),
    "map.hint": ("←↑→↓ 选择  Enter 下钻  Backspace 返回", "arrows select  Enter drill  Backspace up"),
    "map.none": ("无下级区域", "no sub-regions"),
    "map.selected": ("选中", "selected"),
    "runways.empty": ("跑道数据尚未就绪", "Runway board not available yet"),
    "runways.hint": ("Enter 下钻  Backspace 返回  h 事件热榜  k 考评", "Enter drill  Backspace up  h hot list  k ranking"),
    "runways.red": ("红灯时长", "time in red"),
    "runways.value": ("值", "value"),
    "runways.thresholds": ("阈值", "thresholds"),
    "runways.no_data": ("无数据", "no data"),
    "runways.vital": ("城市体征", "Vital signs"),
    "runways.kpi": ("关键绩效指标 KPI", "KPIs"),
    "directives.empty": ("暂无政令", "No directives"),
    "directives.progress": ("送达/已读/确认/执行", "deliv/read/ack/exec"),
    "directives.overdue": ("逾期未确认 {n}", "{n} overdue"),
    "directives.not_mine": ("(非本岗)", "(not yours)"),
    "directives.hint": ("c 起草政令  Enter 查看回执", "c compose  Enter receipts"),
    "status.tier": ("层级", "tier"),
    "status.server": ("服务", "server"),
    "status.user": ("用户", "user"),
    "status.outbox": ("待发", "outbox"),
    "status.local": ("本地", "local"),
    "status.live": ("在线", "live"),
    "status.lagging": ("滞后 {n} 秒", "lagging {n} s"),
    "status.offline": ("离线 自 {t}", "offline since {t}"),
    "status.connecting": ("连接中", "connecting"),
    "status.lowbw": ("低带宽", "low-bw"),
    "status.error": ("错误", "error"),
    "status.rejected": ("被拒", "refused"),
    "detail.title": ("事件详情", "Event detail"),
    "detail.fields": ("基本信息", "Fields"),
    "detail.timeline": ("处置时间线", "Timeline"),
    "detail.stages": ("时限", "SLA stages"),
    "detail.candidates": ("疑似重复", "Merge candidates"),
    "detail.actions": ("可用操作", "Actions"),
    "detail.no_actions": ("当前角色无可用操作", "No actions for your role"),
    "detail.reached": ("已达成", "reached"),
    "detail.late": ("超时达成", "reached late"),
    "detail.missing": ("事件不在本地副本中", "Event is not in the local replica"),
    "field.number": ("编号", "Number"), "field.title": ("标题", "Title"), "field.status": ("状态", "Status"),
    "field.colour": ("等级", "Colour"), "field.category": ("类别", "Category"), "field.place": ("位置", "Place"),
    "field.address": ("地址", "Address"), "field.text": ("描述", "Text"), "field.source": ("来源", "Source"),
    "field.reporter": ("上报人", "Reporter"), "field.assignee": ("主办部门", "Owner"),
    "field.departments": ("协办部门", "Co-departments"), "field.sla_profile": ("时限方案", "SLA profile"),
    "field.supervised_by": ("督办层级", "Supervised by"), "field.escalation_level": ("督办级数", "Escalation"),
    "field.plan": ("智能预案", "Plan"), "field.parent": ("主事件", "Master"), "field.origin": ("来源节点", "Origin"),
    "field.id": ("ID", "ID"),
    "prompt.note": ("{action}: 请输入说明", "{action}: note"),
    "prompt.reason": ("{action}: 请输入理由 (必填)", "{action}: reason (required)"),
    "prompt.target": ("合并到 (事件编号)", "Merge into (event number)"),
    "prompt.supervise": ("督办: 请输入督办要求 (发给负责处置的一级)", "Supervise: what the owning tier must do"),
    "prompt.callback": ("回访: 满意度 1-5 及说明 (如: 4 电话回访满意)", "Call-back: rating 1-5 and a note (e.g. 4 satisfied)"),
    "prompt.departments": ("派遣部门 (代码, 逗号分隔)", "Departments (codes, comma-separated)"),
    "prompt.command": ("命令 (help 查看)", "command (try help)"),
    "prompt.ok": ("确定", "OK"),
    "prompt.cancel": ("取消", "Cancel"),
    "action.sent": ("已提交: {what}", "Sent: {what}"),
    "action.queued": ("已进入待发队列: {what}", "Queued: {what}"),
    "action.refused": ("被拒绝: {why}", "Refused: {why}"),
    "compose.title": ("起草政令", "Compose directive"),
    "compose.targets": ("发送对象 (空格选择)", "Targets (space to pick)"),
    "compose.extra": ("其他对象: 区划代码/部门/角色 (逗号分隔)", "More targets: codes, departments, roles (comma-separated)"),
    "compose.audience": ("由谁办理 (空格选择, 不选则全体)", "Who answers (space to pick; none = everyone)"),
    "compose.priority": ("优先级", "Priority"),
    "compose.deadline": ("时限 (分钟)", "Deadline (minutes)"),
    "compose.ack": ("需要确认回执", "Require acknowledgement"),
    "compose.subject": ("标题", "Title"),
    "compose.text": ("正文", "Text"),
    "compose.send": ("发送 (ctrl+s)", "Send (ctrl+s)"),
    "compose.sent": ("政令已发出: {n}", "Directive sent: {n}"),
    "compose.picked": ("已选 {n} 个", "{n} picked"),
    "priority.urgent": ("特急", "urgent"), "priority.high": ("加急", "high"), "priority.normal": ("平急", "normal"),
    "receipts.title": ("回执 {n}", "Receipts {n}"),
    "help.receipts": ("回执", "Receipts"),
    "receipts.audience": ("由谁办理: {who}", "Who answers: {who}"),
    "receipts.keys": ("r 已读  a 确认  x 已执行 (所选对象)", "r read  a acknowledge  x executed (selected row)"),
    "receipts.answered": ("{code} {state}", "{code} {state}"),
    "receipts.place": ("对象", "Target"), "receipts.state": ("状态", "State"), "receipts.at": ("时间", "At"),
    "receipt.pending": ("待送达", "pending"), "receipt.delivered": ("已送达", "delivered"),
    "receipt.read": ("已读", "read"), "receipt.acknowledged": ("已确认", "acknowledged"),
    "receipt.executed": ("已执行", "executed"),
    "help.title": ("快捷键", "Key bindings"),
    "help.close": ("Esc 关闭", "Esc to close"),
    "cmd.unknown": ("未知命令: {c}", "unknown command: {c}"),
    "cmd.help": ("命令: report 类别 地点代码 [标题], lang zh|en, contrast, lowbw, filter 文本, open 编号, drill 代码, "
                 "top, compose, hot [期间], rank [district|street|department] [期间], supervise 编号 要求, dismiss, quit",
                 "commands: report CATEGORY PLACE-CODE [TITLE], lang zh|en, contrast, lowbw, filter TEXT, open NUMBER, "
                 "drill CODE, top, compose, hot [PERIOD], rank [district|street|department] [PERIOD], "
                 "supervise NUMBER NOTE, dismiss, quit"),
    "cmd.report_usage": ("用法: report 类别(代码或名称) 地点代码 [标题]", "usage: report CATEGORY PLACE-CODE [TITLE]"),
    "cmd.export_usage": ("用法: export 台账(代码或名称) 期间(2026-11) [csv|xlsx|parquet] [文件]",
                         "usage: export LEDGER PERIOD(2026-11) [csv|xlsx|parquet] [FILE]"),
    "export.done": ("{name} 已导出 {rows} 行 → {out}", "{name}: {rows} rows → {out}"),
    "report.done": ("已登记: {what}", "Reported: {what}"),
    "detail.owner": ("本事件由 {node} 负责处置: 本级的流转操作会被服务器拒绝, 请督办或备注",
                     "Owned by {node}: lifecycle actions here are refused by the server; supervise or comment"),
    "error.worker": ("后台刷新出错, 将重试: {e}", "refresh failed, retrying: {e}"),
    "error.filter": ("筛选无效: {e}", "bad filter: {e}"),
    "saved": ("状态已保存", "state saved"),
    # people (issue 14): my work, my inbox, who is on duty nearby
    "work.title": ("我的工作 · {user}", "My work · {user}"),
    "work.tasks": ("我的任务 (s 签收  o 到场  x 完成)", "My tasks (s accept  o arrive  x done)"),
    "work.inbox": ("收件箱 (k 确认收到)", "Inbox (k acknowledge)"),
    "work.empty": ("暂无任务", "No tasks"),
    "work.inbox_empty": ("暂无通知", "No notifications"),
    "work.unread": ("待确认 {n}", "{n} to acknowledge"),
    "work.done": ("{what}: 已提交", "{what}: sent"),
    "col.kind": ("类型", "Kind"), "col.due": ("时限", "Due"), "col.at": ("时间", "At"), "col.ack": ("确认", "Ack"),
    "col.subject": ("内容", "Subject"),
    "kind.periodic": ("周期", "periodic"), "kind.adhoc": ("临时", "ad-hoc"), "kind.event": ("事件", "event"),
    "task.assigned": ("已派发", "assigned"), "task.accepted": ("已签收", "accepted"), "task.on_scene": ("已到场", "on scene"),
    "task.done": ("已完成", "done"), "task.cancelled": ("已取消", "cancelled"),
    "ack.yes": ("已确认", "acked"), "ack.wait": ("待确认", "to ack"),
    "detail.nearby": ("附近在岗人员 (t 派遣给人)", "On duty nearby (t dispatch to a person)"),
    "detail.nobody": ("附近无在岗人员", "Nobody on duty nearby"),
    "prompt.person": ("派遣给 (用户名)", "Dispatch to (user)"),
    "detail.files": ("附件 (p 打开)", "Attachments (p open)"),
    "detail.no_files": ("无附件", "No attachments"),
    "detail.remote_file": ("未下载", "not fetched"),
    "prompt.file": ("打开第几个附件", "Open attachment number"),
    "file.opened": ("已打开: {cmd}", "Opened: {cmd}"),
    "work.people": ("在岗人员 {n}/{total}", "On duty {n}/{total}"),
    "work.nobody": ("无人在岗", "Nobody on duty"),
    "work.news": ("新通知", "New notification"),
    "col.user": ("用户", "User"), "col.name": ("姓名", "Name"), "col.role": ("岗位", "Role"), "col.state": ("状态", "State"),
    "col.seen": ("最近上报", "Seen"),
    "person.on_duty": ("在岗", "on duty"), "person.busy": ("忙碌", "busy"), "person.off": ("离岗", "off"),
    # 事件热榜 and 考评 (issue 13), from the runways pane
    "eval.hot_title": ("事件热榜", "Hot list (事件热榜)"),
    "eval.rank_title": ("考评排名 · 按{unit}", "Ranking (考评) by {unit}"),
    "eval.by.district": ("区县", "district"), "eval.by.street": ("街镇", "street"),
    "eval.by.department": ("部门", "department"),
    "eval.scope": ("范围", "scope"), "eval.period": ("期间", "period"),
    "eval.period.24h": ("近24小时", "last 24 h"), "eval.period.7d": ("近7天", "last 7 days"),
    "eval.period.30d": ("近30天", "last 30 days"),
    "eval.keys_hot": ("p 切换期间  k 考评排名  Enter 查看事件  Esc 返回",
                      "p period  k ranking  Enter open event  Esc back"),
    "eval.keys_rank": ("p 切换期间  b 切换区县/街镇/部门  h 事件热榜  Esc 返回",
                       "p period  b district/street/department  h hot list  Esc back"),
    "eval.hot.reported": ("最多上报 (次)", "Most reported (reports)"),
    "eval.hot.open": ("最久未结 (时长)", "Open longest (time)"),
    "eval.hot.escalated": ("督办最高 (级)", "Most escalated (levels)"),
    "eval.hot.supervised": ("督办最多 (次)", "Most supervised (times)"),
    "eval.none": ("无", "none"),
    "eval.empty": ("期间内无事件", "No events in the period"),
    "eval.col.pos": ("#", "#"), "eval.col.unit": ("名称", "Name"), "eval.col.events": ("事件", "Events"),
    "eval.col.response": ("响应(分)", "Resp min"), "eval.col.overdue": ("超时率%", "Overdue%"),
    "eval.col.closure": ("办结率%", "Closed%"), "eval.col.rework": ("返工率%", "Rework%"),
    "eval.col.satisfaction": ("满意率%", "Satisf%"), "eval.col.score": ("得分", "Score"),
    "eval.col.colour": ("色", "Col"), "eval.col.number": ("编号", "Number"), "eval.col.title": ("标题", "Title"),
    "eval.col.category": ("类别", "Category"), "eval.col.place": ("位置", "Place"),
    "eval.col.status": ("状态", "Status"), "eval.col.value": ("值", "Value"),
    # Refusals by their stable code (errors.REFUSAL_CODES): the server's reason is English, its code is not.
    "refusal.bad_input": ("输入有误或超出范围", "bad input"),
    "refusal.unknown_code": ("代码不存在 (区划、类别或部门)", "unknown code"),
    "refusal.illegal_transition": ("当前状态不允许此操作", "not allowed in the current state"),
    "refusal.note_required": ("此操作需要填写说明或理由", "a note or reason is required"),
    "refusal.permission_denied": ("当前岗位或层级无此权限", "your role or tier may not do this"),
    "refusal.not_in_jurisdiction": ("不在本辖区内 (或不存在)", "not in your jurisdiction"),
    "refusal.owned_elsewhere": ("该事件由下级负责处置: 请督办或备注", "another tier owns this event: supervise or comment"),
    "refusal.rate_limited": ("被拒次数过多, 请一分钟后再试", "too many refused requests; retry in a minute"),
    "refusal.store_unavailable": ("服务器暂时无法写入, 稍后自动重试", "the server cannot write now; retried later"),
    "refusal.internal_error": ("服务器内部错误", "server internal error"),
    "refusal.unreachable": ("无法连接服务器", "server unreachable"),
    "refusal.refused": ("被拒绝", "refused"),
    "supervise.prompt_ref": ("督办: 事件编号 督办要求 (如: 0108-20261118-00001 请30分钟内到场)",
                             "Supervise: NUMBER NOTE (e.g. 0108-20261118-00001 on scene within 30 min)"),
    "supervise.prompt_note": ("督办 {n}: 请输入督办要求 (发给负责处置的一级)", "Supervise {n}: what the owning tier must do"),
    "supervise.done": ("已督办: {what}", "Supervised: {what}"),
    "cmd.eval_usage": ("用法: hot [期间]  或  rank [district|street|department] [期间] (期间如 24h 7d 30d), 不识别: {w}",
                       "usage: hot [PERIOD]  or  rank [district|street|department] [PERIOD] (e.g. 24h 7d 30d); "
                       "not understood: {w}"),
}

# Key descriptions shown in help, the footer and the command palette.
_KEYS: dict[str, tuple[str, str]] = {
    "quit": ("退出", "Quit"), "help": ("帮助", "Help"), "command": ("命令", "Command"),
    "palette": ("命令面板", "Palette"), "filter": ("筛选", "Filter"), "focus_next": ("下一窗格", "Next pane"),
    "focus_prev": ("上一窗格", "Previous pane"), "pane_events": ("事件窗格", "Events pane"),
    "pane_map": ("地图窗格", "Map pane"), "pane_runways": ("跑道窗格", "Runways pane"),
    "pane_directives": ("政令窗格", "Directives pane"), "compose": ("起草政令", "Compose directive"),
    "back": ("返回", "Back"), "open": ("打开", "Open"), "drill": ("下钻", "Drill down"), "up": ("上一级", "Up a level"),
    "lang": ("切换语言", "Switch language"), "contrast": ("高对比度", "High contrast"),
    "refresh": ("刷新", "Refresh"), "locate": ("在地图上定位", "Show on map"),
    "receipts": ("查看回执", "Receipts"), "pick": ("选择", "Pick"), "send": ("发送", "Send"),
    "dismiss": ("清除提示", "Dismiss notices"), "my_work": ("我的工作与收件箱", "My work and inbox"), "supervise": ("督办事件", "Supervise an event"), "group": ("展开/收起同组", "Expand group"), "hot_list": ("事件热榜", "Hot list"), "ranking": ("考评排名", "Ranking"),
    "period": ("切换期间", "Period"), "unit": ("切换单位", "Unit"), "interrupt": ("立即退出 (演示: 停止全部服务)", "Quit now (demo: stop all servers)"),
}

LANGS = ("zh", "en")
# What a reason names: quoted input ('NOPE-1'), event and directive numbers, jurisdiction codes, states.
_REF = re.compile(r"'([^'\s]{1,40})'|\b(\d{4,6}-\d{8}-\d{5}|ZL-\d{4}-\d{8}-\d{4,5}|\d{6,12})\b"
                  r"|\(([\u4e00-\u9fff]{1,12})\)")


def _references(reason: str, limit: int = 3) -> list[str]:
    out: list[str] = []
    for quoted, number, chinese in _REF.findall(reason or ""):
        ref = quoted or number or chinese
        if ref and ref not in out:
            out.append(ref)
    return out[:limit]


def default_lang(explicit: str | None = None) -> str:
    lang = (explicit or os.environ.get("CQGOV_LANG") or "zh").lower()
    return "en" if lang.startswith("en") else "zh"


class Strings:
    def __init__(self, lang: str = "zh"):
        self.lang = default_lang(lang)
        self._i = 1 if self.lang == "en" else 0

    def __call__(self, key: str, **kw) -> str:
        pair = _STRINGS.get(key) or _KEYS.get(key)
        text = pair[self._i] if pair else key
        return text.format(**kw) if kw else text

    def key(self, binding_id: str) -> str:
        pair = _KEYS.get(binding_id)
        return pair[self._i] if pair else binding_id

    def has_key(self, binding_id: str | None) -> bool:
        return binding_id in _KEYS

    def status(self, value: str) -> str:
        from cqgov_tui.domain.entities import Status

        try:
            st = Status(value)
        except ValueError:
            return value
        return st.zh if self.lang == "zh" else st.value.replace("_", " ")

    def colour(self, value: str) -> str:
        from cqgov_tui.domain.colour import Colour

        try:
            c = Colour(value)
        except ValueError:
            return value
        return c.zh_level if self.lang == "zh" else c.value

    def refusal(self, code: str | None, reason: str = "") -> str:
        """A refusal in the console's language: the phrase for its code (in English with the server's
        reason after it); a code this build does not know keeps the reason."""
        pair = _STRINGS.get(f"refusal.{code}") if code and code != "refused" else None
        if pair is None:
            return reason or self("refusal.refused")
        phrase = pair[self._i]
        if self.lang == "en":
            return f"{phrase}: {reason}" if reason else phrase
        refs = _references(reason)  # the numbers and codes the reason names are the same in every language
        return f"{phrase} ({' '.join(refs)})" if refs else phrase

    def refused(self, code: str | None, reason: str = "") -> str:
        """"被拒绝: …" / "Refused: …" for a refusal (an ``Outcome`` or a ``Rejection``'s code and reason)."""
        return self("action.refused", why=self.refusal(code, reason))

    def error(self, exc: BaseException) -> str:
        """An error raised in the console (a bad ``:open`` reference, a drill) in the console's language."""
        from cqgov_tui.errors import refusal_code

        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return self.refusal(refusal_code(exc), text) if refusal_code(exc) != "internal_error" else text

    def action(self, name: str, zh: str) -> str:
        return zh if self.lang == "zh" else name.replace("_", " ")


def all_keys() -> list[str]:
    """Every string key (tests check both languages have text for each)."""
    return list(_STRINGS) + list(_KEYS)
