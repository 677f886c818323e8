"""Which registration form this nok fills in (vault/forms/): read by the command line's
help without loading the vault's layers."""

FORM = "bufdir-2026"
FORM_FILE = f"{FORM}.json"
