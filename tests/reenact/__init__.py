"""Re-enactments of common Linux attacker techniques against Elastic's own rules (see harness.py)."""
