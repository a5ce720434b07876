"""The charger simulation: the agent under the unix port, with its hardware simulated here."""
