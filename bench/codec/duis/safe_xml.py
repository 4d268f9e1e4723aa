"""Parsing DUIS XML from untrusted Users safely, and validating what the bench writes.

A DUIS document arrives from a party the DCC does not trust yet, so the parser refuses DTDs
(hence every entity: billion laughs, external entities), never touches the network, and checks
the size before parsing. libxml2 caps one text node at 10,000,000 characters unless huge-tree
mode is on; a full-size 11.1 image (10,240,000 bytes, about 13.7 MB of base64) needs more, so
documents above that cap are parsed in huge-tree mode only after the size limit and the no-DTD
check have passed (huge-tree mode without a DTD only lifts the text and depth caps).

Parsing is linear in the document's size, but what follows may not be: libxml2's inclusive C14N,
which XML-DSig verification runs over the whole document before it can tell the digest is wrong,
costs time quadratic in the namespaces in scope of each element (8,000 `xmlns:nN` declarations on
the root: about a minute of CPU for an unsigned request). A DUIS document declares a handful
(sr, ds, xsi, ra), so a document declaring more than `MAX_NAMESPACE_DECLARATIONS` is refused here,
before anyone spends work on it.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from lxml import etree

from bench.errors import ConfigError, DecodeError

SR_NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
RA_NS = "http://www.dccinterface.co.uk/ResponseAndAlert"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XS_NS = "http://www.w3.org/2001/XMLSchema"

# Largest image (10,240,000 bytes as base64) + the largest device list (1,199,999 chars) + slack.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
# DUIS documents declare 1-4 namespaces; C14N work grows with the square of this bound.
MAX_NAMESPACE_DECLARATIONS = 32
_LIBXML_TEXT_CAP = 10_000_000
_DTD_MARKERS = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def _safe_parser(huge_tree: bool) -> etree.XMLParser:
    """No entities, no network, no DTD; comments and PIs kept so signatures cover them."""
    return etree.XMLParser(
        huge_tree=huge_tree,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


_parser = _safe_parser(huge_tree=False)
_huge_parser = _safe_parser(huge_tree=True)

SCHEMA_ENV = "BENCH_DUIS_SCHEMA"
_CHECKOUT = Path(__file__).resolve().parents[3]
# A development checkout reads the published vectors beside it; an installed bench has none.
_DEVELOPMENT_SCHEMA = _CHECKOUT.parent / "shared" / "vectors" / "duis-schema" / "DUIS Schema V5.4.xsd"
#: What a run says when it validates no DUIS document against the XSD (the schema is not
#: redistributed, so an installed bench starts without it).
XSD_VALIDATION_OFF = (
    "DUIS XSD validation is off (no DUIS schema; documents are still parsed strictly): "
    f"set {SCHEMA_ENV}, or duis_schema = PATH in the rig file, to your "
    "'DUIS Schema V5.4.xsd' to turn it on"
)


def sr(tag: str) -> str:
    """Clark name of a DUIS element: `{namespace}tag`."""
    return f"{{{SR_NS}}}{tag}"


def parse_document(xml: bytes, limit: int = MAX_DOCUMENT_BYTES) -> etree._Element:
    """Parse untrusted XML into its root element; anything unsafe or malformed is a DecodeError."""
    if not isinstance(xml, bytes | bytearray | memoryview):
        raise DecodeError("DUIS", "document", None, f"expected bytes, got {type(xml).__name__}")
    data = bytes(xml)
    if len(data) > limit:
        raise DecodeError(
            "DUIS", "document", None, f"{len(data)} bytes exceeds the {limit}-byte limit"
        )
    marker = _DTD_MARKERS.search(data)
    if marker is not None:
        raise DecodeError("DUIS", "DOCTYPE", marker.start(), "DTDs and entities are not accepted")
    parser = _huge_parser if len(data) > _LIBXML_TEXT_CAP else _parser
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise DecodeError("DUIS", "document", None, f"not well-formed XML: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise DecodeError("DUIS", "document", None, f"not parseable XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        # Reached only by encodings the byte scan cannot read (UTF-16...).
        raise DecodeError("DUIS", "DOCTYPE", None, "DTDs and entities are not accepted")
    _check_namespace_declarations(root)
    return root


def _check_namespace_declarations(root: etree._Element) -> None:
    """Refuse a document declaring more namespaces than any DUIS document needs (a few us)."""
    declarations = etree.iterwalk(root, events=("start-ns",))
    for declared, _declaration in enumerate(declarations, start=1):
        if declared > MAX_NAMESPACE_DECLARATIONS:
            raise DecodeError(
                "DUIS",
                "xmlns",
                None,
                f"more than {MAX_NAMESPACE_DECLARATIONS} namespace declarations",
            )


def schema_path() -> Path | None:
    """Where the DUIS schema is read from: `$BENCH_DUIS_SCHEMA`, else the published vectors beside
    a development checkout; None when there is neither (XSD validation off)."""
    configured = os.environ.get(SCHEMA_ENV)
    if configured:
        return Path(configured)
    return _development_schema(_DEVELOPMENT_SCHEMA)


@cache
def _development_schema(candidate: Path) -> Path | None:
    """`candidate` if this code runs from a checkout that has the published vectors beside it
    (looked up once: the shim asks for every request)."""
    in_checkout = (_CHECKOUT / "pyproject.toml").is_file() and candidate.is_file()
    return candidate if in_checkout else None


@cache
def _load_schema(path: Path) -> etree.XMLSchema:
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        document = etree.parse(str(path), parser)
        # libxml2 silently skips an import whose relative location has spaces ("MMC Schema
        # V5.4.xsd"); absolute file URIs (percent-encoded) load every imported schema.
        for schema_import in document.getroot().iterfind(f"{{{XS_NS}}}import"):
            location = schema_import.get("schemaLocation")
            if location and "://" not in location:
                schema_import.set("schemaLocation", (path.parent / location).resolve().as_uri())
        return etree.XMLSchema(document)
    except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise ConfigError(f"{path}: cannot load the DUIS schema ({exc})") from None


def load_duis_schema(path: Path) -> etree.XMLSchema:
    """The schema at `path`, loaded once per process; ConfigError if it does not load."""
    return _load_schema(path)


def duis_schema() -> etree.XMLSchema | None:
    """The DUIS V5.4 schema, loaded once per process (it imports the MMC and XML-DSig schemas);
    None when none is configured (see `schema_path`)."""
    path = schema_path()
    return None if path is None else _load_schema(path)


def schema_errors(document: bytes | etree._Element) -> list[str]:
    """Every DUIS schema violation of a document (empty list = valid); ConfigError with no schema."""
    root = parse_document(document) if isinstance(document, bytes) else document
    schema = duis_schema()
    if schema is None:
        raise ConfigError(XSD_VALIDATION_OFF)
    if schema.validate(root):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def validate_document(document: bytes | etree._Element) -> None:
    """Raise DecodeError naming the first schema violation, if any."""
    errors = schema_errors(document)
    if errors:
        raise DecodeError("DUIS", "schema", None, errors[0])


def to_bytes(root: etree._Element) -> bytes:
    """Serialise a DUIS document as UTF-8 with an XML declaration."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
