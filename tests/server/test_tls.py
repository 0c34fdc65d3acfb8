"""TLS: server.http.ssl_certfile/ssl_keyfile serve HTTPS; the certificate is self-signed, made in the test."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server import main as server_main
from server import ssl_context
from stt.http.app import create_app
from tests.bad_inputs import tone, wav_bytes
from tests.conftest import AUTH, make_settings
from tests.helpers import FakeEngine, manifest, wer
from tests.serverproc import ServerProcess


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


async def test_https_with_a_self_signed_certificate(tmp_path: Path, aiohttp_server: Any) -> None:
    certfile, keyfile = self_signed(tmp_path)
    settings = make_settings(http={"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)})
    server = await aiohttp_server(create_app(settings, engine=FakeEngine()), ssl=ssl_context(settings))
    url = f"https://127.0.0.1:{server.port}"
    trusted = ssl.create_default_context(cafile=str(certfile))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/stt", data=wav_bytes(tone()), headers=AUTH, ssl=trusted) as resp:
            assert resp.status == 200
            assert (await resp.json())["text"] == "hello world"
        # A client that does not trust the certificate refuses it: it really is TLS with this certificate.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"{url}/ping", headers=AUTH)
        # Plain HTTP on the TLS port gets no answer.
        with pytest.raises(aiohttp.ClientError):
            await session.get(f"http://127.0.0.1:{server.port}/ping", headers=AUTH)


@pytest.mark.model
async def test_real_server_serves_https(tmp_path: Path) -> None:
    certfile, keyfile = self_signed(tmp_path)
    clip = manifest()["en/librispeech/1089-134686-0003.flac"]
    http = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}
    trusted = ssl.create_default_context(cafile=str(certfile))
    with ServerProcess({"asr": {"model": "tiny.en", "threads": 2}, "server": {"http": http}}, tmp_path) as server:
        assert server.url.startswith("https://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/stt", data=clip.path.read_bytes(), headers=AUTH,
                                    ssl=trusted) as resp:
                assert resp.status == 200
                assert wer(clip.transcript, (await resp.json())["text"]) < 0.35


def test_missing_certificate_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"server": {"http": {"ssl_certfile": "/nonexistent/cert.pem", '
                      '"ssl_keyfile": "/nonexistent/key.pem", "allowed_tokens": ["x"]}}}')
    assert server_main(["--config", str(config)]) == 2
    assert "ssl_certfile" in capsys.readouterr().err
