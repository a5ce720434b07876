# What a MicroPython board does between reset and its REPL, for the unix port behind the serial
# device of host_tools/borne/sim/serialdev.py (MicroPython code, run by the unix port).
#
# 1. The board's filesystem: the host folder BORNE_DEV_FLASH becomes "/", through a small VFS that
#    enforces the partition's size (BORNE_DEV_CAPACITY bytes, in 4 KiB blocks as LittleFS counts
#    them): a write past it fails with OSError(ENOSPC), as on the chip, and os.statvfs("/") reports
#    the figures. Host folders (BORNE_DEV_BUILTIN, ":"-separated: the ESP32 API emulation, the
#    libraries a stock image freezes) are mounted read-only out of the way and put on sys.path where
#    the board has its built-in and frozen modules. BORNE_DEV_ARGV (space-separated) becomes
#    sys.argv, for a simulated board that takes arguments. BORNE_DEV_CHIP, a host folder, holds
#    the chip's flash outside the filesystem (NVS, OTA data: host_tools/borne/sim/mpy/esp32.py),
#    mounted at /.chip, out of the filesystem's listing and size.
# 2. boot.py then main.py from that filesystem (unless BORNE_DEV_REPL_ONLY: a soft reboot asked
#    from the raw REPL); an exception in main.py is printed, and the unix port's REPL (-i)
#    follows in the same process, as on the board: what main.py started (a watchdog, threads)
#    goes on running. machine.reset() (SystemExit, which -i would swallow) stops the process at
#    once, as the emulated chip's own resets do (sim/mpy/_wires.py), and the bridge boots it.
import io
import os
import sys
import vfs

_BLOCK = 4096


class _HostDir:
    # A host folder as a filesystem, with a size limit (None: none). Paths reach it absolute
    # ("/app_a/x.mpy"); it joins them to the folder itself, on a VfsPosix without a root (whose
    # rename() with a root joins both paths in one buffer and renames the wrong file).
    def __init__(self, root, capacity=None):
        self.root = root.rstrip("/")
        self.inner = vfs.VfsPosix()
        self.capacity = capacity
        self.cwd = "/"

    def _abs(self, p):
        if not p.startswith("/"):
            p = (self.cwd.rstrip("/") + "/" + p) if p else self.cwd
        return self.root + p

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def used(self):
        # Blocks in use, as LittleFS would count them: one per folder, files rounded up.
        if self.capacity is None:
            return 0

        def walk(p):
            n = 1
            for e in self.inner.ilistdir(p):
                q = p.rstrip("/") + "/" + e[0]
                if e[1] & 0x4000:
                    n += walk(q)
                else:
                    n += (self.inner.stat(q)[6] + _BLOCK - 1) // _BLOCK
            return n

        return walk(self.root) * _BLOCK

    def ilistdir(self, p):
        return self.inner.ilistdir(self._abs(p))

    def chdir(self, p):
        if not self.inner.stat(self._abs(p))[0] & 0x4000:
            raise OSError(20)  # ENOTDIR
        self.cwd = self._abs(p)[len(self.root):] or "/"

    def getcwd(self):
        return self.cwd

    def stat(self, p):
        return self.inner.stat(self._abs(p))

    def statvfs(self, p):
        total = (self.capacity or 1 << 30) // _BLOCK
        free = max(0, total - self.used() // _BLOCK)
        return (_BLOCK, _BLOCK, total, free, free, 0, 0, 0, 0, 255)

    def mkdir(self, p):
        if self.capacity is not None and self.used() + _BLOCK > self.capacity:
            raise OSError(28)  # ENOSPC
        return self.inner.mkdir(self._abs(p))

    def remove(self, p):
        return self.inner.remove(self._abs(p))

    def rmdir(self, p):
        return self.inner.rmdir(self._abs(p))

    def rename(self, a, b):
        return self.inner.rename(self._abs(a), self._abs(b))

    def open(self, p, mode):
        f = self.inner.open(self._abs(p), mode)
        if ("r" in mode and "+" not in mode) or self.capacity is None:
            return f
        return _QuotaFile(f, self, self.used())


class _QuotaFile(io.IOBase):
    # A stream (json.dump and friends write through it) that counts what it adds.
    def __init__(self, f, fs, used):
        self.f = f
        self.fs = fs
        self.used = used  # the filesystem with this file as opened (truncated for "w")
        self.size = f.seek(0, 2)
        self.pos = self.size

    def write(self, b):
        end = self.pos + len(b)
        if end > self.size:
            grow = (end + _BLOCK - 1) // _BLOCK - (self.size + _BLOCK - 1) // _BLOCK
            if self.used + grow * _BLOCK > self.fs.capacity:
                raise OSError(28)  # ENOSPC: the partition is full
            self.used += grow * _BLOCK
            self.size = end
        n = self.f.write(b)
        self.pos = end
        return n

    def seek(self, off, whence=0):
        self.pos = self.f.seek(off, whence)
        return self.pos

    def tell(self):
        return self.pos

    def read(self, *a):
        r = self.f.read(*a)
        self.pos = self.f.tell()
        return r

    def readinto(self, b):
        n = self.f.readinto(b)
        self.pos = self.f.tell()
        return n

    def ioctl(self, req, arg):
        if req == 1:  # flush
            self.f.flush()
        elif req == 4:  # close
            self.f.close()
        return 0

    def flush(self):
        return self.f.flush()

    def close(self):
        return self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()


def _setup():
    root = os.getenv("BORNE_DEV_FLASH")
    cap = int(os.getenv("BORNE_DEV_CAPACITY") or 2 * 1024 * 1024)
    builtin = [p for p in (os.getenv("BORNE_DEV_BUILTIN") or "").split(":") if p]
    vfs.umount("/")
    vfs.mount(_HostDir(root, cap), "/")
    path = ["", ".frozen", "/lib"]
    for i, p in enumerate(builtin):
        at = "/.builtin%d" % i
        vfs.mount(vfs.VfsPosix(p), at, readonly=True)
        path.append(at)
    sys.path[:] = path
    chip = os.getenv("BORNE_DEV_CHIP")
    if chip:  # the chip's flash outside the filesystem (NVS, OTA data): the esp32 emulation's
        vfs.mount(_HostDir(chip), "/.chip")  # BORNE_ESP32_STATE names this mount
    # The emulated hardware's own settings (the unix_sim board reads "--key value" arguments).
    sys.argv[:] = ["main.py"] + [a for a in (os.getenv("BORNE_DEV_ARGV") or "").split(" ") if a]
    os.chdir("/")
    return not os.getenv("BORNE_DEV_REPL_ONLY")


def _run(name):
    try:
        os.stat(name)
    except OSError:
        return
    try:
        exec(open(name).read(), {"__name__": "__main__", "__file__": name})
    except SystemExit:
        os.system("kill -9 $PPID")  # a reset: the process stops here (no os._exit on unix)
    except BaseException as e:  # the board prints it and goes on to the REPL
        sys.print_exception(e)


if _setup():
    _run("boot.py")
    _run("main.py")
del _setup, _run
