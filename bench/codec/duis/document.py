"""The frame every DUIS document shares: root and schemaVersion, element order, simple content.

Requests, responses and alerts read and write their bodies with these functions, so each reader
refuses foreign, misplaced and repeated elements the same way.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from lxml import etree

from bench.codec.duis.safe_xml import DS_NS, SR_NS, parse_document, sr
from bench.errors import DecodeError

SCHEMA_VERSION = "5.4"


def elements(parent: etree._Element) -> list[etree._Element]:
    """Element children only (comments and processing instructions are skipped)."""
    return list(parent.iterchildren(etree.Element))


def text_of(element: etree._Element) -> str:
    """Simple content of an element: its text and the text around any comments inside it."""
    if not len(element):
        return element.text or ""
    if elements(element):
        raise DecodeError("DUIS", local(element), None, "expected text, found child elements")
    # only comments / processing instructions inside: their own text is not content
    return (element.text or "") + "".join(child.tail or "" for child in element)


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


def sr_name(element: etree._Element) -> str:
    """The local name of a DUIS (sr:) element; any other element keeps its full Clark name, so a
    foreign element never passes for a DUIS one."""
    tag = str(element.tag)
    return tag[len(SR_NS) + 2:] if tag.startswith(f"{{{SR_NS}}}") else tag


def expect(element: etree._Element, name: str, namespace: str = SR_NS) -> None:
    if element.tag != f"{{{namespace}}}{name}":
        raise DecodeError("DUIS", name, None, f"found {element.tag!r} where {name} belongs")


def root_of(xml: bytes | etree._Element) -> etree._Element:
    return xml if isinstance(xml, etree._Element) else parse_document(xml)


def check_root(root: etree._Element, name: str) -> list[etree._Element]:
    """Check the root element and schemaVersion; return its element children."""
    if not isinstance(root.tag, str) or root.tag != sr(name):
        raise DecodeError("DUIS", "root", None, f"expected sr:{name}, found {root.tag!r}")
    version = root.get("schemaVersion")
    try:
        Decimal(version or "")
    except InvalidOperation:
        raise DecodeError("DUIS", "schemaVersion", None, f"{version!r} is not a decimal") from None
    children = elements(root)
    if len(children) < 2:
        raise DecodeError("DUIS", name, None, "expected Header and Body")
    expect(children[0], "Header")
    expect(children[1], "Body")
    rest = children[2:]
    if len(rest) > 1 or (rest and rest[0].tag != f"{{{DS_NS}}}Signature"):
        raise DecodeError("DUIS", name, None, "only a ds:Signature may follow the Body")
    return children


def sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, sr(name))
    if text is not None:
        child.text = text
    return child


def new_document(name: str) -> etree._Element:
    root = etree.Element(sr(name), nsmap={"sr": SR_NS})
    root.set("schemaVersion", SCHEMA_VERSION)
    return root
