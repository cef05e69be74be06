"""The local PKI: a CA and certificates the apiserver and clients accept."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from synthloop.local.kube import KubeClient
from synthloop.local.kubeconfig import write_cert_kubeconfig
from synthloop.local.pki import ensure_pki


def test_pki_is_signed_by_its_ca_and_reused(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(pki.cert("apiserver").read_bytes())
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    admin = x509.load_pem_x509_certificate(pki.cert("admin").read_bytes())
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    before = pki.ca_cert.read_bytes()
    assert ensure_pki(tmp_path / "pki").ca_cert.read_bytes() == before  # not regenerated


def test_kubeconfig_round_trips_into_the_client(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    path = write_cert_kubeconfig(tmp_path / "kc", server="https://127.0.0.1:1", ca_cert=pki.ca_cert,
                                 client_cert=pki.cert("admin"), client_key=pki.key("admin"))
    client = KubeClient.from_kubeconfig(path)
    assert client.server == "https://127.0.0.1:1"
    assert (path.stat().st_mode & 0o777) == 0o600
