# On-target tests for ota/pss.py: RSA-PSS (EMSA-PSS, RFC 8017 9.1.2, SHA-256, MGF1-SHA-256), the
# signed firmware's scheme in the 1.6 security whitepaper (OCTT TC_080_CS), checked against
# signatures the host's `cryptography` package made: salt of the hash's length, the longest
# salt, no salt; a 2048-bit key and one of 8k+1 bits (its encoding a byte shorter than the
# modulus). PKCS#1 v1.5 (ota/rsa.py) stays apart: neither scheme takes the other's signature.
from diag.signedfw import _verify
from ota import pss, rsa

E = 65537
# made with the host's `cryptography` package (padding.PSS, MGF1(SHA256()))
DIGEST = b"\xa5=\xce\xb6\xfb\xb1\x9aO\xb7w\xb3\xf8\rE\xdf\xb6\xfc\x1b8\x8a\x18\xb4'\xa7\xb2\xaf\x9c\xe6\x13\xda\xd1\xc6"
K2048_N = 0xba731e985689e3f7d65cb5786bc017dd53766a73d8bac2ef4c11fbe1b2848ac50ea63adaa7365b0b96b2903a4f0e4fe435d2e249c3fb64a4f3f2fd9fe634bb97c24b9e2b5082013ea80e14bc1f048f284cd7442527d12b37acfec417c91aeb53c14a41a491fd955dae4b63a4fda087e25c69bd097d69e01825be9790d1badbf815a24de219fd89c32cee63971712d9e214f23e3ae6b9a177700dba8c5555e35c874d4646006cdb2d84437f5dbbccec1fbc55e7d9a54b877df29e08165b14badb223a994b9d920faf97b5b409511d33f5d988ed688dad8a6de851862ee0a32996198b4d84f907e9fd03085c4aea1a1609066e1e573449f3d47a20ddd6330a4645
K2048_PSS_DIGEST = bytes.fromhex('572f43beb57a9728195a1166ae2944de42daf139e5a4656dac6d50e3f44bd5f2b0e75c90b7d0517cf7a07a6e78636822dd08070c9210dc8173eb4549a4e2d5cfe5cabd521902915a0d6684a9b15cd979c68c4f2aa7bda5f232c39a83440becf5f7765b0cbedbf6f9341d9572abe548820363bee05849c1c37f25b3575578c1d53bb5ff5198b1b84cc1285cc13a69323c2a93c22009b7408468c1a24f2bc6f329517ed50fa5f715b95bdc995e2a5d3480e33a483bdc8e8244e3737e3fb0c26e2050e104943e85b66df40855a311e2f4b9b249c3fb8861325f3b1f0563e8a7e062f49227cb0e105a440c655985fec299bff096ad3e7ada0668c4d34e781a1f8d1f')
K2048_PSS_MAX = bytes.fromhex('b94db43ac5a63673e6d39aa03a10efb7b455002957bea8170c264fd767005566547d2f36a7c95a63bad545678edee9cb906436c592e80a2d16785583747c9dd4d327c78779891422d149ad53567aceeacc67b1b24a5fa4cc923bc18f84f6eb0489bdb262d1d06853bd5b2b97e18956225af0b282623d386ed1d43983aec38122317ff64cd95798a4a9e059b264c6dd6f835e526c7eca26607fef86c1053cd747a46b74e369c6785b91f2973462a2dc8f5f91754e236452d061c99c0c75fad66b941b14b438b6f60f55ed3be5bcf1f65416e05c18f7cd7b800ae1b8eb62b6f536bb5124632775f79632f7584bba7307a80bc6700eedf00e4ce28d118199dfd7fe')
K2048_PSS_NOSALT = bytes.fromhex('4bdc1c96742e154c69ddaaa9a2ac3cbaf9ad07a5924f57b0a64b548ccf6213cdf66401c40dc7e687ee963fc50a96f34056e985b8e0bcb9dc0b0ef561c3c5bc41780446dbcf057fa122f60b438659c21ede7c3daa236c11062ace0bbc6cd05bd3f26a610873beac03a25493f0b40fa3b8d980e2615dcf8ac925555e60f2524949d76f304dc62086726babae41831075c1b3dee8f28d8aa6dea5669e6667636906b72559b5888e302138f5a56d6e0924cef392978e05b0416867f577d7e292343d264bbe3225fe8f282ec1d3007a9207549d64cad3c86dc51ae013cef7e2c76e774e641fee1772e478cf5790fd087a18d0fedcd829d6be82b7472a5dd6396bffb2')
K2048_V15 = bytes.fromhex('073d09b2493f80c1c267dffbe484214f1a20192f5c481dc32ea99fad72de40e8dc6b817c3c721b8e5a4b46a9de0133d5e40e5f019a51ebd773580f8825effde43bbab05caf9756ea2c3b825e82a3a4f8013040c1d1540ff3eddf5ff3a48d8c2dd55ca223cef68f8b155ab0099167a4e77ce6b57df0f3764655c2f89c70eb7c3d6603434180236e76e1764a2aa77f355fe7c28ff36d891ca6dade16c2fde88ffaee388e1f63c2a22e6a8bbd30e4a81f33b85b48b3acdb9764d2cce6942e545597fda3f1edfde61e1df971debb6e606aded0fed884130e3edeaed76597fa6de04713f0f926bdbf0593cab7c762792baa504c08df10139e8a25d1838cc0a54f3f05')
K1025_N = 0x156eee557873ef32dd17ea8ff25f01c9f002dd6fc7e321ab40efd7cbdd4a0652776906f927d705ed749e75ab4847b589751c7e183e76b0a607c7a07bce663fff8cad42cc578c0e1c36c3b4fcccd5c8a431f7ef5e48660d4ca9e684422689b8570688687737c38ea9fb6ce60eefedf95f4c8efdd834d1a99247ba3d8b545e8e3bd
K1025_PSS_DIGEST = bytes.fromhex('0007dc76741ffc7fb4e68c24b507697d5e83987be69720409f0174190052e27dd19ffb1cac79058a9b0c1f4150646f56d79fbc8b0695131a2e789f49dd2f5770735485bdb729ec897de62e643d45a845b35ae355c2cc4250638d4341812826d98f0eb4a8e860d9b15b08e4f34b2e68f3c7e8421e0c8eda2057d59185856ac8694c')
K1025_PSS_MAX = bytes.fromhex('00fbc2429b850391d4c6ba0a9a04722f3176c9cbfc03e3928d223677f3ac1b889e0bff169acf41f56cd7bd6ad3f677b97a31562d4a15b3a7970f8cd6a163db63fa4ca821c8629899affcb08bf91820ddc38c48ad4c54d1f080fe49d70c3ed7596e0d6099b97c1d1f84860ab1df9c0742f175b2d1b4b9ce4d6d3d9631a33a0b772a')


def _pss(n, sig, digest=None):
    em = rsa.open_sig(n, E, sig)
    return em is not None and pss.check(em, n, DIGEST if digest is None else digest)


def test_pss_signatures_from_cryptography_verify():
    for n, sig in ((K2048_N, K2048_PSS_DIGEST), (K2048_N, K2048_PSS_MAX), (K2048_N, K2048_PSS_NOSALT),
                   (K1025_N, K1025_PSS_DIGEST), (K1025_N, K1025_PSS_MAX)):
        assert _pss(n, sig), (len(sig), sig[:4])


def test_forged_or_misplaced_signatures_do_not():
    for n, sig in ((K2048_N, K2048_PSS_DIGEST), (K2048_N, K2048_PSS_MAX), (K1025_N, K1025_PSS_MAX)):
        for at in (0, 5, len(sig) // 2, len(sig) - 1):
            bad = bytearray(sig)
            bad[at] ^= 0x10
            assert not _pss(n, bytes(bad))
        assert not _pss(n, sig, bytes(32))  # another message
        assert not _pss(n, sig, DIGEST[:31])
        assert not _pss(K1025_N if n == K2048_N else K2048_N, sig)  # another key
        assert not rsa.pkcs1(rsa.open_sig(n, E, sig), DIGEST)  # not a v1.5 signature
    assert not _pss(K2048_N, K2048_V15)  # a v1.5 signature is not PSS
    assert rsa.verify(K2048_N, E, K2048_V15, DIGEST)


def test_signed_firmware_takes_pss_first_and_v15_still():
    key = (K2048_N, E)
    assert _verify(key, K2048_PSS_DIGEST, DIGEST) == "RSA-PSS"
    assert _verify(key, K2048_PSS_MAX, DIGEST) == "RSA-PSS"
    assert _verify(key, K2048_V15, DIGEST) == "RSA PKCS#1 v1.5"
    assert _verify(key, K2048_PSS_DIGEST, bytes(32)) is None
    assert _verify(key, K2048_PSS_DIGEST[1:], DIGEST) is None
    assert _verify((K1025_N, E), K1025_PSS_MAX, DIGEST) == "RSA-PSS"
