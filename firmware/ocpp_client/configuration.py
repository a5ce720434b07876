# Feature: the configuration keys over OCPP. GetConfiguration and ChangeConfiguration on config.py
# (the key table: types, defaults, access, checks).


def attach(s):
    cfg = s.config

    async def get_configuration(p):
        keys = p.get("key")
        most = cfg.get("GetConfigurationMaxKeys")
        if keys and len(keys) > most:
            keys = keys[:most]
        known, unknown = cfg.entries(keys)
        out = {"configurationKey": known}
        if unknown:
            out["unknownKey"] = unknown
        return out

    async def change_configuration(p):
        return {"status": cfg.set(p["key"], p["value"])}

    return {"GetConfiguration": get_configuration, "ChangeConfiguration": change_configuration}
