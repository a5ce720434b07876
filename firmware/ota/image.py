# A MicroPython firmware image (the interpreter with the application frozen in it, built from
# boards/esp32_wallbox/manifest.py) written into the next OTA app partition, which the board
# gives (board.app_partitions(): esp32.Partition objects on the ESP32). Sector by sector: each
# 4 KiB sector is erased and programmed by writeblocks(), then the whole partition is read back
# and hashed before set_boot(). The ESP-IDF bootloader boots it once as "pending"; unless the
# application marks it valid (mark_app_valid_cancel_rollback(), after the same proof as a slot)
# before the next boot, the bootloader goes back to the previous image by itself.
import asyncio
import hashlib

_SECTOR = const(4096)


def label(part):
    return part.info()[4]


async def write(part, f, size, sha, buf=None):
    # The image: `size` bytes of the open file f, whose SHA-256 (hex) must be `sha`.
    # Raises ValueError (too large, read back wrong) or OSError (flash).
    blocks = part.ioctl(4, 0)
    bs = part.ioctl(5, 0)
    if bs != _SECTOR or size > blocks * bs:
        raise ValueError("image of %d bytes does not fit partition %s" % (size, label(part)))
    buf = buf or bytearray(_SECTOR)
    mv = memoryview(buf)
    left = size
    n = 0
    while left > 0:
        k = f.readinto(mv if left >= _SECTOR else mv[:left])
        if not k:
            raise ValueError("bundle shorter than its image")
        if k < _SECTOR:
            for i in range(k, _SECTOR):
                buf[i] = 0xFF
        part.writeblocks(n, buf)
        n += 1
        left -= k
        await asyncio.sleep_ms(0)
    h = hashlib.sha256()
    left = size
    n = 0
    while left > 0:
        part.readblocks(n, buf)
        h.update(mv if left >= _SECTOR else mv[:left])
        n += 1
        left -= _SECTOR
        await asyncio.sleep_ms(0)
    if "".join("%02x" % b for b in h.digest()) != sha:
        raise ValueError("image reads back wrong from partition %s" % label(part))
