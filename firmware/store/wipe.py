# Removing many documents, journals and folders of the store at once (a factory reset:
# hotspot/reset.py), loaded for it and out of the heap after.
import os

from store import _remove


def remove(store, names, folders=(), emptied=()):
    # names: documents and journals (every copy: Store.remove); folders: removed with what they
    # hold; emptied: their files removed, the folder kept (a writer holds its path).
    for n in names:
        store.remove(n)
    for n in folders:
        _rmtree(store.path(n, ""), True)
    for n in emptied:
        _rmtree(store.path(n, ""), False)


def _rmtree(p, top):
    try:
        names = os.listdir(p)
    except OSError:
        return  # not there (or a file: not ours to remove)
    for n in names:
        q = p + "/" + n
        if not _remove(q):
            _rmtree(q, True)
    if top:
        try:
            os.rmdir(p)
        except OSError:
            pass
