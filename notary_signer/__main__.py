"""``python -m notary_signer``: the ``notary-signer`` command."""

from notary_signer.cli import main

if __name__ == "__main__":
    main(prog_name="notary-signer")
