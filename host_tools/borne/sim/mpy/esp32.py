# Emulation of MicroPython's `esp32` module (ESP32 port, 1.28) for the unix port: NVS and
# Partition, as the ESP32 board, the provisioning tools and the update flow use them. Host side
# only: it lives on the agent's MICROPYPATH in the simulation and is never shipped.
#
# Where the state lives (the simulated chip's flash outside the filesystem): in the directory
# named by the environment variable BORNE_ESP32_STATE, else the current directory when this
# module is first imported. The simulator starts the agent with cwd = the device's flash
# directory, so the files sit next to its filesystem (`data/`):
#
#   nvs.json        the NVS partition: {"version": 1, "namespaces": {ns: {key: [type, value]}}}
#                   with type "i32" (value an int) or "blob" (value lower-case hex). Only what was
#                   commit()ed is in the file (a power cut loses uncommitted writes, as on the
#                   chip). Written atomically (temp + rename). borne.sim.esp32state reads and
#                   writes the same file from the host (e.g. `borne provision` against a sim).
#   otadata.json    the OTA data partition: {"boot": label, "state": "new" | "pending" |
#                   "valid" | "aborted", "prev": label}. Absent = boot ota_0, valid.
#   part_<label>.bin  the contents of an app or data partition, created on first write; bytes
#                   never written read as 0xFF (erased NOR flash).
#
# Partition table: MicroPython's partitions-8MiBplus-ota.csv on 8 MiB of flash, as borne's board
# definition builds it (boards/micropython/BORNE_WALLBOX): nvs, otadata, phy_init, ota_0 and
# ota_1 (2.4 MiB each), vfs (3 MiB). There is no factory app.
#
# Behaviour kept from the chip (ESP-IDF with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, as
# MicroPython builds it):
# - Each process that imports this module is one boot, and the bootloader's step runs at that
#   import: an app set_boot() chose ("new") boots "pending"; if it is still "pending" at the next
#   boot (never confirmed with Partition.mark_app_valid_cancel_rollback()), it is "aborted" and
#   the previous app boots again (rollback).
# - set_boot() validates the image: the emulation checks the ESP image header magic (first byte
#   0xE9) only; the chip also checks segments and the appended SHA-256. A bad image raises
#   OSError(-0x1503, "ESP_ERR_OTA_VALIDATE_FAILED") and the boot choice is unchanged.
# - writeblocks(n, buf) erases first (the length must be a multiple of the 4096-byte sector
#   when block_size >= 4096); writeblocks(n, buf, offset) does not erase, and writing clears
#   bits only (new = old AND data), as NOR flash does. ioctl(6, n) erases one block.
# - Errors are OSError(-esp_err, "ESP_ERR_...") as check_esp_err() raises them, e.g.
#   OSError(-4354, "ESP_ERR_NVS_NOT_FOUND") for a missing key.
import json
import os

try:
    _DIR = os.getenv("BORNE_ESP32_STATE") or os.getcwd()
except AttributeError:
    _DIR = "."

_SECTOR = 4096

# ESP-IDF error codes (esp_err.h, nvs.h, esp_ota_ops.h)
_ERR_INVALID_ARG = 0x102
_ERR_INVALID_SIZE = 0x104
_ERR_NVS_NOT_FOUND = 0x1102
_ERR_NVS_TYPE_MISMATCH = 0x1103
_ERR_NVS_INVALID_NAME = 0x1106
_ERR_NVS_KEY_TOO_LONG = 0x1109
_ERR_NVS_INVALID_LENGTH = 0x110C
_ERR_OTA_VALIDATE_FAILED = 0x1503
_NAMES = {
    _ERR_INVALID_ARG: "ESP_ERR_INVALID_ARG",
    _ERR_INVALID_SIZE: "ESP_ERR_INVALID_SIZE",
    _ERR_NVS_NOT_FOUND: "ESP_ERR_NVS_NOT_FOUND",
    _ERR_NVS_TYPE_MISMATCH: "ESP_ERR_NVS_TYPE_MISMATCH",
    _ERR_NVS_INVALID_NAME: "ESP_ERR_NVS_INVALID_NAME",
    _ERR_NVS_KEY_TOO_LONG: "ESP_ERR_NVS_KEY_TOO_LONG",
    _ERR_NVS_INVALID_LENGTH: "ESP_ERR_NVS_INVALID_LENGTH",
    _ERR_OTA_VALIDATE_FAILED: "ESP_ERR_OTA_VALIDATE_FAILED",
}


def _err(code):
    return OSError(-code, _NAMES[code])


def _path(name):
    return _DIR + "/" + name


def _load_json(name):
    try:
        with open(_path(name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _save_json(name, doc):
    tmp = _path(name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, _path(name))


# ---- ESP-IDF heap ---------------------------------------------------------------------------
# The ESP-IDF heap beside MicroPython's. On the chip the GC heap grows into it (56 KiB first,
# more areas on demand); the unix port's GC heap is fixed (-X heapsize), so these are fixed
# figures of a plain ESP32 with Wi-Fi started, for code that reads them
# (boards/esp32_wallbox/board.py heap_growth()): (total, free, largest free block, minimum free).
HEAP_DATA = 4
HEAP_EXEC = 1
_IDF_HEAP = ((113840, 0, 0, 0), (79912, 61440, 57344, 52000), (15072, 15036, 15036, 15036))


def idf_heap_info(capabilities):
    return list(_IDF_HEAP) if capabilities & HEAP_DATA else [(15072, 15036, 15036, 15036)]


# ---- NVS -------------------------------------------------------------------------------------


def _read_nvs():
    doc = _load_json("nvs.json")
    out = {}
    if not isinstance(doc, dict):
        return out
    spaces = doc.get("namespaces")
    if not isinstance(spaces, dict):
        return out
    import binascii

    for ns, items in spaces.items():
        d = {}
        if not isinstance(items, dict):
            continue
        for k, tv in items.items():
            try:
                t, v = tv
                d[k] = (t, binascii.unhexlify(v) if t == "blob" else int(v))
            except (TypeError, ValueError):
                continue  # a damaged entry reads as missing
        out[ns] = d
    return out


_committed = _read_nvs()  # what is on flash
_live = {}  # ns -> {key: (type, value)}, uncommitted writes included


def _space(ns):
    d = _live.get(ns)
    if d is None:
        d = dict(_committed.get(ns, {}))
        _live[ns] = d
    return d


def _key(key):
    if not isinstance(key, str):
        raise TypeError("can't convert %s to str" % type(key).__name__)
    if len(key) > 15:
        raise _err(_ERR_NVS_KEY_TOO_LONG)
    return key


class NVS:
    def __init__(self, namespace):
        if not isinstance(namespace, str):
            raise TypeError("can't convert %s to str" % type(namespace).__name__)
        if not namespace or len(namespace) > 15:
            raise _err(_ERR_NVS_INVALID_NAME)
        self._ns = namespace

    def __repr__(self):
        return "<NVS namespace>"

    def _get(self, key, typ):
        v = _space(self._ns).get(_key(key))
        if v is None:
            raise _err(_ERR_NVS_NOT_FOUND)
        if v[0] != typ:
            raise _err(_ERR_NVS_TYPE_MISMATCH)
        return v[1]

    def set_i32(self, key, value):
        value = int(value)
        if not -0x80000000 <= value <= 0x7FFFFFFF:
            raise OverflowError("overflow converting long int to machine word")
        _space(self._ns)[_key(key)] = ("i32", value)

    def get_i32(self, key):
        return self._get(key, "i32")

    def set_blob(self, key, value):
        _space(self._ns)[_key(key)] = ("blob", bytes(value))

    def get_blob(self, key, buffer):
        v = self._get(key, "blob")
        if len(v) > len(buffer):
            raise _err(_ERR_NVS_INVALID_LENGTH)
        buffer[: len(v)] = v
        return len(v)

    def erase_key(self, key):
        d = _space(self._ns)
        if _key(key) not in d:
            raise _err(_ERR_NVS_NOT_FOUND)
        del d[key]

    def commit(self):
        import binascii

        _committed[self._ns] = dict(_space(self._ns))
        spaces = {}
        for ns, items in _committed.items():
            spaces[ns] = {
                k: [t, binascii.hexlify(v).decode() if t == "blob" else v]
                for k, (t, v) in items.items()
            }
        _save_json("nvs.json", {"version": 1, "namespaces": spaces})


# ---- Partition -------------------------------------------------------------------------------

# label, type, subtype, address, size (partitions-8MiBplus-ota.csv, the rest of 8 MiB for vfs)
_TABLE = (
    ("nvs", 1, 0x02, 0x9000, 0x4000),
    ("otadata", 1, 0x00, 0xD000, 0x2000),
    ("phy_init", 1, 0x01, 0xF000, 0x1000),
    ("ota_0", 0, 0x10, 0x10000, 0x270000),
    ("ota_1", 0, 0x11, 0x280000, 0x270000),
    ("vfs", 1, 0x81, 0x4F0000, 0x310000),
)
_APPS = ("ota_0", "ota_1")


def _otadata():
    d = _load_json("otadata.json")
    if not isinstance(d, dict) or d.get("boot") not in _APPS:
        return {"boot": "ota_0", "state": "valid", "prev": "ota_0"}
    return d


def _bootloader():
    # Runs once per boot (this module's import): which app starts, and the rollback rule.
    d = _otadata()
    st = d.get("state")
    if st == "new":
        d["state"] = "pending"
        _save_json("otadata.json", d)
    elif st == "pending":
        d["state"] = "aborted"
        d["boot"], d["prev"] = d.get("prev", "ota_0"), d["boot"]
        _save_json("otadata.json", d)
    return d["boot"]


_running = _bootloader()


def _row(label):
    for r in _TABLE:
        if r[0] == label:
            return r
    return None


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=_SECTOR):
        if isinstance(id, int):
            if id == Partition.BOOT:
                label = _otadata()["boot"]
            elif id == Partition.RUNNING:
                label = _running
            else:
                raise ValueError()
            row = _row(label)
        else:
            row = _row(id)
        if row is None:
            raise OSError(2)  # MP_ENOENT
        self._row = row
        self._bs = int(block_size)

    def __repr__(self):
        label, t, st, addr, size = self._row
        return "<Partition type=%u, subtype=%u, address=%u, size=%u, label=%s, encrypted=0>" % (
            t, st, addr, size, label)

    def __eq__(self, other):
        return isinstance(other, Partition) and other._row[0] == self._row[0]

    @staticmethod
    def find(type=0, subtype=0xFF, label=None):
        out = []
        for r in _TABLE:
            if r[1] == type and (subtype == 0xFF or r[2] == subtype) and (
                    label is None or r[0] == label):
                out.append(Partition(r[0]))
        return out

    def info(self):
        label, t, st, addr, size = self._row
        return (t, st, addr, size, label, False)

    # -- raw flash -----------------------------------------------------------------------
    def _file(self):
        return _path("part_%s.bin" % self._row[0])

    def _check(self, off, n):
        size = self._row[4]
        if off > size:
            raise _err(_ERR_INVALID_ARG)
        if off + n > size:
            raise _err(_ERR_INVALID_SIZE)

    def _read(self, off, n):
        self._check(off, n)
        try:
            with open(self._file(), "rb") as f:
                f.seek(off)
                got = f.read(n)
        except OSError:
            got = b""
        return got + b"\xff" * (n - len(got))

    def _put(self, off, data):
        # Overwrite bytes in the backing file, filling any gap up to `off` as erased flash.
        path = self._file()
        try:
            end = os.stat(path)[6]
        except OSError:
            with open(path, "wb"):
                pass
            end = 0
        with open(path, "r+b") as f:
            if off > end:
                f.seek(end)
                gap = off - end
                while gap:
                    k = min(gap, _SECTOR)
                    f.write(b"\xff" * k)
                    gap -= k
            f.seek(off)
            f.write(data)

    def _erase(self, off, n):
        if off % _SECTOR or n % _SECTOR:
            raise _err(_ERR_INVALID_ARG)
        self._check(off, n)
        blank = b"\xff" * _SECTOR
        for a in range(off, off + n, _SECTOR):
            self._put(a, blank)

    def _program(self, off, data):
        # NOR flash: programming clears bits only.
        data = bytes(data)
        old = self._read(off, len(data))
        if old != b"\xff" * len(data):
            data = bytes(a & b for a, b in zip(old, data))
        self._put(off, data)

    def readblocks(self, block_num, buf, offset=0):
        n = len(buf)
        buf[:] = self._read(block_num * self._bs + offset, n)

    def writeblocks(self, block_num, buf, offset=None):
        off = block_num * self._bs
        if offset is None:
            if self._bs >= _SECTOR:
                self._erase(off, len(buf))
            else:
                # Smaller blocks: the sector around them is read, erased and rewritten.
                self._check(off, len(buf))
                self._put(off, b"\xff" * len(buf))
        else:
            off += offset
        self._check(off, len(buf))
        self._program(off, buf)

    def ioctl(self, op, arg):  # (esp32_partition.c: both arguments required)
        if op in (1, 2, 3):  # init, deinit, sync
            return 0
        if op == 4:  # block count
            return self._row[4] // self._bs
        if op == 5:  # block size
            return self._bs
        if op == 6:  # erase one block
            if self._bs != _SECTOR:
                return -22  # -MP_EINVAL
            self._erase(arg * _SECTOR, _SECTOR)
            return 0
        return None

    # -- OTA -----------------------------------------------------------------------------
    def set_boot(self):
        label = self._row[0]
        if label not in _APPS:
            raise _err(_ERR_INVALID_ARG)
        if self._read(0, 1) != b"\xe9":
            raise _err(_ERR_OTA_VALIDATE_FAILED)
        _save_json("otadata.json", {"boot": label, "state": "new", "prev": _running})

    def get_next_update(self):
        # The next OTA app slot after this one (what esp_ota_get_next_update_partition gives).
        label = self._row[0]
        nxt = "ota_1" if label == "ota_0" else "ota_0"
        return Partition(nxt)

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        d = _otadata()
        if d.get("state") == "pending" and d["boot"] == _running:
            d["state"] = "valid"
            _save_json("otadata.json", d)


# ---- misc ------------------------------------------------------------------------------------


def _efuse_mac():
    # The factory MAC (machine.unique_id()): random once per simulated device, then fixed.
    d = _load_json("efuse.json")
    if not isinstance(d, dict) or "mac" not in d:
        import binascii

        mac = bytearray(os.urandom(6))
        mac[0] = (mac[0] & 0xFC) | 0x00  # a unicast, globally administered address
        d = {"mac": binascii.hexlify(mac).decode()}
        _save_json("efuse.json", d)
    import binascii

    return binascii.unhexlify(d["mac"])
