"""SPKIPins and spki_pin."""

from __future__ import annotations

import ssl
import subprocess

import pytest
from ocsp_responder import OPENSSL
from verifier_pki import Chain, client_context, make_chain, peer

from tlstiming.verifiers import SPKIPins, spki_pin


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain()


@pytest.fixture(scope="module")
def context(chain: Chain) -> ssl.SSLContext:
    return client_context(chain.root)


def test_spki_pin_accepts_certificates_der_and_pem(chain: Chain) -> None:
    pin = spki_pin(chain.leaf.cert)
    assert spki_pin(chain.leaf.der) == pin
    assert spki_pin(chain.leaf.pem) == pin
    assert len(pin) == 44
    assert pin != spki_pin(chain.intermediate.cert)


@pytest.mark.openssl
def test_spki_pin_matches_the_openssl_recipe(chain: Chain) -> None:
    if OPENSSL is None:
        pytest.skip("the openssl command-line tool is not installed (CI installs it)")

    def run(args: list[str], data: bytes) -> bytes:
        return subprocess.run([OPENSSL, *args], input=data, capture_output=True, check=True).stdout

    public = run(["x509", "-pubkey", "-noout"], chain.leaf.pem)
    der = run(["pkey", "-pubin", "-outform", "der"], public)
    digest = run(["dgst", "-sha256", "-binary"], der)
    assert run(["base64"], digest).decode().strip() == spki_pin(chain.leaf.cert)


def test_a_leaf_pin_matches(chain: Chain, context: ssl.SSLContext) -> None:
    verdict = SPKIPins([spki_pin(chain.leaf.cert)])(peer(chain.sent, context))
    assert verdict is not None
    assert verdict.ok
    assert not verdict.soft_failed
    assert verdict.details == {
        "matched": "primary",
        "pin": spki_pin(chain.leaf.cert),
        "position": 0,
        "presented": 2,
    }


def test_an_intermediate_pin_matches_unless_leaf_only(
    chain: Chain, context: ssl.SSLContext
) -> None:
    pins = [spki_pin(chain.intermediate.cert)]
    verdict = SPKIPins(pins)(peer(chain.sent, context))
    assert verdict is not None
    assert verdict.ok
    assert verdict.details["position"] == 1
    leaf_only = SPKIPins(pins, leaf_only=True)(peer(chain.sent, context))
    assert leaf_only is not None
    assert not leaf_only.ok
    assert leaf_only.reason == (
        f'no pinned key in the leaf; presented pin-sha256="{spki_pin(chain.leaf.cert)}"'
    )


def test_a_mismatch_names_every_presented_key(chain: Chain, context: ssl.SSLContext) -> None:
    other = make_chain()
    verdict = SPKIPins([spki_pin(other.leaf.cert)])(peer(chain.sent, context))
    assert verdict is not None
    assert not verdict.ok
    assert verdict.reason == (
        "no pinned key in the chain; presented "
        f'pin-sha256="{spki_pin(chain.leaf.cert)}", '
        f'pin-sha256="{spki_pin(chain.intermediate.cert)}"'
    )
    assert verdict.details["matched"] is None


def test_a_backup_pin_is_reported_as_such(chain: Chain, context: ssl.SSLContext) -> None:
    other = make_chain()
    pins = SPKIPins([spki_pin(other.leaf.cert)], backup=[spki_pin(chain.leaf.cert)])
    verdict = pins(peer(chain.sent, context))
    assert verdict is not None
    assert verdict.ok
    assert verdict.details["matched"] == "backup"


def test_a_resumed_session_that_does_not_match_soft_fails(
    chain: Chain, context: ssl.SSLContext
) -> None:
    """A resumed session presents only its leaf; the intermediate's pin cannot be seen."""
    pins = SPKIPins([spki_pin(chain.intermediate.cert)])
    verdict = pins(peer(chain.sent[:1], context, resumed=True))
    assert verdict is not None
    assert verdict.ok
    assert verdict.soft_failed
    assert str(verdict.reason).startswith("resumed session: no pinned key")


def test_no_certificate_rejects(chain: Chain, context: ssl.SSLContext) -> None:
    verdict = SPKIPins([spki_pin(chain.leaf.cert)])(peer((), context))
    assert verdict is not None
    assert not verdict.ok
    assert verdict.reason == "no certificate presented"


@pytest.mark.parametrize(
    ("pins", "backup", "error"),
    [
        (["not base64!"], [], ValueError),
        (["AAAA"], [], ValueError),  # base64, but not 32 bytes
        ([], [], ValueError),
        ("a single string", [], TypeError),
        ([], ["x"], ValueError),
    ],
)
def test_pins_are_validated(pins: list[str], backup: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        SPKIPins(pins, backup=backup)


def test_backup_pins_alone_are_enough(chain: Chain, context: ssl.SSLContext) -> None:
    verdict = SPKIPins([], backup=[spki_pin(chain.leaf.cert)])(peer(chain.sent, context))
    assert verdict is not None
    assert verdict.ok
