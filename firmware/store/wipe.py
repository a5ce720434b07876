# Removing from the store's flash: many documents, journals and folders at once (a factory reset:
# hotspot/reset.py) and a folder with all it holds (rmtree: the wipe, the local list's update
# folders, the firmware slots). Loaded on use and out of the heap after (where its user is kept,
# it is kept with it: ocpp_client/listupdate.py).
import os

from store import _remove


def remove(store, names, folders=(), emptied=()):
    # names: documents and journals (every copy: Store.remove); folders: removed with what they
    # hold; emptied: their files removed, the folder kept (a writer holds its path).
    for n in names:
        store.remove(n)
    for n in folders:
        rmtree(store.path(n, ""))
    for n in emptied:
        rmtree(store.path(n, ""), False)


def rmtree(p, top=True, strict=False):
    # The folder p with all it holds (top False: what it holds, p kept). Best effort: p not there
    # or a file is left alone (not ours to remove), and what cannot be removed stays. strict (the
    # firmware slots): p may be a file, removed too, and a failure raises OSError.
    try:
        names = os.listdir(p)
    except OSError:
        if strict:
            try:
                os.stat(p)
            except OSError:
                return  # not there
            os.remove(p)
        return
    for n in names:
        q = p + "/" + n
        if not _remove(q):  # a folder (LittleFS removes an empty one)
            rmtree(q, True, strict)
    if top:
        try:
            os.rmdir(p)
        except OSError:
            if strict:
                raise
