# The Local Authorization List (OCPP 1.6 Local Auth List Management), kept on flash, not in RAM:
# the tags are spread over BUCKETS small files by a hash of the idTag, one line per tag
# ("<IDTAG>\t<json idTagInfo>\n"). A lookup reads one bucket line by line (about 1/32 of the
# list); nothing holds the whole list in memory. This module is what a tap needs (the feature's
# load at each tap where it is transient); updates are listupdate.py's, loaded for one.
import json
import os
from binascii import crc32

import log

BUCKETS = const(32)
DOC = const("locallist")


def bucket(id_tag):
    return crc32(id_tag.upper().encode()) % BUCKETS


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class LocalList:
    def __init__(self, store, max_length=1000):
        self.store = store
        self.max = max_length
        d = self.dir = store.path("ll", "")
        meta = store.load(DOC, {"version": 0, "count": 0})
        self.version = meta["version"]
        self.count = meta["count"]
        # An update a power cut (or no memory) left, finished or dropped by whoever loads the
        # list (listupdate.recover: authorization.py)
        self.unfinished = exists(d + ".new") or exists(d + ".old") or exists(d + "/done")
        try:
            os.mkdir(d)
        except OSError:
            pass

    def path(self, b, base=None):
        return "%s/%02d" % (base or self.dir, b)

    def lookup(self, id_tag):
        # -> idTagInfo dict, or None when the tag is not on the list
        if not self.count:
            return None
        key = id_tag.upper().encode() + b"\t"
        try:
            f = open(self.path(bucket(id_tag)), "rb")
        except OSError:
            return None
        with f:
            while True:
                line = f.readline()
                if not line:
                    return None
                if line.startswith(key):
                    try:
                        return json.loads(line[len(key):])
                    except ValueError:
                        log.warn("locallist", "bad line for %s: treated as not listed", id_tag)
                        return None
