# On-target tests for diag/x509.py: the DER reader (names, serial, validity, basic constraints,
# RSA key), the certificate hash data, and RSA PKCS#1 v1.5 / SHA-256 checks with big-int pow.
# The vectors below were made with the `cryptography` package (tests/signing.py).
import time

from diag import x509
from ota import rsa  # the one RSA check x509 uses

ROOT = '-----BEGIN CERTIFICATE-----\nMIIC+TCCAeGgAwIBAgIUFRaW5R5WVhS3Reo/d/lO5d4vCEwwDQYJKoZIhvcNAQEL\nBQAwLDEUMBIGA1UECgwLYm9ybmUgdGVzdHMxFDASBgNVBAMMC3ZlY3RvciByb290\nMB4XDTI2MTIwMTA5MjA1MVoXDTI3MTIwMjA5MjA1MVowLDEUMBIGA1UECgwLYm9y\nbmUgdGVzdHMxFDASBgNVBAMMC3ZlY3RvciByb290MIIBIjANBgkqhkiG9w0BAQEF\nAAOCAQ8AMIIBCgKCAQEAumHvlcbbhUlo8ENXygAYonBPSxYzULgU1oWYgdft2fDv\nJgA1HsA80yWr/Nqr9mtSkvhzLCFGklfAP0urGmfNx4e94gUv3SqA6Du/t+iN/qC5\nkUtU8v+M094fNKGqSZ2crMS2wmS+JANzrbMxz90Nd3NDoBgd3bQlEo1sK/3YCRlh\nQkeGiyWdj3ZXQ4Q236mhmemqNWIPjATwIOBqKT+hr+4pT/ZdCeRgS1ypwv7qIzTY\nqrKCbzIXPLWNWL6h7Qnwg2zqqgURFepTR9c/c4PrtD+1pbPhAW2FPRuhk0bo0mm4\nJGgTvoHIoTsu0LQRHtn0HZLqxP9h2Yjo8yq2UHl+JwIDAQABoxMwETAPBgNVHRMB\nAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQAhzlpFjbSVWwfNTd9YTexEesan\n4b9Kb74R56hroEvkrpTC0IpDmHUxmLc1WY/cnpuHg9H09pf/1BM7/DDWnLGhWBWk\nf7mDlTyUjWcBPcNvMUAHeCk4kTYPxhFiBwFo0g/IWQEB4+qxKOmCDnrOgf0B2L/5\n0T9FwifnJmAichKexSJxY35HpxQh9d1BMUv2QtxtWeEt0aqMtnp5mFPFJcmsBETx\nA1U+94d1mMgcSdYsdIB+mpELwZuHImexU4Tm/+7pGim4sCjeMd80TRUdVRqa87oG\nxI6oHDMRJRfYOIhuyyDYT4rppb/GzNXLhSOMcYh5kWYGwrsZRsyTlvhsvVR8\n-----END CERTIFICATE-----\n'
LEAF = '-----BEGIN CERTIFICATE-----\nMIIC+TCCAeGgAwIBAgIUFJZMv57mrfPHnUjsavGVETXuDw4wDQYJKoZIhvcNAQEL\nBQAwLDEUMBIGA1UECgwLYm9ybmUgdGVzdHMxFDASBgNVBAMMC3ZlY3RvciByb290\nMB4XDTI2MTIwMTA5MjA1MVoXDTM2MTEyOTA5MjA1MVowLzEUMBIGA1UECgwLYm9y\nbmUgdGVzdHMxFzAVBgNVBAMMDnZlY3RvciBzaWduaW5nMIIBIjANBgkqhkiG9w0B\nAQEFAAOCAQ8AMIIBCgKCAQEAmp3+sgdoPZrSeHsuK5R7QAki6H1vEnC5AnsuzRRx\nCaMvTD3S9lA70PnouFwiVoLWFc5znzNjsnm7e+mFJzsFZycJGsdWIb03Irkh8gKG\nJAC2pxi6Y24sEH3iu6dMxX/MDbxhNYQVyXXXfLOPa6Nfwo3PwDsogS3MRjxQJLsI\nK69Us+LBRXNWQ9fS9SpINEq2jVPAyfKrShLaUz0GJRIgJgt9SXB0lGOf8Gm1pGES\n9XmQO7vnRj3wdtCtAd8EENFryb2pxKj9TiGh5TCuABkihkglBJbtndfsk5NAfPRf\nyUo5dxABUM8WDnEjdcOIPxUCSx59hXw4tkVvKf5zg8wUSQIDAQABoxAwDjAMBgNV\nHRMBAf8EAjAAMA0GCSqGSIb3DQEBCwUAA4IBAQCQyUvJmkiOQHGs9bQ14V65OTIz\nezjZ/4NatO4YIZvClfZw/9Jyga83P4rq01jswaJnOGyafgWJKitI2eWSnZ1FzDAl\nBMRevjYchtfEHElYUMLz7EAPdmHj8NBVdY9q/yauEhYYaoMMjTdOlnLHl5TEM+Zi\nUPdeb1PvyxeRqu3xcxPkO0pI04Z6k6sdips7vsjgjhZzYy7Lr89lWOSYdArVLMgo\nSnsSzeAnVYShHH+Ro+jPWeAmqCXdDhD43jazXuALCEa+B/Q7mUFNHlEZG0AV3Kt6\nLbDJBnWYbTk6kEV6YQgIiq+Ww8fxq4ZAXXEierqvClPHE6FYMrEtEHxeRL9f\n-----END CERTIFICATE-----\n'
OTHER = '-----BEGIN CERTIFICATE-----\nMIIC9zCCAd+gAwIBAgIUTgNwwlJxt430M6KbybfbaX/+1d4wDQYJKoZIhvcNAQEL\nBQAwKzEUMBIGA1UECgwLYm9ybmUgdGVzdHMxEzARBgNVBAMMCm90aGVyIHJvb3Qw\nHhcNMjYxMjAxMDkyMDUxWhcNMjcxMjAyMDkyMDUxWjArMRQwEgYDVQQKDAtib3Ju\nZSB0ZXN0czETMBEGA1UEAwwKb3RoZXIgcm9vdDCCASIwDQYJKoZIhvcNAQEBBQAD\nggEPADCCAQoCggEBAItoOTWFrUawX97hPFApuQ8vBQhy66f4NQ3RTVaCmhSugEC3\n0nHFGYqBvoDReS5aW7Iz2Jt8VO0XRjLoL9U3bPw6wib2lxJUdYb0sCCVx/Y0M2f8\n/66TWrkyaFsfW2lis3m0pcQq/WuCH1+IQyfu7grMZyKO+ixHWaepmNy1SxvSO1l/\nTTWn8KiOGOJ+3oHkBtSo6Ag+lmf4h+A9vyhQLM0EhXlG7gEtGiQYRpwWXlprSM75\nLc24LFfF/RpWNpMxfqd5Jsf3kxpxo7XuRqVs/dkAfSj570FJTr8ar/ZIKZJb8d43\nYkktvmxiGTtGlsw69gdhR7ZNN+mSRclMwyw20UkCAwEAAaMTMBEwDwYDVR0TAQH/\nBAUwAwEB/zANBgkqhkiG9w0BAQsFAAOCAQEALrSoPn/r2L4N8iVt+c4pOGqC9jRg\nyGxtkap9pmull87/PA5/3G5qbVeqpd10Ol8E/gwcRVPbzIAPiODazMqeYDWco+HY\nhtSA7dKRAbPPGqjTqRtiA8ejk/Ov4KYcNlXTFtQF0I075yfBqwws2ZbADUxFC+9P\nyvnqvIRPeLkt5h9QIZDhCCMfETsPpTa3TPhU15qHaIEGIz3E+Z+0H91tSVMn3Cc7\noajC4ZZyUG4rxZ0huVkDG69EPCFIeSvj25DxHprEHZ8CB78gJnhQ36fYwBAnxtn9\n24U54izs8htQM0VNv056YjvfIm750e5jb0R4Oq/hnbYtEoGUOpt5QxOmPA==\n-----END CERTIFICATE-----\n'
LEAF_HASH = {'hashAlgorithm': 'SHA256', 'issuerNameHash': '4844ef4db4a07ed2eb47e389e707a2781930ac465d8a176468af0f2d5d849d31', 'issuerKeyHash': 'd314865c678e53d8f6702b211e519c3ff28a14a8492f29b6954195745e80b79b', 'serialNumber': '14964cbf9ee6adf3c79d48ec6af1951135ee0f0e'}
ROOT_HASH = {'hashAlgorithm': 'SHA256', 'issuerNameHash': '4844ef4db4a07ed2eb47e389e707a2781930ac465d8a176468af0f2d5d849d31', 'issuerKeyHash': 'd314865c678e53d8f6702b211e519c3ff28a14a8492f29b6954195745e80b79b', 'serialNumber': '151696e51e565614b745ea3f77f94ee5de2f084c'}
NOT_BEFORE = 1796116851
NOT_AFTER = 2111563251
MSG_DIGEST = b'\xdb\xf1\xbc\xe8\xc5\xe4\x1b\xe6\xf0\xc1x\x80\xb1\xed03qK8K,"2\xb1\xc7\xb4\xf3\xfd\xa8"\xb6\xce'
MSG_SIG = b'_\xff\x0c\xce4\xf2\x14\x004Y\xfdq\x93\x91O\x8eVF\x0e\x04\xe7S\x88E\xe0\xf1\x82)\x8c\x8dg\xba@\xab\x8b\x06}\xdbV\xcb\xf9\x1b\x05\xba\x14\x86\xb0\xc5\x12\xea\x91\xe5G{\xd1\x1e\x9f*\xf8c\xb5-\x0e\xd6_~@\xee\xe0\x1c\x12E:\xb8.\xafkB\x06\xb7\xf6\\+\x1bK\x80<\xb7\xdc\x01z\x1e\x9d\xa21\xa9\xfa\xael3T6\xfe\xa0\xde\x1b\xd0x\xf5\xa7\xdf\xdf\xdde+\x8e\xd1\xd8\xa4qA\xbe\xa6\xd7)t\xae\x83\x0e\xbf\x07v[\x9b\xc5\x9b\x8cE\xf0ic\xeb;\x1d\xe9\xdep\xb9\xa9\xec\xaa\x00\xb6|\x14\xc6\xb1te\x13l\x9c\x03q\xachb\xd4v\x1e\x00\x8d"\xd0\xfb?\xc8T\x1de\xd8U\xcd\xf7V\x04~\x92\xa1\xe6\xfb\xe0T-\x9e+?FW!\x11\x12\xfa\xd9\xad\xb7\xad\xce\n\xb2\x16\xbe\x0c\xfa\x9c\xe0<\x80\x00|\x7f\x92k\x17yN,\reUg\x8d8\x11\x12\xb9R\xefv\xb2\xf5N:\x9d\x02\x9c\x89\x0e\xc9\xc6\xb7\xdc\xf1\x1bXV'


def _cert(pem):
    return x509.Cert(x509.from_pem(pem)[0])


def test_fields_and_hash_data_match_what_a_csms_computes():
    root, leaf = _cert(ROOT), _cert(LEAF)
    assert root.self_issued() and root.ca and not leaf.ca and not leaf.self_issued()
    assert leaf.issuer == root.subject
    assert leaf.not_before == NOT_BEFORE and leaf.not_after == NOT_AFTER
    assert root.hash_data() == ROOT_HASH
    assert leaf.hash_data(root.key_bits) == LEAF_HASH
    n, e = leaf.rsa
    assert e == 65537 and n >> 2047 == 1


# The root's hash data as a CSMS computes it with SHA384 and SHA512 (tests/signing.py).
ROOT_NAME_384 = "556fed8c955f6523448114cc270bde04316e932103b0225d90a9b3484840e2f99de1691d9b84e0c37878e18a99152bc1"
ROOT_KEY_512 = "f6d6df14df3cb0bed4bf206b1b7ffd034a939e78523782fb8a57ad9d5271f1306c87841c3950168dad3ff2ec8212910718eda51259ed32a331403ac4009b602b"
# FIPS 180-2's examples: one block and two blocks.
ABC = b"abc"
ABC_384 = "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
LONG = b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
LONG_512 = "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"


def test_sha384_and_sha512_hash_data_match_what_a_csms_computes():
    # MicroPython's hashlib has neither: diag/sha512.py computes them for DeleteCertificate.
    import binascii

    from diag import sha512

    assert binascii.hexlify(sha512.digest(ABC, 384)).decode() == ABC_384
    assert binascii.hexlify(sha512.digest(LONG)).decode() == LONG_512
    root = _cert(ROOT)
    h384, h512 = root.hash_data(None, "SHA384"), root.hash_data(None, "SHA512")
    assert h384["hashAlgorithm"] == "SHA384" and h384["issuerNameHash"] == ROOT_NAME_384
    assert h512["hashAlgorithm"] == "SHA512" and h512["issuerKeyHash"] == ROOT_KEY_512
    assert h384["serialNumber"] == h512["serialNumber"] == ROOT_HASH["serialNumber"]


def test_signatures_verify_and_forgeries_do_not():
    root, leaf, other = _cert(ROOT), _cert(LEAF), _cert(OTHER)
    t0 = time.ticks_us()
    assert leaf.signed_by(root)
    us = time.ticks_diff(time.ticks_us(), t0)
    print("x509: RSA-2048 certificate signature checked in %d us" % us)
    assert not leaf.signed_by(other)
    n, e = leaf.rsa
    assert rsa.verify(n, e, MSG_SIG, MSG_DIGEST)
    bad = bytearray(MSG_SIG)
    bad[-1] ^= 1
    assert not rsa.verify(n, e, bytes(bad), MSG_DIGEST)
    assert not rsa.verify(n, e, MSG_SIG, b"\x00" * 32)
    assert not rsa.verify(n, e, MSG_SIG[1:], MSG_DIGEST)


def test_bad_input_raises_badcert():
    for text in ("", "no pem here", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"):
        try:
            _cert(text)
        except x509.BadCert:
            pass
        else:
            raise AssertionError("accepted %r" % text)
    der = x509.from_pem(LEAF)[0]
    for cut in (der[:10], der[:-1], der + b"\x00", b"\x30\x84\xff\xff\xff\xff" + der[4:]):
        try:
            x509.Cert(cut)
        except (x509.BadCert, ValueError):
            pass
        else:
            raise AssertionError("accepted a damaged certificate")


def test_pem_round_trip():
    der = x509.from_pem(ROOT)[0]
    assert x509.from_pem(x509.to_pem(der)) == [der]
