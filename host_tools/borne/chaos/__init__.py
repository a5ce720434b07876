"""`borne chaos`: the project's own reliability campaign against the simulator (issue 11).

Seeded and reproducible; prints figures and fails on any violation. `ledger.py` judges what a
CSMS saw (lost, repeated, stopped twice, out of order, under-billed, timestamps); the campaigns
live in `campaigns.py`; `cli.py` is the command.
"""
