# The texts of a claim's failures, as GET /api/claim reports them (hotspot/claimflow.py): loaded
# for a failure only, and out of the heap after it (supervisor.rare). Running out of memory is
# said by claimflow.py itself, with no load.
MESSAGES = {
    "wifi_wrong_password": "the home Wi-Fi refused the password",
    "wifi_not_found": "the home Wi-Fi network was not found",
    "wifi_failed": "could not join the home Wi-Fi",
    "csms_unreachable": "the home network works but the CSMS cannot be reached",
    "csms_refused": "the CSMS refused the charger (check the charge point id and auth_key)",
    "csms_tls": "the TLS connection to the CSMS failed (check the URL and ca_pem)",
    "storage_failed": "the charger could not store the claim (its flash is full or failing); "
                      "nothing was changed",
}


def text(code):
    return MESSAGES.get(code, code)
