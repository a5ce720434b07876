# A firmware bundle on flash (format: host_tools/borne/release.py): checked before anything is
# installed, then unpacked into a slot. Everything is read as a stream through one small buffer;
# the signature covers the manifest, the manifest every file (size, SHA-256), so each file is
# checked against the one signature. Work is sliced (a yield per buffer) so the charging loop
# keeps running while a bundle is hashed or written.
import asyncio
import hashlib
import json
import os
import struct
import sys

from ota import rsa, slots
from store.wipe import rmtree

MAGIC = b"BORNEFW1"
FORMAT = const(1)
_HEAD = const(20)  # magic, key id, manifest length
_MANIFEST_MAX = const(32768)
_SIG = const(256)
_BUF = const(1024)
_PATH_MAX = const(80)
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/"


class Refused(Exception):
    # The bundle must not be installed; the message says why (logged and reported).
    pass


def version_tuple(v):
    # "1.2.3" -> (1, 2, 3); anything after a non-digit in a part is ignored ("1.2.3rc1").
    out = []
    for part in str(v).split("."):
        n = ""
        for c in part:
            if not "0" <= c <= "9":
                break
            n += c
        out.append(int(n) if n else 0)
    return tuple(out)


def _hex(b):
    return "".join("%02x" % x for x in b)


def check_path(p):
    if not isinstance(p, str) or not p or len(p) > _PATH_MAX:
        raise Refused("bad file name in manifest")
    if p[0] == "/" or "\\" in p:
        raise Refused("file %r outside the slot" % p)
    for c in p:
        if c not in _PATH_CHARS:
            raise Refused("file %r: character not allowed" % p)
    for seg in p.split("/"):
        if seg in ("", ".", ".."):
            raise Refused("file %r outside the slot" % p)
    if p == ".manifest":
        raise Refused("file %r is reserved" % p)


class Bundle:
    # A checked bundle: manifest (dict; its raw bytes stay in the file, at _HEAD, mlen long),
    # signature, where the files start.
    def __init__(self, path, manifest, mlen, sig, kid, data_off):
        self.path = path
        self.manifest = manifest
        self.mlen = mlen
        self.sig = sig
        self.kid = kid
        self.data_off = data_off

    @property
    def version(self):
        return self.manifest["version"]

    def size(self):
        return sum(e[1] for e in self.manifest["files"])


def _running_mpy():
    return tuple(sys.implementation.version[:2])


async def check(path, ring, board, running_version, allow_downgrade=False, room=None, buf=None):
    # -> Bundle. Raises Refused with the reason: not a bundle, truncated, unknown key, bad
    # signature, wrong board, newer MicroPython, downgrade, unsafe paths, too large for `room`
    # bytes, a file whose hash differs.
    try:
        total = os.stat(path)[6]
    except OSError:
        raise Refused("bundle missing")
    f = open(path, "rb")
    try:
        head = f.read(_HEAD)
        if len(head) < _HEAD or head[:8] != MAGIC:
            raise Refused("not a borne firmware bundle" if len(head) >= 8 else "truncated bundle")
        kid = _hex(head[8:16])
        if not ring:
            raise Refused("no trusted keys on this charger")
        key = ring.get(kid)
        if key is None:
            raise Refused("signed by unknown key %s" % kid)
        mlen = struct.unpack(">I", head[16:20])[0]
        if mlen > _MANIFEST_MAX:
            raise Refused("manifest too long (%d bytes)" % mlen)
        raw = f.read(mlen)
        sl = f.read(2)
        if len(raw) != mlen or len(sl) != 2:
            raise Refused("truncated bundle (%d bytes)" % total)
        if struct.unpack(">H", sl)[0] != _SIG:
            raise Refused("signature of unexpected length")
        sig = f.read(_SIG)
        if len(sig) != _SIG:
            raise Refused("truncated bundle (%d bytes)" % total)
        await asyncio.sleep_ms(0)
        if not rsa.verify(key[0], key[1], sig, hashlib.sha256(raw).digest(), 2048):
            raise Refused("bad signature (key %s)" % kid)
        m = _manifest(raw, board, running_version, allow_downgrade)
        del raw  # parsed: its bytes are read again from the file when installed
        data_off = _HEAD + mlen + 2 + _SIG
        need = data_off + sum(e[1] for e in m["files"])
        if total < need:
            raise Refused("truncated bundle (%d of %d bytes)" % (total, need))
        if total > need:
            raise Refused("bundle has %d bytes of trailing data" % (total - need))
        # An image goes into an app partition, not the filesystem: it needs no room there.
        size = 0 if m.get("kind") == "image" else _flash(path, m["files"], mlen)
        if room is not None and size > room:
            raise Refused("needs %d bytes of flash, %d free" % (size, room))
        b = Bundle(path, m, mlen, sig, kid, data_off)
        await _hash_files(f, m["files"], buf or bytearray(_BUF))
        return b
    finally:
        f.close()


def _flash(path, files, mlen):
    # Bytes the slot takes unpacked (its files, .sig and the .manifest of `mlen` bytes), as
    # LittleFS (the ESP32's filesystem) counts them: each file in whole blocks, each folder (the
    # slot's too) a metadata pair of two. A sum of sizes fell short for a bundle of small files,
    # which then failed with ENOSPC partway. A file small enough to sit in its folder's metadata
    # counts a block too: a little room refused rather than an install that cannot finish.
    try:
        bs = os.statvfs(path)[0] or 1
    except (OSError, AttributeError):
        bs = 1
    dirs = {""}
    n = (mlen + bs - 1) // bs * bs + bs
    for e in files:
        n += (e[1] + bs - 1) // bs * bs
        p = e[0]
        i = p.rfind("/")
        while i > 0:
            dirs.add(p[:i])
            i = p.rfind("/", 0, i)
    return n + 2 * bs * len(dirs)


def _manifest(raw, board, running_version, allow_downgrade):
    try:
        m = json.loads(raw)
    except ValueError:
        raise Refused("manifest is not JSON")
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise Refused("unknown bundle format %r" % (m.get("format") if isinstance(m, dict)
                                                    else None))
    for k in ("version", "micropython", "board"):
        if not isinstance(m.get(k), str):
            raise Refused("manifest lacks %s" % k)
    if m["board"] != board:
        raise Refused("bundle for board %s, this is %s" % (m["board"], board))
    kind = m.get("kind", "app")
    if kind not in ("app", "image"):
        raise Refused("unknown bundle kind %r" % kind)
    need = version_tuple(m["micropython"])[:2]
    have = _running_mpy()
    # An application needs this interpreter; an image brings its own.
    if kind == "app" and need > have:
        raise Refused("bundle needs MicroPython %s, this runs %d.%d" % (m["micropython"],
                                                                       have[0], have[1]))
    if version_tuple(m["version"]) < version_tuple(running_version) and not allow_downgrade:
        raise Refused("downgrade from %s to %s not allowed" % (running_version, m["version"]))
    files = m.get("files")
    if not isinstance(files, list) or not files:
        raise Refused("manifest lists no files")
    seen = set()
    for e in files:
        if not (isinstance(e, list) and len(e) == 3):
            raise Refused("bad file entry in manifest")
        check_path(e[0])
        if not (isinstance(e[1], int) and e[1] >= 0 and isinstance(e[2], str)
                and len(e[2]) == 64):
            raise Refused("bad file entry for %s" % e[0])
        if e[0] in seen:
            raise Refused("file %s listed twice" % e[0])
        seen.add(e[0])
    if kind == "image":
        if len(files) != 1 or files[0][0] != "firmware.bin":
            raise Refused("an image bundle holds firmware.bin alone")
    elif "app.mpy" not in seen and "app.py" not in seen:
        raise Refused("bundle has no application (app.mpy)")
    return m


async def _copy(f, n, buf, out=None):
    # n bytes of f through buf (into the open file `out`, if any) -> their SHA-256 hex.
    h = hashlib.sha256()
    mv = memoryview(buf)
    while n > 0:
        k = f.readinto(mv if n >= len(mv) else mv[:n])
        if not k:
            raise Refused("truncated bundle")
        part = mv[:k] if k < len(mv) else mv
        h.update(part)
        if out is not None:
            out.write(part)
        n -= k
        await asyncio.sleep_ms(0)
    return _hex(h.digest())


async def _hash_files(f, files, buf):
    for name, size, sha in files:
        if await _copy(f, size, buf) != sha:
            raise Refused("file %s: SHA-256 differs from the manifest" % name)


async def install(b, dest, buf=None):
    # Unpack a checked bundle into the folder `dest` (emptied first), each file hashed as it is
    # written and read back after; then the signature (.sig: key id, signature hex) and last the
    # manifest (.manifest), which marks the slot complete: an installed slot can be checked
    # again against the keyring (verify_slot).
    # Raises Refused (a file changed on flash since the check) or OSError (flash full, failing).
    buf = buf or bytearray(_BUF)
    rmtree(dest, True, True)  # (strict: raises where it cannot empty it)
    slots.makedirs(dest)
    f = open(b.path, "rb")
    try:
        f.seek(b.data_off)
        for name, size, sha in b.manifest["files"]:
            p = dest + "/" + name
            i = p.rfind("/")
            slots.makedirs(p[:i])
            out = open(p, "wb")
            try:
                got = await _copy(f, size, buf, out)
            finally:
                out.close()
            if got != sha:
                raise Refused("file %s changed on flash since it was checked" % name)
            g = open(p, "rb")
            try:
                back = await _copy(g, size, buf)
            finally:
                g.close()
            if back != sha:
                raise Refused("file %s reads back wrong from flash" % name)
    finally:
        f.close()
    slots.write(dest + "/.sig", "%s %s" % (b.kid, _hex(b.sig)))
    f = open(b.path, "rb")
    try:
        f.seek(_HEAD)
        out = open(dest + "/.manifest.tmp", "wb")
        try:
            await _copy(f, b.mlen, buf, out)
        finally:
            out.close()
    finally:
        f.close()
    os.rename(dest + "/.manifest.tmp", dest + "/.manifest")


async def verify_slot(dest, ring, buf=None):
    # An installed slot checked again: its manifest's signature and every file's size and hash.
    # -> the manifest; raises Refused. (Tests use it; a charger could at boot, ~1 s per 200 KB.)
    try:
        with open(dest + "/.sig") as f:
            kid, sig = f.read().split()
        with open(dest + "/.manifest", "rb") as f:
            raw = f.read()
    except (OSError, ValueError):
        raise Refused("slot incomplete")
    key = ring.get(kid)
    if key is None or not rsa.verify(key[0], key[1], bytes.fromhex(sig),
                                     hashlib.sha256(raw).digest(), 2048):
        raise Refused("slot signature invalid")
    m = json.loads(raw)
    buf = buf or bytearray(_BUF)
    for name, size, sha in m["files"]:
        try:
            f = open(dest + "/" + name, "rb")
        except OSError:
            raise Refused("slot file %s missing" % name)
        try:
            if os.stat(dest + "/" + name)[6] != size or await _copy(f, size, buf) != sha:
                raise Refused("slot file %s differs" % name)
        finally:
            f.close()
    return m


def read_manifest(path):
    # An installed slot's manifest (dict), or None.
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
