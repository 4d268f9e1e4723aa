"""A test's message sequence, User -> DCC -> hub or S1SP -> meter and back, from the evidence.

Built only from what the run recorded in the test's window: the DCC's audit (a User's request
and the DCC's answer), the GBCS messages that crossed the DCC/hub seam, the HAN capture (the
hub and each SMETS2+ meter), the DLMS capture (the S1SP and each SMETS1 meter) and the mailboxes
(what the DCC delivered to each User). Repeated exchanges (image blocks) are drawn once, with
their count, so a diagram stays readable whatever the image size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

USER, DCC, HUB, S1SP = "User", "DCC", "Hub", "S1SP"
MAX_ROWS = 80  # a longer sequence is cut; the attachments hold all of it
_VOLATILE = re.compile(r"\d+")
_SKIPPED_HAN = {"aps_ack", "default_response"}


@dataclass
class Message:
    at: float
    source: str
    target: str
    label: str
    kind: str = "duis"  # duis | gbcs | ota | dlms
    count: int = 1

    @property
    def key(self) -> tuple[str, str, str]:
        return self.source, self.target, _VOLATILE.sub("#", self.label)


@dataclass
class SequenceDiagram:
    lanes: list[str]
    messages: list[Message]
    cut: int = 0  # messages left out past MAX_ROWS
    geometry: dict[str, Any] = field(default_factory=dict)


def collapse(messages: Iterable[Message]) -> list[Message]:
    """A run of the same exchange (A B A B ...) becomes A xN, B xN."""
    out: list[Message] = []
    for message in messages:
        if out and message.key == out[-1].key:
            out[-1].count += 1
        elif len(out) >= 2 and message.key == out[-2].key and out[-1].kind == message.kind:
            out[-2].count += 1
        else:
            out.append(message)
    return out


def _han_label(record: Mapping[str, Any]) -> str | None:
    command = str(record.get("command", ""))
    if command in _SKIPPED_HAN or "error" in record:
        return None
    if command == "query_next_image_request":
        return None  # a meter's periodic question: drawn only when the answer offers an image
    if command == "query_next_image_response" and (record.get("ota") or {}).get("status", 0):
        return None
    if command == "transfer_data":
        gbcs = record.get("gbcs")
        if not gbcs:
            return None  # the tunnel's GET and acknowledgements: no message of their own
        name = gbcs.get("message_name") or f"0x{gbcs['message_code']:04X}"
        if "block_number" in gbcs:
            return f"GBCS {name} (GBT block)"
        return f"GBCS {name}"
    return command.replace("_", " ").capitalize()


def build(window: tuple[float, float], devices: Mapping[str, str], parties: Mapping[str, str],
          audit: Sequence[Mapping[str, Any]], mailbox: Sequence[Mapping[str, Any]],
          han: Sequence[Mapping[str, Any]], dlms: Sequence[Mapping[str, Any]],
          smets1: Iterable[str] = (), focus: Iterable[str] = ()) -> SequenceDiagram:
    """devices: EUI -> role; parties: EUI -> party name; audit, mailbox: their JSON entries with
    `at` as epoch seconds; han, dlms: decoded capture records (bench.codec.capture_decode).
    focus: the EUIs of the devices the test used (others' traffic in the window is left out;
    none given: every device's)."""
    started, finished = window
    smets1 = set(smets1)
    focus = set(focus) | {str(e.get("device")) for e in audit if e.get("device")}
    if focus:
        devices = {eui: role for eui, role in devices.items() if eui in focus}

    def inside(at: float) -> bool:
        return started <= at <= finished

    def party(eui: object) -> str:
        return parties.get(str(eui), str(eui)) if eui else "?"

    messages: list[Message] = []
    for entry in audit:
        if not inside(entry["at"]) or entry.get("decision") == "event":
            continue
        who = party(entry.get("originator"))
        target = devices.get(str(entry.get("device")), str(entry.get("device") or "DCC"))
        messages.append(Message(entry["at"], USER, DCC,
                                f"{who}: {entry.get('service_reference')} for {target}"))
        if entry.get("response_code"):
            messages.append(Message(entry["at"], DCC, USER,
                                    f"{entry.get('response_code')} {entry.get('decision')}"))
    for entry in mailbox:
        if inside(entry["at"]):
            messages.append(Message(entry["at"], DCC, USER,
                                    f"to {party(entry.get('party'))}: {entry.get('kind')} "
                                    f"{entry.get('code')}"))
    for record in han:
        if not inside(record["time"]):
            continue
        label = _han_label(record)
        src, dst = record.get("src"), record.get("dst")
        meter = devices.get(str(src)) or devices.get(str(dst))
        if label is None or meter is None:
            continue
        to_meter = devices.get(str(dst)) is not None
        kind = "gbcs" if label.startswith("GBCS") else "ota"
        if to_meter:
            if kind == "gbcs":
                messages.append(Message(record["time"], DCC, HUB, label, kind))
            messages.append(Message(record["time"], HUB, meter, label, kind))
        else:
            messages.append(Message(record["time"], meter, HUB, label, kind))
            if kind == "gbcs":
                messages.append(Message(record["time"], HUB, DCC, label, kind))
    for record in dlms:
        if not inside(record["time"]) or "error" in record:
            continue
        meter = devices.get(str(record.get("device")))
        text = (record.get("apdu") or {}).get("text") or record.get("summary")
        if meter is None or not text:
            continue
        label = f"DLMS {text}"[:90]
        if record.get("direction") == "to-meter":
            messages.append(Message(record["time"], S1SP, meter, label, "dlms"))
        else:
            messages.append(Message(record["time"], meter, S1SP, label, "dlms"))
    messages.sort(key=lambda m: m.at)
    messages = collapse(messages)
    cut = max(0, len(messages) - MAX_ROWS)
    messages = messages[:MAX_ROWS]
    used = {m.source for m in messages} | {m.target for m in messages}
    meters = [role for role in dict.fromkeys(devices.values()) if role in used]
    lanes = [lane for lane in (USER, DCC, HUB, S1SP) if lane in used or lane in (USER, DCC)]
    if any(role in smets1 for role in meters) and S1SP not in lanes:
        lanes.append(S1SP)
    lanes += meters
    return SequenceDiagram(lanes, messages, cut, _geometry(lanes, messages))


def _geometry(lanes: list[str], messages: list[Message], width: int = 1180) -> dict[str, Any]:
    """Coordinates for the template's SVG: lane x, arrow rows, label room in characters."""
    left, right, top, row = 130, 60, 40, 24
    step = (width - left - right) / max(1, len(lanes) - 1) if len(lanes) > 1 else 0
    x = {lane: round(left + i * step) for i, lane in enumerate(lanes)}
    arrows = []
    for i, message in enumerate(messages):
        x1, x2 = x[message.source], x[message.target]
        room = max(8, int(abs(x2 - x1) / 6.2))  # characters of 11 px text between the lanes
        text = message.label + (f" \u00d7{message.count}" if message.count > 1 else "")
        arrows.append({"x1": x1, "x2": x2 - 6 if x2 > x1 else x2 + 6, "y": top + 18 + i * row,
                       "text": text if len(text) <= room else text[:room - 1] + "\u2026",
                       "title": text, "kind": message.kind, "mid": round((x1 + x2) / 2),
                       "at": message.at})
    return {"width": width, "height": top + 30 + len(messages) * row, "lanes": x,
            "arrows": arrows, "top": top}
