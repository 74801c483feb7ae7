"""Generator SFT and verifier DPO on TRL + PEFT."""
