"""`bench serve` brings the rig up behind the DUIS gateway: a User's request over HTTP reaches
the rig's shim and its meters."""

from __future__ import annotations

import sys
from pathlib import Path

from dcc.support import ESME_A0

from bench.gateway.endpoints import DuisService

from .http import post, response_code
from .serve import serving

BENCH = [sys.executable, "-m", "bench"]


def test_serve_answers_duis_on_the_embedded_rig_from_an_empty_directory(
    tmp_path: Path, requests
) -> None:
    empty = tmp_path / "lab-pc"
    empty.mkdir()
    with serving(BENCH, empty) as status:
        gateway = status["gateway"]
        assert gateway["duis"].startswith("http://127.0.0.1:")
        assert set(gateway["services"]) == {s.value for s in DuisService}
        code, content_type, body = post(gateway["services"]["serviceD"],
                                        requests.update("rsa-1", [ESME_A0]))
        assert (code, content_type, response_code(body)) == (200, "application/xml", "I99")
        code, _, body = post(gateway["services"]["serviceS"], requests.read("supplier-a", ESME_A0))
        assert response_code(body) == "I99"
    assert sorted(p.name for p in empty.iterdir()) == ["results", "run"]
