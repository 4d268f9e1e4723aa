"""The report pages' templates (Jinja2, autoescaped) and the filters they share.

Every HTML page the bench writes is rendered from bench/report/templates/, shipped in the wheel
as package data; values are escaped by the template engine, never by hand.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from bench.report.evidence import clock


def script_json(value: Any) -> Markup:
    """JSON safe inside <script>: no `</` or `<!--` can close or comment out the element."""
    text = json.dumps(value).replace("</", "<\\/").replace("<!--", "<\\!--")
    return Markup(text)  # noqa: S704 - the JSON above cannot leave its <script> element


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("bench.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["script_json"] = script_json
    env.filters["clock"] = clock
    return env


def render_page(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
