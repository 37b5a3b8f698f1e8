"""The robustness part of a case's annex entry: the attack, the liveness monitor's strip and
figures, and the minimised input that `harness replay` sends again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .charts import MonitorStrip, monitor_strip
from .i18n import N_
from .view_cases import Gettext, mapping, number, text

_STATUS_LABELS = {"o": N_("answered right"), "w": N_("answered wrong"), "m": N_("no answer")}


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class RobustnessView:
    facts: list[Fact]  # the attack and what the monitor measured
    strip: MonitorStrip | None
    problems: list[str]
    replay_kind: str
    replay_hex: list[str]
    replay_seed: str
    minimised: bool  # the input was shrunk (False: the first input that broke the device)
    preceding_hex: list[str]  # the inputs sent just before the first that broke it, one line per connection


def _counts(block: Any) -> str:
    c = mapping(block)
    return f"{int(number(c.get('ok')) or 0)} / {int(number(c.get('wrong')) or 0)} / {int(number(c.get('missing')) or 0)}"


def robustness_view(evidence: Mapping[str, Any], _: Gettext) -> RobustnessView | None:
    attack, monitor, replay = (mapping(evidence.get(k)) for k in ("attack", "monitor", "replay"))
    if not (attack or monitor or replay):
        return None
    facts: list[Fact] = []
    rate = number(attack.get("rate_per_s"))
    if rate is not None:
        facts.append(Fact(_("Rate achieved"), f"{rate:,.0f}/s"))
    for key, label in (("sent", N_("Sent")), ("tried", N_("Inputs tried")), ("replies", N_("Answers")),
                       ("duration_s", N_("Duration (s)"))):
        if attack.get(key) is not None:
            facts.append(Fact(_(label), text(attack.get(key))))
    if number(attack.get("restarts")):
        facts.append(Fact(_("Device restarts (the profile's restart command)"), text(attack.get("restarts"))))
    if monitor:
        facts.append(Fact(_("Monitor reads right / wrong / unanswered, during the attack"),
                          _counts(mapping(monitor.get("counts")).get("during"))))
        facts.append(Fact(_("... after the attack"), _counts(mapping(monitor.get("counts")).get("after"))))
        recovered = number(monitor.get("recovered_after_ms"))
        limit = number(monitor.get("recovery_limit_ms"))
        facts.append(Fact(_("Recovery time"), (f"{recovered:.0f} ms" if recovered is not None else _("not recovered"))
                          + (f" ({_('limit')} {limit:.0f} ms)" if limit is not None else "")))
        interval = number(monitor.get("interval_ms"))
        if interval is not None:
            facts.append(Fact(_("Monitor interval"), f"{interval:g} ms"))
    for note in attack.get("notes") or []:
        facts.append(Fact(_("Note"), text(note)))
    labels = {code: _(label) for code, label in _STATUS_LABELS.items()}
    return RobustnessView(
        facts=facts,
        strip=monitor_strip(monitor, labels) if monitor else None,
        problems=[text(p) for p in monitor.get("problems") or []],
        replay_kind=text(replay.get("kind")) or text(replay.get("problem")),
        replay_hex=[text(h) for h in replay.get("frames") or []],
        replay_seed=text(replay.get("seed")),
        minimised=attack.get("minimised") is not False,
        preceding_hex=[" ".join(text(h) for h in connection) for connection in replay.get("preceding") or []
                       if isinstance(connection, list)],
    )
