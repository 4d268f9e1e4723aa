"""Which DUIS web service takes which command variant, and reading a request's variant.

DUIS routes a request by its command variant: the Send Command Service takes CV 1, 3, 5 and 7,
the Non-Device Service CV 2, 6 and 8 (so 11.1 and 11.4), the Transform Service CV 4 (answered
I0 with the pre-command). A request on another service's URL is answered E13, "Invalid Request
Type for URL" (DUIS's response code table gives the example of a Non-Device request sent to the
Transform URL), in a signed response, as every other DUIS refusal.
"""

from __future__ import annotations

from enum import StrEnum

from lxml import etree

from bench.domain import CommandVariant

# How far into a request its header's CommandVariant may lie: the header comes first, so a few
# hundred bytes in; a document that hides it deeper is left to the shim, which refuses it.
HEADER_SCAN_BYTES = 64 * 1024
_CHUNK = 2048


class DuisService(StrEnum):
    """The three DUIS web services, by the last part of their DCC Boxed URL."""

    SEND_COMMAND = "serviceS"
    NON_DEVICE = "serviceD"
    TRANSFORM = "serviceT"

    @property
    def path(self) -> str:
        return f"/api/v1/{self.value}"

    @property
    def command_variants(self) -> frozenset[CommandVariant]:
        return _VARIANTS[self]

    @classmethod
    def for_path(cls, path: str) -> DuisService | None:
        for service in cls:
            if service.path == path:
                return service
        return None

    @classmethod
    def for_variant(cls, variant: CommandVariant) -> DuisService:
        for service in cls:
            if variant in service.command_variants:
                return service
        raise ValueError(f"no DUIS service takes command variant {variant}")  # every CV has one


_VARIANTS: dict[DuisService, frozenset[CommandVariant]] = {
    DuisService.SEND_COMMAND: frozenset({
        CommandVariant.NON_CRITICAL_SEND,
        CommandVariant.NON_CRITICAL_SEND_AND_RETURN,
        CommandVariant.SIGNED_PRE_COMMAND_SEND,
        CommandVariant.SIGNED_PRE_COMMAND_SEND_AND_RETURN,
    }),
    DuisService.NON_DEVICE: frozenset({
        CommandVariant.NON_CRITICAL_RETURN,
        CommandVariant.SIGNED_PRE_COMMAND_RETURN,
        CommandVariant.NON_DEVICE,
    }),
    DuisService.TRANSFORM: frozenset({CommandVariant.CRITICAL_TRANSFORM}),
}


def command_variant_of(xml: bytes) -> CommandVariant | None:
    """The CommandVariant of a request's header, read by an incremental parse that stops there.

    None when the document does not show one in its first HEADER_SCAN_BYTES (not XML, no
    header, a value that is no variant): the shim reads the whole request and refuses it. The
    parser never loads a DTD, resolves an entity or touches the network.
    """
    parser = etree.XMLPullParser(
        events=("end",), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        for start in range(0, min(len(xml), HEADER_SCAN_BYTES), _CHUNK):
            parser.feed(xml[start : start + _CHUNK])
            for _event, element in parser.read_events():
                if not isinstance(element.tag, str) or etree.QName(element).localname != (
                    "CommandVariant"
                ):
                    continue
                parent = element.getparent()
                if parent is None or etree.QName(parent).localname != "Header":
                    return None
                try:
                    return CommandVariant(int((element.text or "").strip()))
                except ValueError:
                    return None
    except etree.XMLSyntaxError:
        return None
    return None
